//! Leaf's alerts webhooks (`/services/alerts/api/alerts/webhooks`), with the API owner's token
//! of [`LeafClient`]: register one, list them, remove one. There is no update.
//!
//! Leaf lets one webhook listen to a given event: a second registration for it is refused with
//! `400` and `eventRegisteredTwice` in the body, which [`Registration::EventTaken`] reports. So a
//! POST repeated after a lost answer cannot make a duplicate: it meets the first one instead.
//! The webhook's secret goes into the POST body only; listings are read field by field, so a
//! secret Leaf might list is never held.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::http::{Call, Failure, Reply};
use super::leaf::{LeafClient, bad_answer, unexpected};
use crate::domain::error::{ConnectorError, Service};
use crate::domain::time::Deadline;

const POST_WEBHOOK: &str = "POST /alerts/webhooks";
const GET_WEBHOOKS: &str = "GET /alerts/webhooks";
const DELETE_WEBHOOK: &str = "DELETE /alerts/webhooks/{id}";

/// What Leaf says in a 400 when another webhook already listens to one of the events.
pub(crate) const EVENT_REGISTERED_TWICE: &str = "eventRegisteredTwice";

/// A webhook to register.
#[derive(Debug)]
pub(crate) struct NewWebhook {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) events: Vec<String>,
    /// The key Leaf signs its deliveries with.
    pub(crate) secret: SecretString,
}

/// A registered webhook, as Leaf lists it (without any secret).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Webhook {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) url: Option<String>,
    #[serde(default)]
    pub(crate) events: Vec<String>,
}

/// How a registration ended, when Leaf answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    /// Registered, with this id.
    Created(String),
    /// Refused: another webhook already listens to one of the events (`eventRegisteredTwice`).
    EventTaken,
}

/// The webhook calls of the `Custom::LeafWebhook` resource.
#[async_trait]
pub(crate) trait LeafWebhooks: Send + Sync {
    /// Registers `webhook`. A lost answer is followed by another POST, never by a duplicate.
    async fn register(
        &self,
        webhook: &NewWebhook,
        deadline: &Deadline,
    ) -> Result<Registration, ConnectorError>;
    /// Every webhook of the API owner.
    async fn list(&self, deadline: &Deadline) -> Result<Vec<Webhook>, ConnectorError>;
    /// Removes one; `false` when Leaf has no webhook of that id (404).
    async fn remove(&self, id: &str, deadline: &Deadline) -> Result<bool, ConnectorError>;
}

impl LeafClient {
    /// The webhooks' URL, and with `id` the URL of one (the id percent-encoded as a segment).
    fn webhooks_url(&self, id: Option<&str>) -> reqwest::Url {
        let path = ["services", "alerts", "api", "alerts", "webhooks"];
        self.base_url.join(path.into_iter().chain(id))
    }
}

#[async_trait]
impl LeafWebhooks for LeafClient {
    async fn register(
        &self,
        webhook: &NewWebhook,
        deadline: &Deadline,
    ) -> Result<Registration, ConnectorError> {
        #[derive(Serialize)]
        struct Body<'a> {
            events: &'a [String],
            name: &'a str,
            secret: &'a str,
            url: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            events: &webhook.events,
            name: &webhook.name,
            secret: webhook.secret.expose_secret(),
            url: &webhook.url,
        })
        .expect("strings always serialise");
        let url = self.webhooks_url(None);
        let mut token = self.token(deadline).await?;
        let mut renewed = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let call = Call {
                service: Service::Leaf,
                operation: POST_WEBHOOK,
                method: reqwest::Method::POST,
                url: url.clone(),
                bearer: Some(&token),
                json_body: Some(&body),
            };
            // Sent once per turn: a repeat after a lost answer meets `eventRegisteredTwice`.
            let (failure, retry_after) = match self.http.attempt(&call, deadline).await {
                Ok(reply) => match reply.status {
                    200..=299 => {
                        return created_id(&reply)
                            .map(Registration::Created)
                            .ok_or_else(|| bad_answer(POST_WEBHOOK, "the answer names no webhook id"));
                    }
                    400 if String::from_utf8_lossy(&reply.body).contains(EVENT_REGISTERED_TWICE) => {
                        return Ok(Registration::EventTaken);
                    }
                    401 if !renewed => {
                        renewed = true;
                        token = self.renew(&token, deadline).await?;
                        continue;
                    }
                    status @ (429 | 500..) => (Failure::Status(status), reply.retry_after),
                    status => return Err(unexpected(POST_WEBHOOK, status)),
                },
                Err(e) => (Failure::NoAnswer(e), None),
            };
            match self
                .http
                .pause_before_retry(attempts, retry_after.as_deref(), deadline)
            {
                Some(delay) => {
                    tracing::warn!(attempt = attempts, failure = ?failure, delayMs = delay.as_millis() as u64,
                        "retrying Leaf POST webhook");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(failure.into_error(Service::Leaf, POST_WEBHOOK, attempts).into()),
            }
        }
    }

    async fn list(&self, deadline: &Deadline) -> Result<Vec<Webhook>, ConnectorError> {
        let url = self.webhooks_url(None);
        let reply = self
            .send_authorized(GET_WEBHOOKS, reqwest::Method::GET, url, deadline)
            .await?;
        match reply.status {
            200 => serde_json::from_slice(&reply.body)
                .map_err(|_| bad_answer(GET_WEBHOOKS, "the answer is not a JSON array of webhooks")),
            status => Err(unexpected(GET_WEBHOOKS, status)),
        }
    }

    async fn remove(&self, id: &str, deadline: &Deadline) -> Result<bool, ConnectorError> {
        // DELETE is idempotent: repeating it after a lost answer ends in the same state (a 404).
        let url = self.webhooks_url(Some(id));
        let reply = self
            .send_authorized(DELETE_WEBHOOK, reqwest::Method::DELETE, url, deadline)
            .await?;
        match reply.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => Err(unexpected(DELETE_WEBHOOK, status)),
        }
    }
}

