//! A stateful stand-in for the Stara and Leaf HTTP APIs, over real HTTP on 127.0.0.1.
//!
//! Two listeners (one per provider) share one state, so a test can check that the tokens
//! the product posts to Leaf are exactly the ones Stara issued. Every request is recorded
//! (including faulted ones) and faults can be injected per route.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request};
use serde_json::{Value, json};

use crate::server::{self, Connection, HttpResponse, Server, iso_micros, json_response, random_token};

/// The provider endpoints the stand-in serves; used to count requests and inject faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// Stara `POST /autenticacao`.
    StaraAuth,
    /// Stara `POST /token`.
    StaraToken,
    /// Leaf `POST /api/authenticate`.
    LeafAuth,
    /// Leaf `GET /services/usermanagement/api/users/{id}`.
    LeafUser,
    /// Leaf `GET .../users/{id}/stara-credentials`.
    LeafGetCredentials,
    /// Leaf `POST .../users/{id}/stara-credentials`.
    LeafPostCredentials,
    /// Leaf `DELETE .../users/{id}/stara-credentials`.
    LeafDeleteCredentials,
    /// Leaf `GET .../users/{id}/stara-credentials/events`.
    LeafEvents,
}

impl Route {
    pub const ALL: [Route; 8] = [
        Route::StaraAuth,
        Route::StaraToken,
        Route::LeafAuth,
        Route::LeafUser,
        Route::LeafGetCredentials,
        Route::LeafPostCredentials,
        Route::LeafDeleteCredentials,
        Route::LeafEvents,
    ];
}

/// Value of an injected `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <n>` (delta seconds).
    Seconds(u64),
    /// `Retry-After: <IMF-fixdate>`.
    HttpDate(SystemTime),
}

/// A misbehaviour injected into the next requests of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Reply with this status and a small JSON body, without doing the work.
    Status(u16),
    /// Like `Status`, plus a `Retry-After` header.
    StatusWithRetryAfter(u16, RetryAfter),
    /// Wait this long, then behave normally.
    Latency(Duration),
    /// Close the TCP connection (RST) without any response.
    Reset,
    /// Never answer; the client must time out.
    Hang,
    /// 200 with the body `{not json`.
    MalformedJson,
    /// 200 with the body `{}`.
    MissingFields,
    /// Do the real work (e.g. store the credential), then reset the connection: a lost response.
    ProcessThenReset,
}

/// What the stand-in currently holds as a user's Stara credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialView {
    pub id: String,
    pub status: String,
}

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

#[derive(Clone, Copy)]
enum Side {
    Stara,
    Leaf,
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
}

#[derive(Clone, PartialEq, Eq)]
struct StaraTokens {
    access_token: String,
    access_token_client: String,
    refresh_token: String,
}

struct LeafUser {
    email: String,
    name: String,
    next_status: String,
    credential: Option<Credential>,
    events: Vec<Value>,
}

struct Credential {
    id: String,
    status: String,
    created_time: String,
    api_key: String,
    tokens: StaraTokens,
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

    /// A Stara account `/autenticacao` accepts.
    pub fn add_stara_account(&self, login: &str, password: &str) {
        let mut state = self.lock();
        state.stara_accounts.insert(login.to_owned(), password.to_owned());
        state.secrets.push(password.to_owned());
    }

    /// The Leaf API owner account `/api/authenticate` accepts (replaces any previous one).
    pub fn set_leaf_owner(&self, username: &str, password: &str) {
        let mut state = self.lock();
        state.leaf_owner = Some((username.to_owned(), password.to_owned()));
        state.secrets.push(password.to_owned());
    }

    /// A Leaf user without Stara credentials (no-op if it exists).
    pub fn add_leaf_user(&self, id: &str) {
        self.lock().user_mut(id);
    }

    /// Status the next credentials created for `user` get (default "OK"). Creates the user if unknown.
    pub fn set_next_status(&self, user: &str, status: &str) {
        self.lock().user_mut(user).next_status = status.to_owned();
    }

