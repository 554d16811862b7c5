//! Leaf's alerts webhooks: `POST` and `GET /services/alerts/api/alerts/webhooks`,
//! `DELETE .../webhooks/{id}`. Leaf lets one webhook listen to a given event: a registration
//! for an event another webhook listens to gets `400` `{"error": "eventRegisteredTwice"}`.
//!
//! `POST` answers `201` with the new id in `Location` and no body. `GET` lists each webhook
//! with its secret, so a product that logged what it lists would leak one: every secret
//! registered or seeded is reported by [`StandIn::issued_secrets`].

use hyper::Method;
use hyper::header::{HeaderValue, LOCATION};
use serde_json::{Value, json};

use super::leaf_users::leaf_error;
use super::{Route, StandIn, State};
use crate::server::{self, HttpResponse, json_response, random_token};

pub(super) const WEBHOOKS_PATH: &str = "/services/alerts/api/alerts/webhooks";

/// A webhook Leaf holds (its secret left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
}

/// The webhooks, oldest first, each with its secret.
#[derive(Default)]
pub(super) struct Webhooks(Vec<(WebhookView, String)>);

/// Which webhook route a request is for, and the webhook id in its path.
pub(super) fn classify(method: &Method, path: &str) -> Option<(Route, Option<String>)> {
    let rest = path.strip_prefix(WEBHOOKS_PATH)?;
    match (method, rest) {
        (&Method::POST, "") => Some((Route::LeafPostWebhook, None)),
        (&Method::GET, "") => Some((Route::LeafGetWebhooks, None)),
        (&Method::DELETE, rest) => {
            let id = rest.strip_prefix('/')?;
            (!id.is_empty() && !id.contains('/')).then(|| (Route::LeafDeleteWebhook, Some(id.to_owned())))
        }
        _ => None,
    }
}

impl StandIn {
    /// The webhooks Leaf holds, oldest first.
    pub fn webhooks(&self) -> Vec<WebhookView> {
        self.lock()
            .webhooks
            .0
            .iter()
            .map(|(view, _)| view.clone())
            .collect()
    }

    /// Registers a webhook as someone else did (a random secret, reported as issued); returns its
    /// id. Leaf's one-webhook-per-event rule is not checked.
    pub fn add_webhook(&self, name: &str, url: &str, events: &[&str]) -> String {
        let mut state = self.lock();
        let secret = random_token("seeded-webhook-secret");
        state.secrets.push(secret.clone());
        let view = WebhookView {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            url: url.to_owned(),
            events: events.iter().map(|e| e.to_string()).collect(),
        };
        state.webhooks.0.push((view.clone(), secret));
        view.id
    }
}

impl State {
    /// The webhook routes, once the caller is authorized.
    pub(super) fn webhooks_route(&mut self, route: Route, id: Option<&str>, body: &[u8]) -> HttpResponse {
        match route {
            Route::LeafPostWebhook => self.post_webhook(body),
            Route::LeafGetWebhooks => {
                let listed: Vec<Value> = self
                    .webhooks
                    .0
                    .iter()
                    .map(|(w, secret)| {
                        let (id, name, url, events) = (&w.id, &w.name, &w.url, &w.events);
                        json!({"id": id, "name": name, "url": url, "events": events, "secret": secret})
                    })
                    .collect();
                json_response(200, &Value::Array(listed))
            }
            Route::LeafDeleteWebhook => {
                let id = id.expect("a DELETE route has an id");
                let before = self.webhooks.0.len();
                self.webhooks.0.retain(|(w, _)| w.id != id);
                if self.webhooks.0.len() < before {
                    server::raw_response(204, "text/plain", "")
                } else {
                    leaf_error(404, "Not Found", "Webhook not found")
                }
            }
            other => unreachable!("{other:?} is no webhook route"),
        }
    }

