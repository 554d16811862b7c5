//! A proxy in front of moto that counts AWS API calls by operation and can fail them the way
//! AWS does (throttling, 5xx, a dropped connection). moto itself cannot throttle.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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
}

#[derive(Default)]
struct State {
    /// Calls per operation: `secretsmanager.GetSecretValue`, `AmazonSQS.SendMessageBatch`, ...
    calls: HashMap<String, usize>,
    faults: HashMap<String, VecDeque<AwsFault>>,
}

#[derive(Clone)]
pub struct AwsProxy {
    state: Arc<Mutex<State>>,
    server: Arc<Server>,
}

impl AwsProxy {
    /// Starts a proxy to `upstream` (moto's endpoint) on an ephemeral port of 127.0.0.1.
    pub async fn start(upstream: &str) -> AwsProxy {
        let state = Arc::new(Mutex::new(State::default()));
        let client = reqwest::Client::new();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let handler_state = state.clone();
        let server = server::serve(move |request: Request<hyper::body::Incoming>, connection| {
            let (state, client, upstream) = (handler_state.clone(), client.clone(), upstream.clone());
            async move {
                let operation = request
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("unknown")
                    .to_owned();
                let fault = {
                    let mut state = lock(&state);
                    *state.calls.entry(operation.clone()).or_default() += 1;
                    state.faults.get_mut(&operation).and_then(VecDeque::pop_front)
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
                    None => forward(&client, &upstream, request).await,
                }
            }
        })
        .await
        .expect("bind the AWS proxy on 127.0.0.1");
        AwsProxy {
            state,
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
    request: Request<hyper::body::Incoming>,
) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("a valid method");
    let mut outgoing = client
        .request(method, format!("{upstream}{path}"))
        .body(body.to_vec());
    for (name, value) in parts.headers.iter() {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    match outgoing.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response = response.header(name.as_str(), value.as_bytes());
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Full::new(bytes)).expect("a valid response")
        }
        Err(_) => aws_error(502, "ProxyError", "moto did not answer"),
    }
}