    /// Seed existing credentials (random tokens, not issued by Stara). Creates the user if unknown.
    pub fn set_credential(&self, user: &str, status: &str) {
        let mut state = self.lock();
        let api_key = random_token("seeded-apikey");
        let tokens = StaraTokens::random("seeded");
        state
            .secrets
            .extend([api_key.clone()].into_iter().chain(tokens.all()));
        state.user_mut(user).credential = Some(Credential::new(status, api_key, tokens));
    }

    /// Change the status of `user`'s existing credentials.
    ///
    /// Panics if the user has none: that is a mistake in the test.
    pub fn set_status(&self, user: &str, status: &str) {
        let mut state = self.lock();
        let credential = state
            .users
            .get_mut(user)
            .and_then(|user| user.credential.as_mut())
            .unwrap_or_else(|| panic!("stand-in: set_status({user:?}): that user has no Stara credentials"));
        credential.status = status.to_owned();
    }

    /// The credentials Leaf currently holds for `user`, if any.
    pub fn credential(&self, user: &str) -> Option<CredentialView> {
        let state = self.lock();
        let credential = state.users.get(user)?.credential.as_ref()?;
        Some(CredentialView {
            id: credential.id.clone(),
            status: credential.status.clone(),
        })
    }

    /// The events Leaf holds for `user`, oldest first (same JSON as the events endpoint).
    pub fn events(&self, user: &str) -> Vec<Value> {
        self.lock()
            .users
            .get(user)
            .map(|user| user.events.clone())
            .unwrap_or_default()
    }

    /// Append a provider event whose raw body and headers contain a fresh token (also
    /// reported by [`issued_secrets`](Self::issued_secrets), so a leak is detectable).
    /// Creates the user if unknown.
    pub fn add_event(&self, user: &str, status_code: u16) {
        let mut state = self.lock();
        let token = random_token("event-token");
        state.secrets.push(token.clone());
        state
            .user_mut(user)
            .events
            .push(provider_event(status_code, &token));
    }

    /// Invalidate every id_token issued so far: Leaf answers 401 until the product re-authenticates.
    pub fn expire_leaf_tokens(&self) {
        self.lock().valid_id_tokens.clear();
    }

    /// Add artificial latency before every request (faults come on top).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The next `times` requests to `route` get `fault`; queued after any pending faults.
    pub fn inject(&self, route: Route, fault: Fault, times: usize) {
        self.lock()
            .faults
            .entry(route)
            .or_default()
            .extend(std::iter::repeat_n(fault, times));
    }

    /// Each request to `route` gets `fault` with this probability (after queued faults).
    pub fn inject_randomly(&self, route: Route, fault: Fault, probability: f64) {
        self.lock()
            .random_faults
            .entry(route)
            .or_default()
            .push((fault, probability));
    }

    /// How many faults `route` has served so far, queued and random ones.
    pub fn faults_served(&self, route: Route) -> usize {
        self.lock().faults_served.get(&route).copied().unwrap_or(0)
    }

    /// POSTs refused with 409 because the user already had credentials: each one is a POST
    /// the product sent for a user Leaf had already connected.
    pub fn conflicts(&self) -> usize {
        self.lock().conflicts
    }

    /// Faults still waiting for a request on `route`.
    pub fn pending_faults(&self, route: Route) -> usize {
        self.lock().faults.get(&route).map_or(0, VecDeque::len)
    }

    /// Drop every fault not yet served.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.random_faults.clear();
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
    let Some((route, user)) = classify(side, &parts.method, &path) else {
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
        let queued = state.faults.get_mut(&route).and_then(VecDeque::pop_front);
        let fault = queued.or_else(|| {
            state.random_faults.get(&route).and_then(|choices| {
                choices
                    .iter()
                    .find(|(_, probability)| fastrand::f64() < *probability)
                    .map(|(fault, _)| fault.clone())
            })
        });
        if fault.is_some() {
            *state.faults_served.entry(route).or_default() += 1;
        }
        (state.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let process = || lock(&state).process(route, user.as_deref(), &parts.headers, &body);
    match fault {
        None => process(),
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            process()
        }
        Some(Fault::Status(status)) => fault_response(status, None),
        Some(Fault::StatusWithRetryAfter(status, retry_after)) => fault_response(status, Some(retry_after)),
        Some(Fault::MalformedJson) => server::raw_response(200, "application/json", "{not json"),
        Some(Fault::MissingFields) => server::raw_response(200, "application/json", "{}"),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            fault_response(504, None)
        }
        Some(Fault::Reset) => {
            connection.reset();
            std::future::pending().await
        }
        Some(Fault::ProcessThenReset) => {
            drop(process());
            connection.reset();
            std::future::pending().await
        }
    }
}

