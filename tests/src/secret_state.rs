//! What Secrets Manager (moto) holds about a grower's login secret besides its value: the tags
//! the connector keeps its lifecycle state in, and the secret's versions. Read with
//! `DescribeSecret`, written as an operator would (`PutSecretValue`, `TagResource`).

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::types::Tag;
use serde_json::Value;

use crate::moto::secrets_client;

/// Tag set on a grower's login secret when the grower was disconnected (`DELETE`); value `true`.
pub const DISCONNECTED_TAG: &str = "stara-connect:disconnected";
/// Tag set on a grower's login secret when Stara rejected its login: the VersionId rejected.
pub const LOGIN_REJECTED_TAG: &str = "stara-connect:login-rejected-version";
/// The version stage of a secret's current value.
const CURRENT: &str = "AWSCURRENT";

/// A secret as `DescribeSecret` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Described {
    /// Every tag, key → value.
    pub tags: BTreeMap<String, String>,
    /// The VersionId that carries the `AWSCURRENT` stage.
    pub current_version: Option<String>,
    /// How many versions the secret has (any stage).
    pub versions: usize,
}

impl Described {
    /// Whether the secret carries `stara-connect:disconnected` = `true`.
    pub fn disconnected(&self) -> bool {
        self.tags.get(DISCONNECTED_TAG).map(String::as_str) == Some("true")
    }

    /// The value of `stara-connect:login-rejected-version`, if the secret carries it.
    pub fn rejected_version(&self) -> Option<&str> {
        self.tags.get(LOGIN_REJECTED_TAG).map(String::as_str)
    }

    /// The lifecycle marks (`stara-connect:` tags but the credentials id): what people did.
    pub fn lifecycle_tags(&self) -> BTreeMap<String, String> {
        // The credentials-id tag records what Leaf holds, not a person's decision.
        self.tags
            .iter()
            .filter(|(key, _)| {
                key.starts_with("stara-connect:") && key.as_str() != "stara-connect:credentials-id"
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

/// `DescribeSecret` of `name`; panics if the secret does not exist.
pub async fn describe(name: &str) -> Described {
    let described = secrets_client()
        .await
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("moto: describe_secret({name}): {}", DisplayErrorContext(&error)));
    let tags = described
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value().unwrap_or_default().to_owned())))
        .collect();
    let stages = described.version_ids_to_stages();
    let current_version = stages.and_then(|stages| {
        stages
            .iter()
            .find(|(_, names)| names.iter().any(|stage| stage == CURRENT))
            .map(|(version, _)| version.clone())
    });
    Described {
        tags,
        current_version,
        versions: stages.map_or(0, |stages| stages.len()),
    }
}

/// The VersionId of the secret's current value; panics if there is none.
pub async fn current_version(name: &str) -> String {
    describe(name)
        .await
        .current_version
        .unwrap_or_else(|| panic!("moto: secret {name} has no AWSCURRENT version"))
}

/// Gives an existing secret a new value (`PutSecretValue`): a new version that becomes
/// `AWSCURRENT`. Returns its VersionId.
pub async fn put_new_version(name: &str, value: &Value) -> String {
    let put = secrets_client()
        .await
        .put_secret_value()
        .secret_id(name)
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap_or_else(|error| panic!("moto: put_secret_value({name}): {}", DisplayErrorContext(&error)));
    put.version_id()
        .unwrap_or_else(|| panic!("moto: put_secret_value({name}) returned no VersionId"))
        .to_owned()
}

/// Sets one tag on the secret (`TagResource`), as the connector or an operator would.
pub async fn tag(name: &str, key: &str, value: &str) {
    secrets_client()
        .await
        .tag_resource()
        .secret_id(name)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .unwrap_or_else(|error| panic!("moto: tag_resource({name}): {}", DisplayErrorContext(&error)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Needs moto, like the rest of the bed.
    #[tokio::test]
    async fn versions_and_tags_as_describe_secret_shows_them() {
        let name = format!("testbed/{}", uuid::Uuid::new_v4());
        crate::moto::put_secret(&name, &json!({"login": "g", "password": "pw-1"})).await;
        let first = describe(&name).await;
        assert_eq!(
            (first.versions, first.lifecycle_tags().len()),
            (1, 0),
            "{first:?}"
        );
        let first_version = first.current_version.clone().expect("a current version");

        let second_version = put_new_version(&name, &json!({"login": "g", "password": "pw-2"})).await;
        assert_ne!(second_version, first_version);
        assert_eq!(current_version(&name).await, second_version);

        tag(&name, LOGIN_REJECTED_TAG, &second_version).await;
        tag(&name, DISCONNECTED_TAG, "true").await;
        let tagged = describe(&name).await;
        assert_eq!(tagged.rejected_version(), Some(second_version.as_str()));
        assert!(tagged.disconnected());
        assert_eq!(tagged.lifecycle_tags().len(), 2);
        crate::moto::delete_secret(&name).await;
    }
}