    fn post_webhook(&mut self, body: &[u8]) -> HttpResponse {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |name: &str| parsed.get(name).and_then(Value::as_str).map(str::to_owned);
        let events: Option<Vec<String>> = parsed
            .get("events")
            .and_then(Value::as_array)
            .and_then(|events| events.iter().map(|e| e.as_str().map(str::to_owned)).collect());
        let (Some(name), Some(secret), Some(url), Some(events)) = (
            text("name"),
            text("secret"),
            text("url"),
            events.filter(|e| !e.is_empty()),
        ) else {
            return leaf_error(400, "Bad Request", "events, name, secret and url are required");
        };
        self.secrets.push(secret.clone());
        let taken: Vec<&String> = events
            .iter()
            .filter(|e| self.webhooks.0.iter().any(|(w, _)| w.events.contains(e)))
            .collect();
        if !taken.is_empty() {
            let message = format!("another webhook already listens to {taken:?}");
            return json_response(400, &json!({"error": "eventRegisteredTwice", "message": message}));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let location = format!("{WEBHOOKS_PATH}/{id}");
        let view = WebhookView {
            id,
            name,
            url,
            events,
        };
        self.webhooks.0.push((view, secret));
        let mut response = server::raw_response(201, "text/plain", "");
        let location = HeaderValue::from_str(&location).expect("a path is a header value");
        response.headers_mut().insert(LOCATION, location);
        response
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use serde_json::{Value, json};

    use super::WEBHOOKS_PATH;
    use crate::standin::StandIn;

    fn client() -> reqwest::Client {
        let timeout = std::time::Duration::from_secs(10);
        reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("reqwest client")
    }

    /// A stand-in with a Leaf owner, and the owner's token.
    async fn seeded() -> (StandIn, String) {
        let stand_in = StandIn::start().await;
        stand_in.set_leaf_owner("owner", "leaf-pw");
        let login = json!({"username": "owner", "password": "leaf-pw", "rememberMe": "true"});
        let answer: Value = client()
            .post(format!("{}/api/authenticate", stand_in.leaf_url()))
            .json(&login)
            .send()
            .await
            .expect("authenticate")
            .json()
            .await
            .expect("json");
        let token = answer["id_token"].as_str().expect("an id_token").to_owned();
        (stand_in, token)
    }

    async fn post(stand_in: &StandIn, token: &str, body: Value) -> (StatusCode, Option<String>, Value) {
        let response = client()
            .post(format!("{}{WEBHOOKS_PATH}", stand_in.leaf_url()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("post");
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            response.status(),
            location,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    fn hook(events: &[&str]) -> Value {
        json!({"events": events, "name": "n", "secret": "wh-s3cr3t", "url": "https://x"})
    }

    #[tokio::test]
    async fn one_webhook_per_event_listed_and_removed() {
        let (stand_in, token) = seeded().await;
        let (status, location, _) = post(&stand_in, &token, hook(&["a", "b"])).await;
        assert_eq!(status, 201);
        let location = location.expect("a Location");
        let id = location.rsplit('/').next().unwrap().to_owned();
        assert_eq!(location, format!("{WEBHOOKS_PATH}/{id}"));

        let (status, _, body) = post(&stand_in, &token, hook(&["c", "b"])).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("eventRegisteredTwice"))
        );
        let (status, _, _) = post(&stand_in, &token, hook(&["c"])).await;
        assert_eq!(status, 201);

        let listed: Value = client()
            .get(format!("{}{WEBHOOKS_PATH}", stand_in.leaf_url()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(listed[0]["id"], id.as_str());
        assert_eq!(listed[0]["events"], json!(["a", "b"]));
        assert_eq!(stand_in.webhooks().len(), 2);
        assert!(stand_in.issued_secrets().iter().any(|s| s == "wh-s3cr3t"));

        let url = format!("{}{WEBHOOKS_PATH}/{id}", stand_in.leaf_url());
        let deleted = client()
            .delete(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete");
        assert_eq!(deleted.status(), 204);
        let again = client()
            .delete(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete");
        assert_eq!(again.status(), 404);
        let unauthorized = client().delete(&url).send().await.expect("delete");
        assert_eq!(unauthorized.status(), 401);
        assert_eq!(stand_in.webhooks().len(), 1);
        assert!(stand_in.unrouted().is_empty());
    }
}
