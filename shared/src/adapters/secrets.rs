//! The logins this product keeps in AWS Secrets Manager, by what they are for: each grower's
//! Stara login and the Leaf API owner's. Read through the TTL cache of `secret_cache`; errors
//! name the secret, never its value.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::secret_cache::{FetchError, SecretCache, SecretSource, SecretValue};
use crate::domain::error::ConnectorError;
use crate::domain::model::StaraLogin;
use crate::domain::ports::GrowerLogins;

/// The Leaf API owner's login, from secret `LEAF_SECRET_ID`.
#[derive(Clone, Debug)]
pub(crate) struct LeafOwnerLogin {
    pub(crate) username: String,
    pub(crate) password: SecretString,
}

/// Reads the Leaf API owner's login.
#[async_trait]
pub(crate) trait LeafOwner: Send + Sync {
    async fn leaf_owner(&self) -> Result<LeafOwnerLogin, ConnectorError>;
    /// Drops the cached login after Leaf refused it, so a corrected secret applies at once.
    fn forget(&self);
}

/// Reads the secret Leaf signs its alerts with.
#[async_trait]
pub(crate) trait WebhookSecret: Send + Sync {
    async fn webhook_secret(&self) -> Result<SecretString, ConnectorError>;
}

/// The logins this product keeps, by what they are for.
pub(crate) struct Secrets {
    cache: SecretCache,
    leaf_secret_id: String,
    grower_prefix: String,
    /// `{"secret": "..."}`, the Leaf alerts webhook's signing secret (LEAF_WEBHOOK_SECRET_ID).
    webhook_secret_id: Option<String>,
}

impl Secrets {
    /// Logins read through a cache of `ttl`: the Leaf owner's from `leaf_secret_id`, each
    /// grower's from `<grower_prefix><leafUserId>`.
    pub(crate) fn new(
        source: Arc<dyn SecretSource>,
        ttl: Duration,
        leaf_secret_id: &str,
        grower_prefix: &str,
    ) -> Self {
        Self {
            cache: SecretCache::new(source, ttl),
            leaf_secret_id: leaf_secret_id.to_owned(),
            grower_prefix: grower_prefix.to_owned(),
            webhook_secret_id: None,
        }
    }

    /// Also reads the alerts webhook's signing secret, from `secret_id`.
    pub(crate) fn with_webhook_secret(mut self, secret_id: Option<String>) -> Self {
        self.webhook_secret_id = secret_id;
        self
    }

    fn grower_secret_id(&self, leaf_user_id: &Uuid) -> String {
        format!("{}{}", self.grower_prefix, leaf_user_id)
    }

    async fn read(&self, secret_id: &str) -> Result<Option<SecretValue>, ConnectorError> {
        self.cache.get(secret_id).await.map_err(|e| match e {
            FetchError::Unavailable(detail) => ConnectorError::SecretsUnavailable {
                secret_id: secret_id.to_owned(),
                detail,
            },
            FetchError::Denied(detail) => {
                ConnectorError::Configuration(format!("secret `{secret_id}`: {detail}"))
            }
        })
    }
}

#[async_trait]
impl GrowerLogins for Secrets {
    async fn grower_login(&self, leaf_user_id: &Uuid) -> Result<StaraLogin, ConnectorError> {
        let secret_id = self.grower_secret_id(leaf_user_id);
        let value = self
            .read(&secret_id)
            .await?
            .ok_or_else(|| ConnectorError::GrowerLoginNotFound {
                secret_id: secret_id.clone(),
            })?;
        let (login, password) =
            parse_login(&value.value, "login").map_err(|reason| ConnectorError::GrowerLoginMalformed {
                secret_id: secret_id.clone(),
                reason,
            })?;
        Ok(StaraLogin {
            login,
            password,
            version: value.version,
        })
    }

    fn forget(&self, leaf_user_id: &Uuid) {
        self.cache.forget(&self.grower_secret_id(leaf_user_id));
    }
}

