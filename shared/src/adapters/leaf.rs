//! Leaf's API: the owner's bearer token, and a Leaf user's Stara credentials.
//!
//! The token (`POST /api/authenticate`, 30 days with `rememberMe`) is kept for the life of the
//! process; a 401 from any call means it expired, so we authenticate once more and repeat that
//! call once. Leaf answers credential calls with the grower's four tokens: they are dropped at
//! deserialisation and never stored, logged or returned.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use reqwest::Url;

use super::base_url::BaseUrl;
use super::http::{Call, Failure, HttpClient, Reply};
use super::secrets::LeafOwner;
use crate::domain::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use crate::domain::model::{Created, CredentialEvent, LeafCredentials, StaraTokens};
use crate::domain::ports::LeafApi;
use crate::domain::time::{Deadline, within_deadline};

const AUTHENTICATE: &str = "POST /api/authenticate";
const GET_USER: &str = "GET /users/{id}";
const GET_CREDENTIALS: &str = "GET /users/{id}/stara-credentials";
const POST_CREDENTIALS: &str = "POST /users/{id}/stara-credentials";
const DELETE_CREDENTIALS: &str = "DELETE /users/{id}/stara-credentials";
const GET_EVENTS: &str = "GET /users/{id}/stara-credentials/events";

pub(crate) struct LeafClient {
    pub(super) http: HttpClient,
    pub(super) base_url: BaseUrl,
    owner: Arc<dyn LeafOwner>,
    /// The owner's bearer token; the lock also makes concurrent callers share one authentication.
    token: tokio::sync::Mutex<Option<SecretString>>,
}

impl LeafClient {
    pub(crate) fn new(http: HttpClient, base_url: BaseUrl, owner: Arc<dyn LeafOwner>) -> Self {
        Self {
            http,
            base_url,
            owner,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// `/services/usermanagement/api/users/{user}` and then `more` segments.
    fn user_url(&self, user: &Uuid, more: &[&str]) -> Url {
        let mut id = Uuid::encode_buffer();
        let id = user.hyphenated().encode_lower(&mut id);
        let path = ["services", "usermanagement", "api", "users", id];
        self.base_url.join(path.into_iter().chain(more.iter().copied()))
    }

    async fn authenticate(&self, deadline: &Deadline) -> Result<SecretString, ConnectorError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            username: &'a str,
            password: &'a str,
            remember_me: &'a str,
        }
        let owner = within_deadline(deadline, self.owner.leaf_owner()).await?;
        let body = serde_json::to_vec(&Body {
            username: &owner.username,
            password: owner.password.expose_secret(),
            remember_me: "true",
        })
        .expect("strings always serialise");
        let call = Call {
            service: Service::Leaf,
            operation: AUTHENTICATE,
            method: reqwest::Method::POST,
            url: self.base_url.join(["api", "authenticate"]),
            bearer: None,
            json_body: Some(&body),
        };
        let reply = self.http.send(&call, deadline).await?;
        match reply.status {
            200..=299 => {
                let parsed: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
                match parsed
                    .as_ref()
                    .and_then(|v| v.get("id_token"))
                    .and_then(|v| v.as_str())
                    .filter(|t| !t.is_empty())
                {
                    Some(token) => {
                        tracing::info!("authenticated with Leaf");
                        Ok(SecretString::from(token))
                    }
                    None => Err(bad_answer(AUTHENTICATE, "the answer has no `id_token`")),
                }
            }
            400 | 401 | 403 => {
                // Read the secret again next time: an operator's fix applies at once.
                self.owner.forget();
                Err(ConnectorError::Configuration(format!(
                    "Leaf rejected the API owner's login (HTTP {}): check the secret named by LEAF_SECRET_ID",
                    reply.status
                )))
            }
            status => Err(unexpected(AUTHENTICATE, status)),
        }
    }

