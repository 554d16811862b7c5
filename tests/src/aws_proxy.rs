//! A proxy in front of moto that counts AWS API calls by operation and can fail them the way
//! AWS does (throttling, 5xx, a dropped connection). moto itself cannot throttle.
//!
//! Opt-in, it also answers `secretsmanager.ListSecrets` itself from a list of secrets it is given
//! ([`AwsProxy::list_secrets_from`]): moto filters and serialises every secret for every page,
//! so a page costs O(n), too slow to list 100,000 secrets in a benchmark. And it keeps SQS
//! queues of its own in memory ([`AwsProxy::serve_queue`], `queues`), for the same reason.

mod queues;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};

use crate::server::{self, HttpResponse, Server};

/// How the proxy answers instead of forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AwsFault {
    /// 400 `ThrottlingException`, as Secrets Manager answers when over its request rate.
    Throttle,
    /// 500 `InternalServiceError`.
    InternalError,
    /// 503 `ServiceUnavailable`.
    Unavailable,
    /// Close the connection without an answer.
    Reset,
    /// 400 `AccessDeniedException`, as when the function's role lacks the permission.
    AccessDenied,
    /// Forwarded, after this long: a slow answer.
    Delay(Duration),
}

#[derive(Default)]
struct State {
    /// Calls per operation: `secretsmanager.GetSecretValue`, `AmazonSQS.SendMessageBatch`, ...
    calls: HashMap<String, usize>,
    faults: HashMap<String, VecDeque<AwsFault>>,
    /// When set, ListSecrets is answered from these instead of by moto.
    listing: Option<Arc<Vec<ListedSecret>>>,
}

#[derive(Clone)]
pub struct AwsProxy {
    state: Arc<Mutex<State>>,
    queues: Arc<queues::Queues>,
    server: Arc<Server>,
}

