//! Who the growers are: every secret named `<STARA_SECRET_PREFIX><leafUserId>` is one grower.
//!
//! Only names are listed (`ListSecrets`), never values: a scheduled run needs no grower's
//! password, and the function needs no permission to read them.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use uuid::Uuid;

use super::error_chain;
use super::grower_state::state_from;
use crate::domain::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use crate::domain::model::parse_leaf_user_id;
use crate::domain::ports::{GrowerDirectory, GrowerLookup, GrowerPage, ListedGrower};

/// The growers are the secrets under the prefix in AWS Secrets Manager.
pub(crate) struct SecretsManagerDirectory {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
}

const LIST_SECRETS: &str = "ListSecrets";
/// The largest page Secrets Manager gives.
const PAGE_SIZE: i32 = 100;

impl SecretsManagerDirectory {
    pub(crate) fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }
}

#[async_trait]
impl GrowerDirectory for SecretsManagerDirectory {
    async fn page(&self, token: Option<String>) -> Result<GrowerPage, ConnectorError> {
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(&self.prefix)
            .build();
        let page = self
            .client
            .list_secrets()
            .filters(filter)
            .max_results(PAGE_SIZE)
            .set_next_token(token)
            .send()
            .await
            .map_err(list_error)?;
        let mut listed = GrowerPage {
            next: page.next_token().map(str::to_owned),
            ..GrowerPage::default()
        };
        for secret in page.secret_list() {
            let Some(name) = secret.name() else { continue };
            match grower_id(&self.prefix, name) {
                Listed::Grower(id) => {
                    let state = state_from(secret.tags(), secret.secret_versions_to_stages());
                    listed.growers.push(ListedGrower { id, state });
                }
                // The filter is a prefix match; this keeps us right should it ever match more.
                Listed::Outside => {}
                Listed::NotAUuid => listed.misnamed.push(name.to_owned()),
            }
        }
        Ok(listed)
    }
}

#[async_trait]
impl GrowerLookup for SecretsManagerDirectory {
    async fn by_credentials(&self, credentials_id: &str) -> Result<Option<ListedGrower>, ConnectorError> {
        let name = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(&self.prefix)
            .build();
        let tag = Filter::builder()
            .key(FilterNameStringType::TagValue)
            .values(credentials_id)
            .build();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_secrets()
                .filters(name.clone())
                .filters(tag.clone())
                .max_results(PAGE_SIZE)
                .set_next_token(token)
                .send()
                .await
                .map_err(list_error)?;
            for secret in page.secret_list() {
                let state = state_from(secret.tags(), secret.secret_versions_to_stages());
                // The filter matches any tag by value prefix: ours must hold exactly this id.
                if state.credentials_id.as_deref() != Some(credentials_id) {
                    continue;
                }
                if let Listed::Grower(id) = grower_id(&self.prefix, secret.name().unwrap_or_default()) {
                    return Ok(Some(ListedGrower { id, state }));
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(None);
            }
        }
    }
}

/// What a secret's name says about the grower it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listed {
    Grower(Uuid),
    /// The name does not start with the prefix.
    Outside,
    /// The name starts with the prefix, but the rest is not a lower-case hyphenated UUID.
    NotAUuid,
}

/// The grower a secret belongs to. Only a lower-case id is one: connect reads the secret
/// `<prefix><id>` with the id as Leaf writes it, so an upper-case name would never be found.
pub(crate) fn grower_id(prefix: &str, name: &str) -> Listed {
    let Some(suffix) = name.strip_prefix(prefix) else {
        return Listed::Outside;
    };
    match parse_leaf_user_id(suffix) {
        Some(id) if id.to_string() == suffix => Listed::Grower(id),
        _ => Listed::NotAUuid,
    }
}

fn list_error<E, R>(e: SdkError<E, R>) -> ConnectorError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match &e {
        SdkError::ServiceError(service) if service.err().code() == Some("AccessDeniedException") => {
            ConnectorError::Configuration(
                "Secrets Manager ListSecrets: access denied (the function needs secretsmanager:ListSecrets)"
                    .into(),
            )
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("service error").to_owned();
            UpstreamError::new(
                Service::SecretsManager,
                LIST_SECRETS,
                UpstreamKind::Unavailable,
                code,
            )
            .into()
        }
        SdkError::TimeoutError(_) => UpstreamError::new(
            Service::SecretsManager,
            LIST_SECRETS,
            UpstreamKind::Timeout,
            "no answer in time",
        )
        .into(),
        // Connection failures and throttling that outlasted the SDK's own retries.
        _ => UpstreamError::new(
            Service::SecretsManager,
            LIST_SECRETS,
            UpstreamKind::Unavailable,
            error_chain(&e),
        )
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "stara-connect/growers/";

    #[test]
    fn names_under_the_prefix_are_growers() {
        let id = Uuid::new_v4();
        assert_eq!(grower_id(PREFIX, &format!("{PREFIX}{id}")), Listed::Grower(id));
        let upper = id.to_string().to_uppercase();
        assert_eq!(
            grower_id(PREFIX, &format!("{PREFIX}{upper}")),
            Listed::NotAUuid,
            "connect would look for the lower-case name and never find it"
        );
    }

    #[test]
    fn other_names_are_told_apart() {
        let id = Uuid::new_v4();
        assert_eq!(grower_id(PREFIX, &format!("other/{id}")), Listed::Outside);
        assert_eq!(grower_id(PREFIX, &format!("stara-connect/{id}")), Listed::Outside);
        for suffix in [
            "",
            "leaf-owner",
            "not-a-uuid",
            &id.simple().to_string(),
            &format!("{id}/old"),
        ] {
            assert_eq!(
                grower_id(PREFIX, &format!("{PREFIX}{suffix}")),
                Listed::NotAUuid,
                "{suffix}"
            );
        }
    }
}
