//! What people did to a grower, kept as tags on the grower's login secret: no store of our own,
//! and `ListSecrets` returns the tags and versions with the names, so a sweep reads every
//! grower's state at no extra cost. docs/HEALTH.md names the tags and what sets them.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;
use uuid::Uuid;

use super::error_chain;
use super::metrics::MetricSet;
use crate::domain::error::ConnectorError;
use crate::domain::model::{GrowerState, Mark};
use crate::domain::ports::GrowerStates;
use crate::domain::time::record_upstream;

/// `true` while an operator's disconnect holds.
pub(crate) const DISCONNECTED_TAG: &str = "stara-connect:disconnected";
/// The secret version whose login Stara rejected.
pub(crate) const LOGIN_REJECTED_TAG: &str = "stara-connect:login-rejected-version";
/// The id of the Leaf credentials connect last attached (a Leaf alert names only that id).
pub(crate) const CREDENTIALS_TAG: &str = "stara-connect:credentials-id";
/// The staging label of a secret's current version.
const CURRENT: &str = "AWSCURRENT";

/// The state a secret's tags and versions (version id → staging labels) describe.
pub(crate) fn state_from(tags: &[Tag], versions: Option<&HashMap<String, Vec<String>>>) -> GrowerState {
    let tag = |key: &str| tags.iter().find(|t| t.key() == Some(key)).and_then(Tag::value);
    let current = versions.and_then(|v| v.iter().find(|(_, stages)| stages.iter().any(|s| s == CURRENT)));
    GrowerState {
        disconnected: tag(DISCONNECTED_TAG).is_some_and(|v| v.eq_ignore_ascii_case("true")),
        rejected_version: tag(LOGIN_REJECTED_TAG).map(str::to_owned),
        current_version: current.map(|(id, _)| id.clone()),
        credentials_id: tag(CREDENTIALS_TAG).map(str::to_owned),
    }
}

/// The growers' states in Secrets Manager, next to their logins.
pub(crate) struct SecretsManagerStates {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
}

impl SecretsManagerStates {
    pub(crate) fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    fn secret_id(&self, user: &Uuid) -> String {
        format!("{}{}", self.prefix, user)
    }

    async fn write(&self, secret_id: &str, mark: &Mark) -> Result<(), String> {
        match mark {
            Mark::Disconnected => self.tag(secret_id, DISCONNECTED_TAG, "true").await,
            Mark::LoginRejected { version } => self.tag(secret_id, LOGIN_REJECTED_TAG, version).await,
            Mark::Attached { credentials_id } => self.tag(secret_id, CREDENTIALS_TAG, credentials_id).await,
            Mark::Cleared => self
                .client
                .untag_resource()
                .secret_id(secret_id)
                .tag_keys(DISCONNECTED_TAG)
                .tag_keys(LOGIN_REJECTED_TAG)
                .send()
                .await
                .map(|_| ())
                .map_err(sdk_error_text),
        }
    }

    async fn tag(&self, secret_id: &str, key: &str, value: &str) -> Result<(), String> {
        let tag = Tag::builder().key(key).value(value).build();
        self.client
            .tag_resource()
            .secret_id(secret_id)
            .tags(tag)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error_text)
    }
}

fn sdk_error_text<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    e: SdkError<E, R>,
) -> String {
    match &e {
        SdkError::ServiceError(service) => service.err().code().unwrap_or("service error").to_owned(),
        _ => error_chain(&e),
    }
}

#[async_trait]
impl GrowerStates for SecretsManagerStates {
    async fn state(&self, user: &Uuid) -> Result<Option<GrowerState>, ConnectorError> {
        let secret_id = self.secret_id(user);
        match self.client.describe_secret().secret_id(&secret_id).send().await {
            Ok(secret) => Ok(Some(state_from(secret.tags(), secret.version_ids_to_stages()))),
            Err(SdkError::ServiceError(e)) => match e.err().code() {
                Some("ResourceNotFoundException") => Ok(None),
                Some("AccessDeniedException") => Err(ConnectorError::Configuration(format!(
                    "secret `{secret_id}`: DescribeSecret access denied (the function needs \
                     secretsmanager:DescribeSecret on the grower prefix)"
                ))),
                code => Err(ConnectorError::SecretsUnavailable {
                    secret_id,
                    detail: code.unwrap_or("service error").to_owned(),
                }),
            },
            Err(other) => Err(ConnectorError::SecretsUnavailable {
                secret_id,
                detail: error_chain(&other),
            }),
        }
    }

    async fn mark(&self, user: &Uuid, mark: Mark) {
        let secret_id = self.secret_id(user);
        let started = Instant::now();
        let written = self.write(&secret_id, &mark).await;
        // A workflow waits for its mark alone: that wait is upstream time, not the function's own.
        record_upstream(started.elapsed());
        match written {
            // Routine on every attach; the connect's own log line names the credentials.
            Ok(()) if matches!(mark, Mark::Attached { .. }) => {
                tracing::debug!(leafUserId = %user, mark = ?mark, "grower state recorded")
            }
            Ok(()) => tracing::info!(leafUserId = %user, mark = ?mark, "grower state recorded"),
            Err(detail) => {
                // The workflow it records has happened: tell the operator, do not undo it.
                tracing::warn!(leafUserId = %user, mark = ?mark, secretId = secret_id,
                    code = "state_write_failed", error = detail, "grower state not recorded");
                MetricSet::new("connect").count("StateWriteFailures", 1).emit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag::builder().key(key).value(value).build()
    }

    #[test]
    fn tags_and_versions_make_the_state() {
        let versions = HashMap::from([
            ("v1".to_owned(), vec!["AWSPREVIOUS".to_owned()]),
            ("v2".to_owned(), vec!["AWSCURRENT".to_owned()]),
        ]);
        let state = state_from(
            &[
                tag(DISCONNECTED_TAG, "true"),
                tag(LOGIN_REJECTED_TAG, "v1"),
                tag("owner", "ops"),
            ],
            Some(&versions),
        );
        assert_eq!(
            state,
            GrowerState {
                disconnected: true,
                rejected_version: Some("v1".into()),
                current_version: Some("v2".into()),
                credentials_id: None,
            }
        );
        assert!(!state.login_rejected(), "v2 is a new version");
        assert_eq!(state_from(&[], None), GrowerState::default());
        assert!(!state_from(&[tag(DISCONNECTED_TAG, "false")], None).disconnected);
    }
}