impl AwsProxy {
    /// Starts a proxy to `upstream` (moto's endpoint) on an ephemeral port of 127.0.0.1.
    pub async fn start(upstream: &str) -> AwsProxy {
        let state = Arc::new(Mutex::new(State::default()));
        let queues = Arc::new(queues::Queues::default());
        let client = reqwest::Client::new();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let (handler_state, handler_queues) = (state.clone(), queues.clone());
        let server = server::serve(move |request: Request<hyper::body::Incoming>, connection| {
            let (state, client, upstream) = (handler_state.clone(), client.clone(), upstream.clone());
            let queues = handler_queues.clone();
            async move {
                let operation = request
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("unknown")
                    .to_owned();
                let (fault, listing) = {
                    let mut state = lock(&state);
                    *state.calls.entry(operation.clone()).or_default() += 1;
                    let listing = state.listing.clone().filter(|_| operation == LIST_SECRETS);
                    (
                        state.faults.get_mut(&operation).and_then(VecDeque::pop_front),
                        listing,
                    )
                };
                match fault {
                    Some(AwsFault::Throttle) => aws_error(400, "ThrottlingException", "Rate exceeded"),
                    Some(AwsFault::InternalError) => aws_error(500, "InternalServiceError", "internal error"),
                    Some(AwsFault::Unavailable) => {
                        aws_error(503, "ServiceUnavailable", "service unavailable")
                    }
                    Some(AwsFault::AccessDenied) => aws_error(
                        400,
                        "AccessDeniedException",
                        "User is not authorized to perform this operation",
                    ),
                    Some(AwsFault::Reset) => {
                        connection.reset();
                        std::future::pending().await
                    }
                    Some(AwsFault::Delay(_)) | None => {
                        if let Some(AwsFault::Delay(delay)) = fault {
                            tokio::time::sleep(delay).await;
                        }
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        if let Some(secrets) = listing {
                            return list_secrets(&secrets, &body);
                        }
                        if operation.starts_with("AmazonSQS.")
                            && let Some(answer) = queues.answer(&operation, &body).await
                        {
                            return answer;
                        }
                        forward(&client, &upstream, parts, body).await
                    }
                }
            }
        })
        .await
        .expect("bind the AWS proxy on 127.0.0.1");
        AwsProxy {
            state,
            queues,
            server: Arc::new(server),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The next `times` calls of `operation` (an `X-Amz-Target`, e.g.
    /// `secretsmanager.GetSecretValue`) get `fault`.
    pub fn inject(&self, operation: &str, fault: AwsFault, times: usize) {
        lock(&self.state)
            .faults
            .entry(operation.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(fault, times));
    }

    pub fn calls(&self, operation: &str) -> usize {
        lock(&self.state).calls.get(operation).copied().unwrap_or(0)
    }

    /// From now on the proxy answers `secretsmanager.ListSecrets` itself, from `secrets` in
    /// this order, in Secrets Manager's wire format: pages of `MaxResults` (at most 100, the
    /// default) with a `NextToken`, the `name` filter as a prefix match (only that filter).
    /// Calls are still counted and faults still injected; every other operation goes to moto.
    pub fn list_secrets_from(&self, secrets: Vec<ListedSecret>) {
        lock(&self.state).listing = Some(Arc::new(secrets));
    }

    /// moto answers `ListSecrets` again.
    pub fn list_secrets_from_moto(&self) {
        lock(&self.state).listing = None;
    }

    /// A new SQS queue named `name` (FIFO if it ends in `.fifo`) that the proxy keeps in
    /// memory: calls naming its URL (returned) are answered by the proxy, never by moto, and
    /// counted like any other. A client must reach it through the proxy's endpoint.
    pub fn serve_queue(&self, name: &str) -> String {
        let url = format!("{}/123456789012/{name}", self.endpoint());
        self.queues.create(&url);
        url
    }

    /// The bodies of the messages an in-memory queue holds (sent and not deleted), oldest
    /// first, and how many messages it accepted in all (a FIFO duplicate is not accepted).
    /// Panics if the proxy does not serve `url`.
    pub fn queue_contents(&self, url: &str) -> (Vec<String>, usize) {
        self.queues
            .contents(url)
            .unwrap_or_else(|| panic!("the proxy serves no queue {url}"))
    }
}

const LIST_SECRETS: &str = "secretsmanager.ListSecrets";
/// Secrets Manager's largest page, and its default.
const LIST_PAGE: usize = 100;

/// A secret as `ListSecrets` shows it, for [`AwsProxy::list_secrets_from`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedSecret {
    pub name: String,
    /// (key, value), in order.
    pub tags: Vec<(String, String)>,
    /// (version id, its staging labels), e.g. `("v1", ["AWSCURRENT"])`.
    pub versions: Vec<(String, Vec<String>)>,
}

impl ListedSecret {
    /// A secret with one version, `AWSCURRENT`, and no tags.
    pub fn current(name: impl Into<String>, version: impl Into<String>) -> ListedSecret {
        ListedSecret {
            name: name.into(),
            tags: Vec::new(),
            versions: vec![(version.into(), vec!["AWSCURRENT".to_owned()])],
        }
    }

    fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        // Secrets Manager ends an ARN with a hyphen and six random characters; these are fixed.
        let arn = format!(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf",
            self.name
        );
        let versions: serde_json::Map<String, serde_json::Value> = self
            .versions
            .iter()
            .map(|(id, stages)| (id.clone(), json!(stages)))
            .collect();
        let mut secret = json!({
            "ARN": arn,
            "Name": self.name,
            "CreatedDate": 1_700_000_000.0,
            "LastChangedDate": 1_700_000_000.0,
            "SecretVersionsToStages": versions,
        });
        if !self.tags.is_empty() {
            let tags: Vec<serde_json::Value> = self
                .tags
                .iter()
                .map(|(key, value)| json!({"Key": key, "Value": value}))
                .collect();
            secret["Tags"] = json!(tags);
        }
        secret
    }
}

/// One page of `secrets` for a ListSecrets request. The token is the index to go on from.
fn list_secrets(secrets: &[ListedSecret], body: &[u8]) -> HttpResponse {
    let asked: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let mut prefixes = Vec::new();
    for filter in asked["Filters"].as_array().into_iter().flatten() {
        if filter["Key"] != "name" {
            let message = "the proxy's ListSecrets stand-in supports only the name filter";
            return aws_error(400, "ValidationException", message);
        }
        let values = filter["Values"].as_array().into_iter().flatten();
        prefixes.extend(values.filter_map(|v| v.as_str()).map(str::to_owned));
    }
    let size = asked["MaxResults"].as_u64().map_or(LIST_PAGE, |n| n as usize);
    if !(1..=LIST_PAGE).contains(&size) {
        return aws_error(400, "ValidationException", "MaxResults must be 1 to 100");
    }
    let start = match asked["NextToken"].as_str() {
        None => 0,
        Some(token) => match token.strip_prefix("proxy-listing-").and_then(|i| i.parse().ok()) {
            Some(index) if index <= secrets.len() => index,
            _ => return aws_error(400, "InvalidNextTokenException", "the NextToken is not valid"),
        },
    };
    let wanted = |s: &ListedSecret| prefixes.is_empty() || prefixes.iter().any(|p| s.name.starts_with(p));
    let mut page = Vec::with_capacity(size);
    let mut at = start;
    while at < secrets.len() && page.len() < size {
        if wanted(&secrets[at]) {
            page.push(secrets[at].to_json());
        }
        at += 1;
    }
    // A token only when more secrets match, as Secrets Manager ends on the last page.
    let more = secrets[at..].iter().position(wanted).map(|skip| at + skip);
    let mut answer = serde_json::json!({ "SecretList": page });
    if let Some(next) = more {
        answer["NextToken"] = serde_json::json!(format!("proxy-listing-{next}"));
    }
    let mut response = server::json_response(200, &answer);
    response.headers_mut().insert(
        "content-type",
        "application/x-amz-json-1.1"
            .parse()
            .expect("a valid header value"),
    );
    response
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn aws_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    let mut response =
        server::json_response(status, &serde_json::json!({"__type": kind, "message": message}));
    response
        .headers_mut()
        .insert("x-amzn-errortype", kind.parse().expect("a valid header value"));
    response
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    parts: hyper::http::request::Parts,
    body: hyper::body::Bytes,
) -> HttpResponse {
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("a valid method");
    let mut outgoing = client
        .request(method, format!("{upstream}{path}"))
        .body(body.to_vec());
    for (name, value) in parts.headers.iter() {
        if name != "host" && !hop_by_hop(name.as_str()) {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    match outgoing.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if !hop_by_hop(name.as_str()) {
                    response = response.header(name.as_str(), value.as_bytes());
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Full::new(bytes)).expect("a valid response")
        }
        Err(_) => aws_error(502, "ProxyError", "moto did not answer"),
    }
}

/// Headers about one connection (RFC 9110 7.6.1), which a proxy does not pass on, and the
/// length, which hyper sets again. moto answers every request with `Connection: close`: passed on,
/// it made the functions open a new connection for every AWS call, which AWS itself does not make
/// them do (and which the benchmarks counted as the functions' CPU).
fn hop_by_hop(name: &str) -> bool {
    const NAMES: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    NAMES.iter().any(|hop| name.eq_ignore_ascii_case(hop))
}

#[cfg(test)]
mod tests;