#[async_trait]
impl LeafOwner for Secrets {
    async fn leaf_owner(&self) -> Result<LeafOwnerLogin, ConnectorError> {
        let id = &self.leaf_secret_id;
        let value = self.read(id).await?.ok_or_else(|| {
            ConnectorError::Configuration(format!("secret `{id}` (LEAF_SECRET_ID) does not exist"))
        })?;
        let (username, password) = parse_login(&value.value, "username").map_err(|reason| {
            ConnectorError::Configuration(format!("secret `{id}` (LEAF_SECRET_ID) is malformed: {reason}"))
        })?;
        Ok(LeafOwnerLogin { username, password })
    }

    fn forget(&self) {
        self.cache.forget(&self.leaf_secret_id);
    }
}

#[async_trait]
impl WebhookSecret for Secrets {
    async fn webhook_secret(&self) -> Result<SecretString, ConnectorError> {
        let Some(id) = &self.webhook_secret_id else {
            return Err(ConnectorError::Configuration(
                "LEAF_WEBHOOK_SECRET_ID is not set".into(),
            ));
        };
        let value = self.read(id).await?.ok_or_else(|| {
            ConnectorError::Configuration(format!("secret `{id}` (LEAF_WEBHOOK_SECRET_ID) does not exist"))
        })?;
        let json: Option<serde_json::Value> = serde_json::from_str(value.value.expose_secret()).ok();
        match json
            .as_ref()
            .and_then(|j| j.get("secret"))
            .and_then(serde_json::Value::as_str)
        {
            Some(secret) if !secret.is_empty() => Ok(SecretString::from(secret)),
            _ => Err(ConnectorError::Configuration(format!(
                "secret `{id}` (LEAF_WEBHOOK_SECRET_ID) must hold {{\"secret\": \"...\"}}"
            ))),
        }
    }
}