fn fault_response(status: u16, retry_after: Option<RetryAfter>) -> HttpResponse {
    let body = json!({ "title": "Injected fault", "status": status, "message": "injected by the test bed" });
    let mut response = json_response(status, &body);
    if let Some(retry_after) = retry_after {
        let value = match retry_after {
            RetryAfter::Seconds(seconds) => seconds.to_string(),
            RetryAfter::HttpDate(time) => httpdate::fmt_http_date(time),
        };
        let value = HeaderValue::from_str(&value).expect("Retry-After values are ASCII");
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

const USERS_PREFIX: &str = "/services/usermanagement/api/users/";

/// Which route a request is for, and the (decoded) Leaf user id in its path.
fn classify(side: Side, method: &Method, path: &str) -> Option<(Route, Option<String>)> {
    match side {
        Side::Stara => match (method, path) {
            (&Method::POST, "/autenticacao") => Some((Route::StaraAuth, None)),
            (&Method::POST, "/token") => Some((Route::StaraToken, None)),
            _ => None,
        },
        Side::Leaf => {
            if method == Method::POST && path == "/api/authenticate" {
                return Some((Route::LeafAuth, None));
            }
            let segments: Vec<&str> = path.strip_prefix(USERS_PREFIX)?.split('/').collect();
            let (route, id) = match (method, segments.as_slice()) {
                (&Method::GET, [id]) => (Route::LeafUser, id),
                (&Method::GET, [id, "stara-credentials"]) => (Route::LeafGetCredentials, id),
                (&Method::POST, [id, "stara-credentials"]) => (Route::LeafPostCredentials, id),
                (&Method::DELETE, [id, "stara-credentials"]) => (Route::LeafDeleteCredentials, id),
                (&Method::GET, [id, "stara-credentials", "events"]) => (Route::LeafEvents, id),
                _ => return None,
            };
            (!id.is_empty()).then(|| (route, Some(percent_decode(id))))
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
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

fn leaf_error(status: u16, title: &str, detail: &str) -> HttpResponse {
    json_response(
        status,
        &json!({ "title": title, "status": status, "detail": detail }),
    )
}

fn stara_error(status: u16, message: &str) -> HttpResponse {
    json_response(status, &json!({ "message": message }))
}

/// A raw provider HTTP log as Leaf stores it; `token` is deliberately in the body and headers.
fn provider_event(status_code: u16, token: &str) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "url": "https://stara.example/token",
        "method": "POST",
        "statusCode": status_code,
        "body": json!({ "accessToken": token, "refreshToken": token }).to_string(),
        "headers": { "Content-Type": "application/json", "Authorization": format!("Bearer {token}") },
        "createdDate": iso_micros(SystemTime::now()),
    })
}

impl StaraTokens {
    fn random(prefix: &str) -> StaraTokens {
        StaraTokens {
            access_token: random_token(&format!("{prefix}-access")),
            access_token_client: random_token(&format!("{prefix}-access-client")),
            refresh_token: random_token(&format!("{prefix}-refresh")),
        }
    }

    fn all(&self) -> [String; 3] {
        [
            self.access_token.clone(),
            self.access_token_client.clone(),
            self.refresh_token.clone(),
        ]
    }
}

impl Credential {
    fn new(status: &str, api_key: String, tokens: StaraTokens) -> Credential {
        Credential {
            id: uuid::Uuid::new_v4().to_string(),
            status: status.to_owned(),
            created_time: iso_micros(SystemTime::now()),
            api_key,
            tokens,
        }
    }

    /// Leaf's representation, which echoes the tokens back.
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "createdTime": self.created_time,
            "apiKey": self.api_key,
            "accessToken": self.tokens.access_token,
            "accessTokenClient": self.tokens.access_token_client,
            "refreshToken": self.tokens.refresh_token,
        })
    }
}