    /// The cached token, authenticating first when there is none.
    pub(super) async fn token(&self, deadline: &Deadline) -> Result<SecretString, ConnectorError> {
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref() {
            return Ok(token.clone());
        }
        let fresh = self.authenticate(deadline).await?;
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// A new token after `stale` got a 401, unless another call already replaced it.
    pub(super) async fn renew(
        &self,
        stale: &SecretString,
        deadline: &Deadline,
    ) -> Result<SecretString, ConnectorError> {
        let mut held = self.token.lock().await;
        if let Some(current) = held.as_ref() {
            if current.expose_secret() != stale.expose_secret() {
                return Ok(current.clone());
            }
        }
        tracing::info!("Leaf token rejected (401): authenticating again");
        *held = None;
        let fresh = self.authenticate(deadline).await?;
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// A safe (repeatable) call with the owner's token: retried on transient failures, and
    /// repeated once with a fresh token after a 401.
    pub(super) async fn send_authorized(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: Url,
        deadline: &Deadline,
    ) -> Result<Reply, ConnectorError> {
        let mut token = self.token(deadline).await?;
        for renewed in [false, true] {
            let call = Call {
                service: Service::Leaf,
                operation,
                method: method.clone(),
                url: url.clone(),
                bearer: Some(&token),
                json_body: None,
            };
            let reply = self.http.send(&call, deadline).await?;
            if reply.status != 401 {
                return Ok(reply);
            }
            if !renewed {
                token = self.renew(&token, deadline).await?;
            }
        }
        Err(UpstreamError::new(
            Service::Leaf,
            operation,
            UpstreamKind::Rejected,
            "HTTP 401 with a freshly issued token",
        )
        .into())
    }
}

#[async_trait]
impl LeafApi for LeafClient {
    async fn get_credentials(
        &self,
        user: &Uuid,
        deadline: &Deadline,
    ) -> Result<Option<LeafCredentials>, ConnectorError> {
        let reply = self
            .send_authorized(
                GET_CREDENTIALS,
                reqwest::Method::GET,
                self.user_url(user, &["stara-credentials"]),
                deadline,
            )
            .await?;
        match reply.status {
            200 => parse_credentials(&reply, GET_CREDENTIALS).map(Some),
            404 => Ok(None),
            status => Err(unexpected(GET_CREDENTIALS, status)),
        }
    }

    async fn user_exists(&self, user: &Uuid, deadline: &Deadline) -> Result<bool, ConnectorError> {
        let reply = self
            .send_authorized(GET_USER, reqwest::Method::GET, self.user_url(user, &[]), deadline)
            .await?;
        match reply.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => Err(unexpected(GET_USER, status)),
        }
    }

    async fn create_credentials(
        &self,
        user: &Uuid,
        tokens: &StaraTokens,
        deadline: &Deadline,
    ) -> Result<Created, ConnectorError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            api_key: &'a str,
            access_token: &'a str,
            access_token_client: &'a str,
            refresh_token: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            api_key: tokens.api_key.expose_secret(),
            access_token: tokens.access_token.expose_secret(),
            access_token_client: tokens.access_token_client.expose_secret(),
            refresh_token: tokens.refresh_token.expose_secret(),
        })
        .expect("strings always serialise");
        let url = self.user_url(user, &["stara-credentials"]);
        let mut token = self.token(deadline).await?;
        let mut renewed = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let call = Call {
                service: Service::Leaf,
                operation: POST_CREDENTIALS,
                method: reqwest::Method::POST,
                url: url.clone(),
                bearer: Some(&token),
                json_body: Some(&body),
            };
            // POST is not idempotent: it is sent once per loop turn, never by the retrying `send`.
            let (failure, retry_after, ambiguous) = match self.http.attempt(&call, deadline).await {
                Ok(reply) => match reply.status {
                    200..=299 => match parse_credentials(&reply, POST_CREDENTIALS) {
                        Ok(stored) => return Ok(Created::Stored(stored)),
                        // A success we cannot read is no clear answer: look before trying again.
                        Err(_) => (Failure::UnreadableAnswer(reply.status), None, true),
                    },
                    401 if !renewed => {
                        // A 401 is a clear "not processed": renew and send again.
                        renewed = true;
                        token = self.renew(&token, deadline).await?;
                        continue;
                    }
                    404 => return Err(ConnectorError::LeafUserNotFound),
                    409 => {
                        return match self.get_credentials(user, deadline).await? {
                            Some(held) => Ok(Created::AlreadyPresent(held)),
                            None => Err(UpstreamError::new(
                                Service::Leaf,
                                POST_CREDENTIALS,
                                UpstreamKind::BadGateway,
                                "HTTP 409, yet no credentials are held",
                            )
                            .into()),
                        };
                    }
                    // 429 is a clear "not processed"; a server error may hide a stored credential.
                    429 => (Failure::Status(429), reply.retry_after, false),
                    status if status >= 500 => (Failure::Status(status), reply.retry_after, true),
                    status => return Err(unexpected(POST_CREDENTIALS, status)),
                },
                Err(e) => {
                    let ambiguous = e.is_ambiguous();
                    (Failure::NoAnswer(e), None, ambiguous)
                }
            };
            if ambiguous {
                // The answer was lost or unclear: look before posting again, so we never make a duplicate.
                if let Some(held) = self.get_credentials(user, deadline).await? {
                    tracing::info!(
                        "the POST's answer was lost, but Leaf holds the credentials: not posting again"
                    );
                    return Ok(Created::Stored(held));
                }
            }
            let retryable = matches!(
                failure,
                Failure::NoAnswer(_) | Failure::UnreadableAnswer(_) | Failure::Status(429 | 502 | 503 | 504)
            );
            match self
                .http
                .pause_before_retry(attempts, retry_after.as_deref(), deadline)
                .filter(|_| retryable)
            {
                Some(delay) => {
                    tracing::warn!(attempt = attempts, failure = ?failure, delayMs = delay.as_millis() as u64,
                        "retrying Leaf POST credentials");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(failure
                        .into_error(Service::Leaf, POST_CREDENTIALS, attempts)
                        .into());
                }
            }
        }
    }

    async fn delete_credentials(&self, user: &Uuid, deadline: &Deadline) -> Result<bool, ConnectorError> {
        // DELETE is idempotent: repeating it after a lost answer ends in the same state (a 404).
        let reply = self
            .send_authorized(
                DELETE_CREDENTIALS,
                reqwest::Method::DELETE,
                self.user_url(user, &["stara-credentials"]),
                deadline,
            )
            .await?;
        match reply.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => Err(unexpected(DELETE_CREDENTIALS, status)),
        }
    }

    async fn events(
        &self,
        user: &Uuid,
        deadline: &Deadline,
    ) -> Result<Option<Vec<CredentialEvent>>, ConnectorError> {
        let reply = self
            .send_authorized(
                GET_EVENTS,
                reqwest::Method::GET,
                self.user_url(user, &["stara-credentials", "events"]),
                deadline,
            )
            .await?;
        match reply.status {
            200 => serde_json::from_slice::<Vec<CredentialEvent>>(&reply.body)
                .map(Some)
                .map_err(|_| bad_answer(GET_EVENTS, "the answer is not a JSON array of events")),
            404 => Ok(None),
            status => Err(unexpected(GET_EVENTS, status)),
        }
    }
}

/// Reads `id`, `status` and `createdTime`; the token fields are skipped by the parser and never held.
fn parse_credentials(reply: &Reply, operation: &'static str) -> Result<LeafCredentials, ConnectorError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        id: Option<String>,
        status: Option<String>,
        created_time: Option<String>,
    }
    let wire: Wire = serde_json::from_slice(&reply.body)
        .map_err(|_| bad_answer(operation, "the answer is not a JSON credentials object"))?;
    match (wire.id, wire.status) {
        (Some(id), Some(status)) if !id.is_empty() => Ok(LeafCredentials {
            id,
            status,
            created_time: wire.created_time,
        }),
        _ => Err(bad_answer(operation, "the answer lacks `id` or `status`")),
    }
}

pub(super) fn bad_answer(operation: &'static str, detail: &str) -> ConnectorError {
    UpstreamError::new(Service::Leaf, operation, UpstreamKind::BadGateway, detail).into()
}

pub(super) fn unexpected(operation: &'static str, status: u16) -> ConnectorError {
    UpstreamError::unexpected_status(Service::Leaf, operation, status).into()
}
