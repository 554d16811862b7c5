//! Secrets Manager behind a narrow `SecretSource`, with a time-to-live cache in front.
//!
//! A warm function makes no Secrets Manager call for a secret it read within the TTL. Values
//! are held as `SecretString` from the moment they arrive; errors name the secret, never its value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::SecretString;

use super::error_chain;

/// Why a secret could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// The store could not answer now (throttled, unreachable, internal error): try later.
    Unavailable(String),
    /// The store refused for good (access denied, KMS key unusable): a deployment problem.
    Denied(String),
}

/// A secret's current value, and the version it is.
#[derive(Clone, Debug)]
pub(crate) struct SecretValue {
    pub(crate) value: SecretString,
    pub(crate) version: Option<String>,
}

/// Where secrets come from. One narrow capability, so tests can put a map in its place.
#[async_trait]
pub(crate) trait SecretSource: Send + Sync {
    /// The secret's current value, or `None` when no such secret exists.
    async fn fetch(&self, secret_id: &str) -> Result<Option<SecretValue>, FetchError>;
}

/// The real store: AWS Secrets Manager.
pub(crate) struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerSource {
    pub(crate) fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn fetch(&self, secret_id: &str) -> Result<Option<SecretValue>, FetchError> {
        tracing::debug!(secretId = secret_id, "secrets manager GetSecretValue");
        match self.client.get_secret_value().secret_id(secret_id).send().await {
            Ok(output) => match output.secret_string() {
                Some(value) => Ok(Some(SecretValue {
                    value: SecretString::from(value),
                    version: output.version_id().map(str::to_owned),
                })),
                None => Err(FetchError::Denied(
                    "the secret holds binary data, not a JSON string".into(),
                )),
            },
            Err(SdkError::ServiceError(e)) => match e.err() {
                // A secret scheduled for deletion answers InvalidRequest: for us it is gone.
                GetSecretValueError::ResourceNotFoundException(_)
                | GetSecretValueError::InvalidRequestException(_) => Ok(None),
                GetSecretValueError::DecryptionFailure(_) => {
                    Err(FetchError::Denied("KMS could not decrypt the secret".into()))
                }
                other if other.code() == Some("AccessDeniedException") => {
                    Err(FetchError::Denied("access denied".into()))
                }
                other => Err(FetchError::Unavailable(
                    other.code().unwrap_or("service error").to_owned(),
                )),
            },
            // Timeouts, connection failures and throttling that outlasted the SDK's own retries.
            Err(other) => Err(FetchError::Unavailable(error_chain(&other))),
        }
    }
}

struct Cached {
    value: SecretValue,
    fetched: Instant,
}

/// A secret source with a time-to-live cache in front. Misses are not cached, so a login
/// stored after a failed connect is found on the next try.
pub(crate) struct SecretCache {
    source: Arc<dyn SecretSource>,
    ttl: Duration,
    entries: Mutex<HashMap<String, Cached>>,
}

impl SecretCache {
    pub(crate) fn new(source: Arc<dyn SecretSource>, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn get(&self, secret_id: &str) -> Result<Option<SecretValue>, FetchError> {
        if let Some(hit) = self.fresh(secret_id) {
            return Ok(Some(hit));
        }
        let value = self.source.fetch(secret_id).await?;
        if let Some(value) = &value {
            let entry = Cached {
                value: value.clone(),
                fetched: Instant::now(),
            };
            self.lock().insert(secret_id.to_owned(), entry);
        }
        Ok(value)
    }

    /// Drops the entry, so the next `get` asks the store.
    pub(crate) fn forget(&self, secret_id: &str) {
        self.lock().remove(secret_id);
    }

    fn fresh(&self, secret_id: &str) -> Option<SecretValue> {
        let entries = self.lock();
        let entry = entries.get(secret_id)?;
        (entry.fetched.elapsed() < self.ttl).then(|| entry.value.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // A panic while holding the lock cannot leave the map half-written: recover it.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