/// Parses `{"<name_field>": "...", "password": "..."}`. The reasons it gives are fixed texts:
/// a parser's own message could quote the value it choked on.
fn parse_login(value: &SecretString, name_field: &str) -> Result<(String, SecretString), String> {
    let json: serde_json::Value =
        serde_json::from_str(value.expose_secret()).map_err(|_| "not valid JSON".to_owned())?;
    let object = json.as_object().ok_or("not a JSON object")?;
    let name = match object.get(name_field) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err(format!("`{name_field}` must be a non-empty string")),
        None => return Err(format!("`{name_field}` is missing")),
    };
    let password = match object.get("password") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => SecretString::from(s.as_str()),
        Some(_) => return Err("`password` must be a non-empty string".into()),
        None => return Err("`password` is missing".into()),
    };
    Ok((name, password))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct MapSource {
        values: Mutex<HashMap<String, String>>,
        calls: AtomicUsize,
        fail: Mutex<Option<FetchError>>,
    }

    #[async_trait]
    impl SecretSource for MapSource {
        async fn fetch(&self, secret_id: &str) -> Result<Option<SecretValue>, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(e);
            }
            Ok(self.values.lock().unwrap().get(secret_id).map(|v| SecretValue {
                value: SecretString::from(v.as_str()),
                version: Some(format!("v{}", v.len())),
            }))
        }
    }

    fn setup(ttl: Duration) -> (Arc<MapSource>, Secrets) {
        let source = Arc::new(MapSource::default());
        (
            source.clone(),
            Secrets::new(source.clone(), ttl, "leaf-owner", "stara-connect/growers/"),
        )
    }

    #[tokio::test]
    async fn a_cached_secret_is_read_once_within_the_ttl() {
        let (source, secrets) = setup(Duration::from_secs(300));
        let user = Uuid::new_v4();
        source.values.lock().unwrap().insert(
            format!("stara-connect/growers/{user}"),
            r#"{"login":"g","password":"pw-1"}"#.into(),
        );
        for _ in 0..5 {
            let login = secrets.grower_login(&user).await.unwrap();
            assert_eq!(login.login, "g");
            assert_eq!(login.password.expose_secret(), "pw-1");
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_expired_entry_is_read_again() {
        let (source, secrets) = setup(Duration::ZERO);
        source.values.lock().unwrap().insert(
            "leaf-owner".into(),
            r#"{"username":"owner","password":"pw"}"#.into(),
        );
        secrets.leaf_owner().await.unwrap();
        secrets.leaf_owner().await.unwrap();
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn misses_are_not_cached() {
        let (source, secrets) = setup(Duration::from_secs(300));
        let user = Uuid::new_v4();
        let err = secrets.grower_login(&user).await.unwrap_err();
        assert_eq!(
            err,
            ConnectorError::GrowerLoginNotFound {
                secret_id: format!("stara-connect/growers/{user}")
            }
        );
        source.values.lock().unwrap().insert(
            format!("stara-connect/growers/{user}"),
            r#"{"login":"g","password":"p"}"#.into(),
        );
        assert!(secrets.grower_login(&user).await.is_ok());
    }

    #[tokio::test]
    async fn malformed_secrets_name_the_secret_but_never_the_value() {
        let (source, secrets) = setup(Duration::from_secs(300));
        let user = Uuid::new_v4();
        let id = format!("stara-connect/growers/{user}");
        for (body, reason) in [
            ("hunter2-not-json", "not valid JSON"),
            (r#"["hunter2"]"#, "not a JSON object"),
            (r#"{"password":"hunter2"}"#, "`login` is missing"),
            (
                r#"{"login":"g","password":12345678}"#,
                "`password` must be a non-empty string",
            ),
            (r#"{"login":"g"}"#, "`password` is missing"),
        ] {
            source.values.lock().unwrap().insert(id.clone(), body.into());
            GrowerLogins::forget(&secrets, &user);
            let err = secrets.grower_login(&user).await.unwrap_err();
            assert_eq!(
                err,
                ConnectorError::GrowerLoginMalformed {
                    secret_id: id.clone(),
                    reason: reason.into()
                }
            );
            let text = err.to_string();
            assert!(!text.contains("hunter2") && !text.contains("12345678"), "{text}");
        }
    }

    #[tokio::test]
    async fn store_failures_are_typed() {
        let (source, secrets) = setup(Duration::from_secs(300));
        *source.fail.lock().unwrap() = Some(FetchError::Unavailable("ThrottlingException".into()));
        let err = secrets.leaf_owner().await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.code(), "secrets_unavailable");
        *source.fail.lock().unwrap() = Some(FetchError::Denied("access denied".into()));
        let err = secrets.leaf_owner().await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.code(), "configuration_error");
    }

    #[test]
    fn debug_output_redacts_passwords() {
        let login = StaraLogin {
            login: "g".into(),
            password: SecretString::from("hunter2"),
            version: None,
        };
        assert!(!format!("{login:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_forgotten_login_is_read_again_with_its_version() {
        let (source, secrets) = setup(Duration::from_secs(300));
        let user = Uuid::new_v4();
        let id = format!("stara-connect/growers/{user}");
        source
            .values
            .lock()
            .unwrap()
            .insert(id.clone(), r#"{"login":"g","password":"old"}"#.into());
        let first = secrets.grower_login(&user).await.unwrap();
        source
            .values
            .lock()
            .unwrap()
            .insert(id, r#"{"login":"g","password":"fixed-pw"}"#.into());
        assert_eq!(
            secrets
                .grower_login(&user)
                .await
                .unwrap()
                .password
                .expose_secret(),
            "old",
            "cached"
        );
        GrowerLogins::forget(&secrets, &user);
        let fixed = secrets.grower_login(&user).await.unwrap();
        assert_eq!(fixed.password.expose_secret(), "fixed-pw");
        assert_ne!(fixed.version, first.version);
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }
}