impl State {
    fn user_mut(&mut self, id: &str) -> &mut LeafUser {
        self.users.entry(id.to_owned()).or_insert_with(|| LeafUser {
            email: format!("{id}@growers.example"),
            name: format!("Grower {id}"),
            next_status: "OK".to_owned(),
            credential: None,
            events: Vec::new(),
        })
    }

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
            _ => {
                let user = user.expect("every /services route has a user id");
                match route {
                    Route::LeafUser => self.leaf_user(user),
                    Route::LeafGetCredentials => self.get_credentials(user),
                    Route::LeafPostCredentials => self.post_credentials(user, body),
                    Route::LeafDeleteCredentials => self.delete_credentials(user),
                    Route::LeafEvents => self.leaf_events(user),
                    Route::StaraAuth | Route::StaraToken | Route::LeafAuth => {
                        unreachable!("handled above")
                    }
                }
            }
        }
    }

    fn stara_auth(&mut self, body: &[u8]) -> HttpResponse {
        let Some([login, password]) = string_fields(body, ["login", "password"]) else {
            return stara_error(400, "Requisição inválida");
        };
        if self.stara_accounts.get(&login) != Some(&password) {
            return stara_error(401, "Login ou senha inválidos");
        }
        let api_key = random_token("stara-apikey");
        self.api_keys.insert(api_key.clone(), Vec::new());
        self.secrets.push(api_key.clone());
        json_response(200, &json!({ "apiKey": api_key }))
    }

    fn stara_token(&mut self, body: &[u8]) -> HttpResponse {
        let Some([api_key]) = string_fields(body, ["apiKey"]) else {
            return stara_error(400, "Requisição inválida");
        };
        let Some(issued) = self.api_keys.get_mut(&api_key) else {
            return stara_error(401, "apiKey inválida");
        };
        let tokens = StaraTokens::random("stara");
        issued.push(tokens.clone());
        self.secrets.extend(tokens.all());
        json_response(
            200,
            &json!({
                "accessToken": tokens.access_token,
                "accessTokenClient": tokens.access_token_client,
                "refreshToken": tokens.refresh_token,
            }),
        )
    }

    fn leaf_auth(&mut self, body: &[u8]) -> HttpResponse {
        let Some([username, password]) = string_fields(body, ["username", "password"]) else {
            return leaf_error(400, "Bad Request", "username and password are required");
        };
        if self.leaf_owner != Some((username, password)) {
            return leaf_error(401, "Unauthorized", "Bad credentials");
        }
        let id_token = random_token("leaf-id-token");
        self.valid_id_tokens.insert(id_token.clone());
        self.secrets.push(id_token.clone());
        json_response(200, &json!({ "id_token": id_token }))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|token| self.valid_id_tokens.contains(token))
    }

    fn leaf_user(&self, id: &str) -> HttpResponse {
        match self.users.get(id) {
            Some(user) => json_response(200, &json!({ "id": id, "email": user.email, "name": user.name })),
            None => leaf_error(404, "Not Found", "User not found"),
        }
    }

    fn get_credentials(&self, id: &str) -> HttpResponse {
        match self.users.get(id) {
            None => leaf_error(404, "Not Found", "User not found"),
            Some(LeafUser { credential: None, .. }) => {
                leaf_error(404, "Not Found", "Stara credentials not found")
            }
            Some(LeafUser {
                credential: Some(credential),
                ..
            }) => json_response(200, &credential.to_json()),
        }
    }

    fn post_credentials(&mut self, id: &str, body: &[u8]) -> HttpResponse {
        let Some(user) = self.users.get(id) else {
            return leaf_error(404, "Not Found", "User not found");
        };
        if user.credential.is_some() {
            self.conflicts += 1;
            return leaf_error(409, "Conflict", "User already has Stara credentials");
        }
        let fields = string_fields(
            body,
            ["apiKey", "accessToken", "accessTokenClient", "refreshToken"],
        );
        let Some([api_key, access_token, access_token_client, refresh_token]) = fields else {
            return leaf_error(
                400,
                "Bad Request",
                "apiKey, accessToken, accessTokenClient and refreshToken are required",
            );
        };
        let tokens = StaraTokens {
            access_token,
            access_token_client,
            refresh_token,
        };
        let Some(issued) = self.api_keys.get(&api_key) else {
            return leaf_error(400, "Bad Request", "apiKey was not issued by Stara");
        };
        if !issued.contains(&tokens) {
            return leaf_error(
                400,
                "Bad Request",
                "tokens were not issued by Stara for this apiKey",
            );
        }

        let event = provider_event(200, &tokens.access_token);
        let user = self.user_mut(id);
        let credential = Credential::new(&user.next_status, api_key, tokens);
        let reply = credential.to_json();
        user.credential = Some(credential);
        user.events.push(event);
        json_response(201, &reply)
    }

    fn delete_credentials(&mut self, id: &str) -> HttpResponse {
        match self.users.get_mut(id).and_then(|user| user.credential.take()) {
            Some(_) => server::raw_response(204, "application/json", ""),
            None => leaf_error(404, "Not Found", "Stara credentials not found"),
        }
    }

    fn leaf_events(&self, id: &str) -> HttpResponse {
        match self.users.get(id) {
            Some(user) => json_response(200, &Value::Array(user.events.clone())),
            None => leaf_error(404, "Not Found", "User not found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    const USER: &str = "11111111-2222-3333-4444-555555555555";

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client")
    }

    async fn post(url: String, body: Value) -> (StatusCode, Value) {
        let response = client().post(url).json(&body).send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A stand-in with one Stara account, a Leaf owner and one Leaf user.
    async fn seeded() -> StandIn {
        let stand_in = StandIn::start().await;
        stand_in.add_stara_account("grower@example.com", "stara-pw");
        stand_in.set_leaf_owner("owner", "leaf-pw");
        stand_in.add_leaf_user(USER);
        stand_in
    }

    async fn stara_tokens(stand_in: &StandIn) -> Value {
        let (status, auth) = post(
            format!("{}/autenticacao", stand_in.stara_url()),
            json!({ "login": "grower@example.com", "password": "stara-pw" }),
        )
        .await;
        assert_eq!(status, 200);
        let (status, mut tokens) = post(
            format!("{}/token", stand_in.stara_url()),
            json!({ "apiKey": auth["apiKey"] }),
        )
        .await;
        assert_eq!(status, 200);
        tokens["apiKey"] = auth["apiKey"].clone();
        tokens
    }

    async fn id_token(stand_in: &StandIn) -> String {
        let (status, body) = post(
            format!("{}/api/authenticate", stand_in.leaf_url()),
            json!({ "username": "owner", "password": "leaf-pw", "rememberMe": "true" }),
        )
        .await;
        assert_eq!(status, 200);
        body["id_token"].as_str().expect("id_token").to_owned()
    }

    fn credentials_url(stand_in: &StandIn) -> String {
        format!("{}{USERS_PREFIX}{USER}/stara-credentials", stand_in.leaf_url())
    }

    async fn post_credentials(
        stand_in: &StandIn,
        token: &str,
        body: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        client()
            .post(credentials_url(stand_in))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
    }

    #[tokio::test]
    async fn happy_flow_stores_the_tokens_stara_issued() {
        let stand_in = seeded().await;
        let tokens = stara_tokens(&stand_in).await;
        let token = id_token(&stand_in).await;

        let user = client()
            .get(format!("{}{USERS_PREFIX}{USER}", stand_in.leaf_url()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get user");
        assert_eq!(user.status(), 200);
        assert_eq!(user.json::<Value>().await.expect("user json")["id"], USER);

        let missing = client()
            .get(credentials_url(&stand_in))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(missing.status(), 404);
        assert_eq!(
            missing.json::<Value>().await.expect("404 json")["title"],
            "Not Found"
        );

        let created = post_credentials(&stand_in, &token, &tokens).await.expect("post");
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.expect("201 json");
        assert_eq!(created["status"], "OK");
        assert_eq!(created["refreshToken"], tokens["refreshToken"]);
        let created_time = created["createdTime"].as_str().expect("createdTime");
        assert_eq!(created_time.len(), "2024-01-01T00:00:00.000000Z".len());

        let view = stand_in.credential(USER).expect("stored");
        assert_eq!(
            (view.id.as_str(), view.status.as_str()),
            (created["id"].as_str().expect("id"), "OK")
        );

        let fetched: Value = client()
            .get(credentials_url(&stand_in))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            fetched["accessToken"], tokens["accessToken"],
            "Leaf echoes the tokens back"
        );

        let events: Value = client()
            .get(format!("{}/events", credentials_url(&stand_in)))
            .bearer_auth(&token)
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json");
        let event_body = events[0]["body"].as_str().expect("event body");
        assert!(event_body.contains(tokens["accessToken"].as_str().expect("token")));

        let deleted = client()
            .delete(credentials_url(&stand_in))
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete");
        assert_eq!(deleted.status(), 204);
        assert_eq!(stand_in.credential(USER), None);
        let again = client()
            .delete(credentials_url(&stand_in))
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete");
        assert_eq!(again.status(), 404);

        let counts = stand_in.counts();
        assert_eq!(counts[&Route::StaraAuth], 1);
        assert_eq!(counts[&Route::LeafDeleteCredentials], 2);
        assert_eq!(counts[&Route::LeafEvents], 1);
        assert!(stand_in.unrouted().is_empty());
        let secrets = stand_in.issued_secrets();
        for secret in [
            "stara-pw",
            "leaf-pw",
            token.as_str(),
            tokens["refreshToken"].as_str().expect("str"),
        ] {
            assert!(
                secrets.iter().any(|known| known == secret),
                "{secret} should be reported"
            );
        }
        let recorded = &stand_in.requests(Route::LeafPostCredentials)[0];
        assert_eq!(
            recorded.header("Authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(recorded.json(), Some(tokens));
    }

    #[tokio::test]
    async fn rejects_bad_logins_bodies_and_unknown_users() {
        let stand_in = seeded().await;
        let (status, body) = post(
            format!("{}/autenticacao", stand_in.stara_url()),
            json!({ "login": "grower@example.com", "password": "wrong" }),
        )
        .await;
        assert_eq!(
            (status.as_u16(), body["message"].as_str()),
            (401, Some("Login ou senha inválidos"))
        );
        let not_json = client()
            .post(format!("{}/autenticacao", stand_in.stara_url()))
            .body("login=x")
            .send()
            .await
            .expect("post");
        assert_eq!(not_json.status(), 400);
        let (status, _) = post(
            format!("{}/token", stand_in.stara_url()),
            json!({ "apiKey": "made-up" }),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = post(
            format!("{}/api/authenticate", stand_in.leaf_url()),
            json!({ "username": "owner", "password": "nope", "rememberMe": "true" }),
        )
        .await;
        assert_eq!(status, 401);

        let token = id_token(&stand_in).await;
        let unknown = client()
            .get(format!(
                "{}{USERS_PREFIX}nobody/stara-credentials",
                stand_in.leaf_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(unknown.status(), 404);
        let no_token = client()
            .get(credentials_url(&stand_in))
            .send()
            .await
            .expect("get");
        assert_eq!(no_token.status(), 401);
        assert_eq!(
            no_token.json::<Value>().await.expect("json"),
            json!({ "title": "Unauthorized", "status": 401 })
        );
    }

    #[tokio::test]
    async fn post_conflicts_and_checks_the_tokens() {
        let stand_in = seeded().await;
        let tokens = stara_tokens(&stand_in).await;
        let token = id_token(&stand_in).await;

        let mut forged = tokens.clone();
        forged["accessToken"] = json!("not-from-stara");
        let response = post_credentials(&stand_in, &token, &forged).await.expect("post");
        assert_eq!(response.status(), 400);
        let mut partial = tokens.clone();
        partial
            .as_object_mut()
            .expect("object")
            .remove("accessTokenClient");
        assert_eq!(
            post_credentials(&stand_in, &token, &partial)
                .await
                .expect("post")
                .status(),
            400
        );
        assert_eq!(stand_in.credential(USER), None);

        stand_in.set_next_status(USER, "PENDING");
        let response = post_credentials(&stand_in, &token, &tokens).await.expect("post");
        assert_eq!(response.status(), 201);
        assert_eq!(stand_in.credential(USER).expect("stored").status, "PENDING");
        let response = post_credentials(&stand_in, &token, &tokens).await.expect("post");
        assert_eq!(response.status(), 409);

        stand_in.set_status(USER, "INVALID");
        assert_eq!(stand_in.credential(USER).expect("stored").status, "INVALID");
    }

    #[tokio::test]
    async fn expired_id_tokens_get_401_until_reauthentication() {
        let stand_in = seeded().await;
        let first = id_token(&stand_in).await;
        stand_in.expire_leaf_tokens();
        let response = client()
            .get(credentials_url(&stand_in))
            .bearer_auth(&first)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 401);
        let second = id_token(&stand_in).await;
        let response = client()
            .get(credentials_url(&stand_in))
            .bearer_auth(&second)
            .send()
            .await
            .expect("get");
        assert_eq!(
            response.status(),
            404,
            "authorised again; the user just has no credentials"
        );
    }

    #[tokio::test]
    async fn seeded_credentials_and_events() {
        let stand_in = StandIn::start().await;
        stand_in.set_leaf_owner("owner", "leaf-pw");
        stand_in.set_credential(USER, "OK");
        stand_in.add_event(USER, 401);
        let token = id_token(&stand_in).await;
        let events: Value = client()
            .get(format!("{}/events", credentials_url(&stand_in)))
            .bearer_auth(&token)
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json");
        assert_eq!(events[0]["statusCode"], 401);
        let body = events[0]["body"].as_str().expect("body");
        assert!(
            stand_in
                .issued_secrets()
                .iter()
                .any(|secret| body.contains(secret.as_str()))
        );
        let credential: Value = client()
            .get(credentials_url(&stand_in))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(credential["status"], "OK");
    }

    #[tokio::test]
    async fn status_faults_carry_retry_after_then_recover() {
        let stand_in = seeded().await;
        let url = format!("{}/autenticacao", stand_in.stara_url());
        let login = json!({ "login": "grower@example.com", "password": "stara-pw" });
        let at = SystemTime::now() + Duration::from_secs(120);
        stand_in.inject(
            Route::StaraAuth,
            Fault::StatusWithRetryAfter(429, RetryAfter::Seconds(7)),
            1,
        );
        stand_in.inject(
            Route::StaraAuth,
            Fault::StatusWithRetryAfter(503, RetryAfter::HttpDate(at)),
            1,
        );
        stand_in.inject(Route::StaraAuth, Fault::Status(500), 1);

        let first = client().post(&url).json(&login).send().await.expect("post");
        assert_eq!(first.status(), 429);
        assert_eq!(first.headers()["retry-after"], "7");
        let second = client().post(&url).json(&login).send().await.expect("post");
        assert_eq!(second.status(), 503);
        let date = second.headers()["retry-after"].to_str().expect("ascii");
        let parsed = httpdate::parse_http_date(date).expect("IMF-fixdate");
        let drift = parsed.duration_since(at).unwrap_or_else(|error| error.duration());
        assert!(drift < Duration::from_secs(1), "HTTP dates have second precision");
        let third = client().post(&url).json(&login).send().await.expect("post");
        assert_eq!(third.status(), 500);
        assert!(third.json::<Value>().await.is_ok(), "fault bodies are JSON");
        let (status, _) = post(url, login).await;
        assert_eq!(status, 200, "faults are used up");
        assert_eq!(stand_in.count(Route::StaraAuth), 4);
        assert_eq!(stand_in.pending_faults(Route::StaraAuth), 0);
    }

    #[tokio::test]
    async fn body_faults() {
        let stand_in = seeded().await;
        let auth = stara_tokens(&stand_in).await;
        stand_in.inject(Route::StaraToken, Fault::MalformedJson, 1);
        stand_in.inject(Route::StaraToken, Fault::MissingFields, 1);
        let url = format!("{}/token", stand_in.stara_url());
        let body = json!({ "apiKey": auth["apiKey"] });
        let malformed = client().post(&url).json(&body).send().await.expect("post");
        assert_eq!(malformed.status(), 200);
        assert_eq!(malformed.text().await.expect("text"), "{not json");
        let (status, empty) = post(url.clone(), body.clone()).await;
        assert_eq!((status.as_u16(), empty), (200, json!({})));
        let (status, tokens) = post(url, body).await;
        assert_eq!(status, 200);
        assert!(tokens["accessToken"].is_string());
    }

    #[tokio::test]
    async fn reset_is_a_transport_error_not_a_status() {
        let stand_in = seeded().await;
        stand_in.inject(Route::LeafAuth, Fault::Reset, 1);
        let url = format!("{}/api/authenticate", stand_in.leaf_url());
        let body = json!({ "username": "owner", "password": "leaf-pw", "rememberMe": "true" });
        let error = client()
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect_err("connection reset");
        assert!(
            error.status().is_none() && !error.is_timeout(),
            "unexpected error kind: {error:?}"
        );
        let (status, _) = post(url, body).await;
        assert_eq!(status, 200);
        assert_eq!(stand_in.count(Route::LeafAuth), 2);
    }

    #[tokio::test]
    async fn hang_makes_the_client_time_out_and_latency_delays() {
        let stand_in = seeded().await;
        stand_in.inject(Route::StaraAuth, Fault::Hang, 1);
        stand_in.inject(Route::StaraAuth, Fault::Latency(Duration::from_millis(300)), 1);
        let url = format!("{}/autenticacao", stand_in.stara_url());
        let login = json!({ "login": "grower@example.com", "password": "stara-pw" });
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .expect("client");
        let error = impatient.post(&url).json(&login).send().await.expect_err("hang");
        assert!(error.is_timeout(), "expected a timeout: {error:?}");

        let started = Instant::now();
        let (status, _) = post(url, login).await;
        assert_eq!(status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn global_latency_applies_to_every_request() {
        let stand_in = seeded().await;
        stand_in.set_latency(Duration::from_millis(200));
        let started = Instant::now();
        id_token(&stand_in).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn process_then_reset_stores_but_loses_the_response() {
        let stand_in = seeded().await;
        let tokens = stara_tokens(&stand_in).await;
        let token = id_token(&stand_in).await;
        stand_in.inject(Route::LeafPostCredentials, Fault::ProcessThenReset, 1);
        let error = post_credentials(&stand_in, &token, &tokens)
            .await
            .expect_err("lost response");
        assert!(
            error.status().is_none() && !error.is_timeout(),
            "unexpected error kind: {error:?}"
        );
        assert_eq!(
            stand_in.credential(USER).map(|view| view.status),
            Some("OK".to_owned())
        );
        let retry = post_credentials(&stand_in, &token, &tokens).await.expect("post");
        assert_eq!(
            retry.status(),
            409,
            "the first attempt did create the credentials"
        );
    }

    #[test]
    fn classifies_paths() {
        let route = |side, method, path| classify(side, &method, path);
        assert_eq!(
            route(
                Side::Leaf,
                Method::GET,
                "/services/usermanagement/api/users/a%20b/stara-credentials/events"
            ),
            Some((Route::LeafEvents, Some("a b".to_owned())))
        );
        assert_eq!(
            route(
                Side::Leaf,
                Method::GET,
                "/services/usermanagement/api/users//stara-credentials"
            ),
            None
        );
        assert_eq!(
            route(
                Side::Leaf,
                Method::PUT,
                "/services/usermanagement/api/users/x/stara-credentials"
            ),
            None
        );
        assert_eq!(route(Side::Stara, Method::POST, "/api/authenticate"), None);
        assert_eq!(
            route(Side::Stara, Method::POST, "/token"),
            Some((Route::StaraToken, None))
        );
    }
}