/// The new webhook's id: the last segment of `Location`'s path, else `id` in a JSON body.
fn created_id(reply: &Reply) -> Option<String> {
    let from_location = reply.location.as_deref().and_then(|location| {
        let path = location.split(['?', '#']).next().unwrap_or_default();
        let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        (!last.is_empty() && !last.contains(':')).then(|| last.to_owned())
    });
    from_location.or_else(|| {
        let body: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
        match body.get("id")? {
            serde_json::Value::String(id) if !id.is_empty() => Some(id.clone()),
            serde_json::Value::Number(id) => Some(id.to_string()),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(location: Option<&str>, body: &str) -> Reply {
        Reply {
            status: 201,
            retry_after: None,
            location: location.map(str::to_owned),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_id_comes_from_location_or_the_body() {
        let at = |location| created_id(&reply(Some(location), ""));
        assert_eq!(
            at("/services/alerts/api/alerts/webhooks/abc-1").as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            at("https://leaf.test/webhooks/abc-2/?x=1").as_deref(),
            Some("abc-2")
        );
        assert_eq!(at("abc-3").as_deref(), Some("abc-3"));
        assert_eq!(
            created_id(&reply(None, r#"{"id": "abc-4"}"#)).as_deref(),
            Some("abc-4")
        );
        assert_eq!(created_id(&reply(None, r#"{"id": 5}"#)).as_deref(), Some("5"));
        assert_eq!(
            created_id(&reply(Some("/"), r#"{"id": "abc-6"}"#)).as_deref(),
            Some("abc-6")
        );
        assert_eq!(created_id(&reply(None, r#"{"name": "x"}"#)), None);
        assert_eq!(created_id(&reply(None, "")), None);
    }

    #[test]
    fn a_listing_is_read_without_secrets() {
        let listed: Vec<Webhook> = serde_json::from_str(
            r#"[{"id": "w1", "name": "n", "url": "https://x", "events": ["a"], "secret": "s3cr3t"},
                {"id": "w2"}]"#,
        )
        .unwrap();
        assert_eq!(listed[0].events, ["a"]);
        assert_eq!(
            listed[1],
            Webhook {
                id: "w2".into(),
                ..Webhook::default()
            }
        );
        assert!(!format!("{listed:?}").contains("s3cr3t"));
    }

    #[test]
    fn one_webhooks_url_has_its_id_as_a_segment() {
        struct NoOwner;
        #[async_trait]
        impl super::super::secrets::LeafOwner for NoOwner {
            async fn leaf_owner(&self) -> Result<super::super::secrets::LeafOwnerLogin, ConnectorError> {
                Err(ConnectorError::Configuration("none".into()))
            }
            fn forget(&self) {}
        }
        let http = super::super::http::HttpClient::new(Default::default());
        let base = super::super::base_url::BaseUrl::parse("https://leaf.test").unwrap();
        let client = LeafClient::new(http, base, std::sync::Arc::new(NoOwner));
        let url = |id| client.webhooks_url(id).to_string();
        assert_eq!(url(None), "https://leaf.test/services/alerts/api/alerts/webhooks");
        assert_eq!(
            url(Some("w-1")),
            "https://leaf.test/services/alerts/api/alerts/webhooks/w-1"
        );
        assert_eq!(
            url(Some("a/b?c")),
            "https://leaf.test/services/alerts/api/alerts/webhooks/a%2Fb%3Fc"
        );
    }
}
