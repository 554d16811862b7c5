//! A stateful stand-in for the Stara and Leaf HTTP APIs, over real HTTP on 127.0.0.1.
//!
//! Two listeners (one per provider) share one state, so a test can check that the tokens
//! the product posts to Leaf are exactly the ones Stara issued. Every request is recorded
//! (including faulted ones) and faults can be injected per route.
//!
//! One module per API: `stara` (`/autenticacao`, `/token`), `leaf_users` (`/api/authenticate`
//! and the users), `leaf_credentials` (a user's Stara credentials and their events),
//! `leaf_webhooks` (the alerts webhooks); `faults` holds what can be injected, `routes` which
//! request goes to which route.

mod faults;
mod leaf_credentials;
mod leaf_users;
mod leaf_webhooks;
mod routes;
mod stara;
mod storm;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use serde_json::{Value, json};

use crate::server::{self, Connection, HttpResponse, Server, json_response};
use leaf_users::LeafUser;
use routes::Side;
use stara::StaraTokens;

pub use faults::{Fault, RetryAfter};
pub use leaf_credentials::CredentialView;
pub use leaf_webhooks::WebhookView;
pub use routes::Route;
pub use storm::{StormView, count_between, peak_in_window};

/// One request as it arrived at the stand-in.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub route: Route,
    pub method: String,
    /// Path as sent (still percent-encoded).
    pub path: String,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl RecordedRequest {
    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Handle on a running stand-in. Clones share the state; the servers stop when the last clone drops.
#[derive(Clone)]
pub struct StandIn {
    state: Arc<Mutex<State>>,
    servers: Arc<Servers>,
}

struct Servers {
    stara: Server,
    leaf: Server,
}

#[derive(Default)]
struct State {
    stara_accounts: HashMap<String, String>,
    /// Every apiKey Stara issued, with the token sets `/token` issued for it.
    api_keys: HashMap<String, Vec<StaraTokens>>,
    leaf_owner: Option<(String, String)>,
    valid_id_tokens: HashSet<String>,
    users: HashMap<String, LeafUser>,
    faults: HashMap<Route, VecDeque<Fault>>,
    /// Faults served at random, with their probability per request.
    random_faults: HashMap<Route, Vec<(Fault, f64)>>,
    /// How many faults (queued or random) each route has served.
    faults_served: HashMap<Route, usize>,
    /// POSTs refused with 409 because the user already had credentials.
    conflicts: usize,
    requests: Vec<RecordedRequest>,
    unrouted: Vec<String>,
    latency: Duration,
    secrets: Vec<String>,
    webhooks: leaf_webhooks::Webhooks,
    /// A 429 storm on some Leaf routes, if one was set up.
    storm: Option<storm::Storm>,
}

impl StandIn {
    /// Start both listeners on ephemeral ports of 127.0.0.1.
    pub async fn start() -> StandIn {
        let state = Arc::new(Mutex::new(State::default()));
        let stara = serve_side(state.clone(), Side::Stara).await;
        let leaf = serve_side(state.clone(), Side::Leaf).await;
        StandIn {
            state,
            servers: Arc::new(Servers { stara, leaf }),
        }
    }

    /// Base URL of the Stara stand-in, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn stara_url(&self) -> String {
        format!("http://{}", self.servers.stara.addr())
    }

    /// Base URL of the Leaf stand-in, e.g. `http://127.0.0.1:41235` (no trailing slash).
    pub fn leaf_url(&self) -> String {
        format!("http://{}", self.servers.leaf.addr())
    }

    /// Requests that arrived on `route`, faulted ones included.
    pub fn count(&self, route: Route) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|request| request.route == route)
            .count()
    }

    /// Request count of every route (zero included).
    pub fn counts(&self) -> BTreeMap<Route, usize> {
        let state = self.lock();
        Route::ALL
            .iter()
            .map(|&route| {
                (
                    route,
                    state
                        .requests
                        .iter()
                        .filter(|request| request.route == route)
                        .count(),
                )
            })
            .collect()
    }

    /// Every request that arrived on `route`, oldest first.
    pub fn requests(&self, route: Route) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|request| request.route == route)
            .cloned()
            .collect()
    }

    /// Requests that matched no route, as "METHOD /path" (should stay empty).
    pub fn unrouted(&self) -> Vec<String> {
        self.lock().unrouted.clone()
    }

    /// Every password given to the stand-in and every apiKey, token and id_token it issued
    /// or seeded: none of these may appear in the product's logs or responses.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.lock().secrets.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Poisoning only means another test thread panicked; the state itself stays consistent.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve_side(state: Arc<Mutex<State>>, side: Side) -> Server {
    server::serve(move |request, connection| handle(state.clone(), side, request, connection))
        .await
        .expect("stand-in: cannot listen on 127.0.0.1")
}

async fn handle(
    state: Arc<Mutex<State>>,
    side: Side,
    request: Request<Incoming>,
    connection: Connection,
) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return json_response(400, &json!({ "message": format!("unreadable body: {error}") }));
        }
    };
    let path = parts.uri.path().to_owned();
    let Some((route, user)) = routes::classify(side, &parts.method, &path) else {
        lock(&state).unrouted.push(format!("{} {path}", parts.method));
        let detail = format!("no route for {} {path}", parts.method);
        return json_response(
            404,
            &json!({ "title": "Not Found", "status": 404, "detail": detail }),
        );
    };

    let (latency, fault) = {
        let mut state = lock(&state);
        state.requests.push(RecordedRequest {
            route,
            method: parts.method.to_string(),
            path,
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        let fault = state.next_fault(route);
        (state.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let process = || lock(&state).process(route, user.as_deref(), &parts.headers, &body);
    faults::respond(fault, process, &connection).await
}

/// Parse a JSON object body and take the named fields, all of which must be strings.
fn string_fields<const N: usize>(body: &[u8], names: [&str; N]) -> Option<[String; N]> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut fields = names.map(|name| value.get(name).and_then(Value::as_str).map(str::to_owned));
    if fields.iter().any(Option::is_none) {
        return None;
    }
    Some(std::array::from_fn(|index| {
        fields[index].take().unwrap_or_default()
    }))
}

impl State {
    /// The normal (fault-free) behaviour of a route.
    fn process(
        &mut self,
        route: Route,
        user: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> HttpResponse {
        match route {
            Route::StaraAuth => self.stara_auth(body),
            Route::StaraToken => self.stara_token(body),
            Route::LeafAuth => self.leaf_auth(body),
            _ if !self.authorized(headers) => {
                json_response(401, &json!({ "title": "Unauthorized", "status": 401 }))
            }
            Route::LeafPostWebhook | Route::LeafGetWebhooks | Route::LeafDeleteWebhook => {
                self.webhooks_route(route, user, body)
            }
            _ => {
                let user = user.expect("every /services route has a user id");
                match route {
                    Route::LeafUser => self.leaf_user(user),
                    Route::LeafGetCredentials => self.get_credentials(user),
                    Route::LeafPostCredentials => self.post_credentials(user, body),
                    Route::LeafDeleteCredentials => self.delete_credentials(user),
                    Route::LeafEvents => self.leaf_events(user),
                    Route::StaraAuth
                    | Route::StaraToken
                    | Route::LeafAuth
                    | Route::LeafPostWebhook
                    | Route::LeafGetWebhooks
                    | Route::LeafDeleteWebhook => unreachable!("handled above"),
                }
            }
        }
    }
}
