//! An emulator of the AWS Lambda Runtime API (the protocol `lambda_runtime` speaks), so a
//! real compiled function binary can be invoked locally.
//!
//! Invocations are queued; any number of function processes may long-poll `next`, and each
//! queued invocation goes to exactly one of them.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};

use crate::server::{self, Connection, HttpResponse, Server, json_response};

const API_PREFIX: &str = "/2018-06-01/runtime";
const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:testbed";

/// Handle on a running emulator. Clones share it; the server stops when the last clone drops.
#[derive(Clone)]
pub struct RuntimeApi {
    inner: Arc<Inner>,
    server: Arc<Server>,
}

/// The result of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// `Ok(response body)` from `/response`, or `Err(error body)` from `/error`
    /// (a `{"errorType","errorMessage"}` object when it comes from `lambda_runtime`).
    /// A body that is not JSON is given as a JSON string.
    pub outcome: Result<Value, Value>,
    /// The `Lambda-Runtime-Function-Error-Type` header of an error, if any.
    pub error_type: Option<String>,
    /// From `invoke` to the function's answer.
    pub elapsed: Duration,
    /// Part of `elapsed` spent queued, before a function polled the invocation.
    pub queued: Duration,
}

impl Invocation {
    /// The response body; panics (showing the error) if the function reported an error.
    pub fn expect_ok(self) -> Value {
        match self.outcome {
            Ok(value) => value,
            Err(error) => panic!("invocation {} failed: {error}", self.request_id),
        }
    }
}

/// Why an invocation produced no outcome.
#[derive(Debug, Clone)]
pub enum InvokeError {
    /// No response within the invoke timeout.
    Timeout {
        request_id: String,
        after: Duration,
        polled: bool,
    },
    /// The function reported an init error (`/runtime/init/error`) instead.
    InitError(Value),
}

impl fmt::Display for InvokeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvokeError::Timeout {
                request_id,
                after,
                polled: false,
            } => write!(
                formatter,
                "invocation {request_id}: no function polled /next within {after:?} \
                 (did the function start? is AWS_LAMBDA_RUNTIME_API right? check its logs)"
            ),
            InvokeError::Timeout {
                request_id,
                after,
                polled: true,
            } => {
                write!(
                    formatter,
                    "invocation {request_id}: the function took it but posted no response within {after:?}"
                )
            }
            InvokeError::InitError(body) => {
                write!(formatter, "the function reported an init error: {body}")
            }
        }
    }
}

impl std::error::Error for InvokeError {}

struct Inner {
    queue: Mutex<VecDeque<Queued>>,
    /// Signalled when an invocation is queued.
    queued: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    settings: Mutex<Settings>,
    first_poll: watch::Sender<Option<Instant>>,
    init_error: watch::Sender<Option<Value>>,
    polls: AtomicUsize,
    unknown_answers: Mutex<Vec<String>>,
}

struct Settings {
    function_timeout: Duration,
    invoke_timeout: Duration,
}

struct Queued {
    request_id: String,
    payload: Value,
    polled: oneshot::Sender<Instant>,
    answer: oneshot::Sender<Answer>,
}

struct Answer {
    outcome: Result<Value, Value>,
    error_type: Option<String>,
}

impl RuntimeApi {
    /// Start the emulator on an ephemeral port of 127.0.0.1.
    pub async fn start() -> RuntimeApi {
        let inner = Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            settings: Mutex::new(Settings {
                function_timeout: DEFAULT_FUNCTION_TIMEOUT,
                invoke_timeout: DEFAULT_INVOKE_TIMEOUT,
            }),
            first_poll: watch::Sender::new(None),
            init_error: watch::Sender::new(None),
            polls: AtomicUsize::new(0),
            unknown_answers: Mutex::new(Vec::new()),
        });
        let handler_inner = inner.clone();
        let server =
            server::serve(move |request, connection| handle(handler_inner.clone(), request, connection))
                .await
                .expect("runtime API emulator: cannot listen on 127.0.0.1");
        RuntimeApi {
            inner,
            server: Arc::new(server),
        }
    }

    /// Value for `AWS_LAMBDA_RUNTIME_API`: `127.0.0.1:PORT`, host and port without a scheme,
    /// like real Lambda's `127.0.0.1:9001` (`lambda_runtime` defaults the scheme to http).
    pub fn address(&self) -> String {
        self.server.addr().to_string()
    }

    /// Function timeout: each invocation's `Lambda-Runtime-Deadline-Ms` is now + this (default 30 s).
    pub fn set_function_timeout(&self, timeout: Duration) {
        lock(&self.inner.settings).function_timeout = timeout;
    }

    /// How long [`invoke`](Self::invoke) waits for an answer before giving up (default 60 s).
    pub fn set_invoke_timeout(&self, timeout: Duration) {
        lock(&self.inner.settings).invoke_timeout = timeout;
    }

    /// Invoke the function; panics with a clear message on timeout or init error.
    pub async fn invoke(&self, payload: Value) -> Invocation {
        match self.try_invoke(payload).await {
            Ok(invocation) => invocation,
            Err(error) => panic!("{error}"),
        }
    }

    /// Queue an invocation and wait for the function's response or error.
    pub async fn try_invoke(&self, payload: Value) -> Result<Invocation, InvokeError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (polled_tx, mut polled_rx) = oneshot::channel();
        let (answer_tx, answer_rx) = oneshot::channel();
        let started = Instant::now();
        let invoke_timeout = lock(&self.inner.settings).invoke_timeout;
        lock(&self.inner.queue).push_back(Queued {
            request_id: request_id.clone(),
            payload,
            polled: polled_tx,
            answer: answer_tx,
        });
        self.inner.queued.notify_one();

        let mut init_error = self.inner.init_error.subscribe();
        let result = tokio::select! {
            answer = answer_rx => answer.ok(),
            Ok(error) = init_error.wait_for(Option::is_some) => {
                let error = error.clone().unwrap_or(Value::Null);
                self.forget(&request_id);
                return Err(InvokeError::InitError(error));
            }
            () = tokio::time::sleep(invoke_timeout) => None,
        };
        let Some(answer) = result else {
            self.forget(&request_id);
            return Err(InvokeError::Timeout {
                request_id,
                after: invoke_timeout,
                polled: polled_rx.try_recv().is_ok(),
            });
        };
        let elapsed = started.elapsed();
        // The sender is only dropped unsent if the invocation was never polled.
        let queued = polled_rx.await.map_or(elapsed, |polled_at| polled_at - started);
        Ok(Invocation {
            request_id,
            outcome: answer.outcome,
            error_type: answer.error_type,
            elapsed,
            queued,
        })
    }

    /// When the first `GET .../invocation/next` arrived, if one has.
    pub fn first_poll_at(&self) -> Option<Instant> {
        *self.inner.first_poll.borrow()
    }

    /// Wait for the first `next` poll (the end of the function's init); panics after `timeout`.
    pub async fn wait_first_poll(&self, timeout: Duration) -> Instant {
        let mut first_poll = self.inner.first_poll.subscribe();
        let waited = tokio::time::timeout(timeout, first_poll.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(at)) => at.expect("wait_for returned Some"),
            Ok(Err(_)) => unreachable!("the sender lives in self"),
            Err(_) => panic!("no function polled the runtime API within {timeout:?}"),
        }
    }

    /// Number of `next` polls received so far.
    pub fn polls(&self) -> usize {
        self.inner.polls.load(Ordering::SeqCst)
    }

    /// The body of `/runtime/init/error`, if the function posted one.
    pub fn init_error(&self) -> Option<Value> {
        self.inner.init_error.borrow().clone()
    }

    /// Forget a recorded init error (e.g. before starting a fixed function on the same emulator);
    /// while one is recorded every invocation fails with [`InvokeError::InitError`].
    pub fn clear_init_error(&self) {
        self.inner.init_error.send_replace(None);
    }

    /// Request ids of responses/errors posted for invocations the emulator did not hand out
    /// (or that already timed out); should stay empty.
    pub fn unknown_answers(&self) -> Vec<String> {
        lock(&self.inner.unknown_answers).clone()
    }

    /// Drop an invocation that gave up, so no function picks it up later.
    fn forget(&self, request_id: &str) {
        lock(&self.inner.queue).retain(|queued| queued.request_id != request_id);
        lock(&self.inner.in_flight).remove(request_id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn handle(inner: Arc<Inner>, request: Request<Incoming>, _connection: Connection) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return runtime_error(400, "InvalidRequest", &format!("unreadable body: {error}"));
        }
    };
    let error_type = parts
        .headers
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let Some(path) = parts.uri.path().strip_prefix(API_PREFIX) else {
        return runtime_error(404, "NotFound", parts.uri.path());
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next_invocation(&inner).await,
        (&Method::POST, ["invocation", request_id, "response"]) => {
            answer(&inner, request_id, Ok(parse_body(&body)), error_type)
        }
        (&Method::POST, ["invocation", request_id, "error"]) => {
            answer(&inner, request_id, Err(parse_body(&body)), error_type)
        }
        (&Method::POST, ["init", "error"]) => {
            inner.init_error.send_replace(Some(parse_body(&body)));
            json_response(202, &json!({ "status": "OK" }))
        }
        _ => runtime_error(404, "NotFound", &format!("{} {}", parts.method, parts.uri.path())),
    }
}

/// Long-poll until an invocation is queued, then hand it to this caller.
async fn next_invocation(inner: &Inner) -> HttpResponse {
    inner.polls.fetch_add(1, Ordering::SeqCst);
    inner.first_poll.send_if_modified(|first| {
        let is_first = first.is_none();
        if is_first {
            *first = Some(Instant::now());
        }
        is_first
    });
    let queued = loop {
        // Register interest before checking the queue so a notification cannot slip between.
        let mut notified = pin!(inner.queued.notified());
        notified.as_mut().enable();
        if let Some(queued) = lock(&inner.queue).pop_front() {
            break queued;
        }
        notified.await;
    };
    let function_timeout = lock(&inner.settings).function_timeout;
    let deadline = (SystemTime::now() + function_timeout)
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis();
    let _ = queued.polled.send(Instant::now());
    lock(&inner.in_flight).insert(queued.request_id.clone(), queued.answer);

    let mut response = json_response(200, &queued.payload);
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        headers.insert(
            name,
            HeaderValue::from_str(&value).expect("runtime headers are ASCII"),
        );
    };
    set("lambda-runtime-aws-request-id", queued.request_id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set("lambda-runtime-invoked-function-arn", FUNCTION_ARN.to_owned());
    set("lambda-runtime-trace-id", trace_id());
    response
}

fn answer(
    inner: &Inner,
    request_id: &str,
    outcome: Result<Value, Value>,
    error_type: Option<String>,
) -> HttpResponse {
    let Some(sender) = lock(&inner.in_flight).remove(request_id) else {
        lock(&inner.unknown_answers).push(request_id.to_owned());
        return runtime_error(
            400,
            "InvalidRequestID",
            &format!("unknown or finished request id {request_id}"),
        );
    };
    // The invoker may have timed out and gone; the answer is then simply dropped.
    let _ = sender.send(Answer { outcome, error_type });
    json_response(202, &json!({ "status": "OK" }))
}

fn parse_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn runtime_error(status: u16, error_type: &str, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({ "errorType": error_type, "errorMessage": message }),
    )
}

/// An X-Ray trace header in the format Lambda sends.
fn trace_id() -> String {
    let epoch_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let hex = |digits: usize| -> String {
        std::iter::repeat_with(|| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .take(digits)
            .collect()
    };
    format!("Root=1-{epoch_secs:08x}-{};Parent={};Sampled=0", hex(24), hex(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal runtime client, like `lambda_runtime`'s loop, answering `handler(payload)`.
    fn spawn_runtime(runtime: &RuntimeApi, handler: fn(&Value) -> Result<Value, Value>) {
        let base = format!("http://{}{API_PREFIX}", runtime.address());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let Ok(next) = client.get(format!("{base}/invocation/next")).send().await else {
                    return;
                };
                let headers = next.headers().clone();
                let request_id = headers["lambda-runtime-aws-request-id"]
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                let deadline: u64 = headers["lambda-runtime-deadline-ms"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("ms");
                assert!(
                    deadline
                        > SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .expect("clock")
                            .as_millis() as u64
                );
                assert!(headers.contains_key("lambda-runtime-invoked-function-arn"));
                assert!(headers.contains_key("lambda-runtime-trace-id"));
                let payload: Value = next.json().await.expect("payload");
                let (path, body) = match handler(&payload) {
                    Ok(body) => ("response", body),
                    Err(body) => ("error", body),
                };
                let posted = client
                    .post(format!("{base}/invocation/{request_id}/{path}"))
                    .header("lambda-runtime-function-error-type", "unhandled")
                    .json(&body)
                    .send()
                    .await
                    .expect("post answer");
                assert_eq!(posted.status(), 202);
            }
        });
    }

    fn echo(payload: &Value) -> Result<Value, Value> {
        if payload["fail"] == true {
            Err(json!({ "errorType": "Boom", "errorMessage": "asked to fail" }))
        } else {
            Ok(json!({ "echo": payload }))
        }
    }

    #[tokio::test]
    async fn round_trips_responses_and_errors() {
        let runtime = RuntimeApi::start().await;
        assert!(!runtime.address().contains("://"));
        assert_eq!(runtime.first_poll_at(), None);
        spawn_runtime(&runtime, echo);
        runtime.wait_first_poll(Duration::from_secs(10)).await;

        let ok = runtime.invoke(json!({ "n": 1 })).await;
        assert_eq!(ok.outcome, Ok(json!({ "echo": { "n": 1 } })));
        assert!(ok.queued <= ok.elapsed);
        let failed = runtime.invoke(json!({ "fail": true })).await;
        assert_eq!(failed.outcome.expect_err("error")["errorType"], "Boom");
        assert_eq!(failed.error_type.as_deref(), Some("unhandled"));
        assert!(runtime.polls() >= 2);
        assert!(runtime.unknown_answers().is_empty());
    }

    #[tokio::test]
    async fn serves_many_queued_invocations_to_several_pollers() {
        let runtime = RuntimeApi::start().await;
        // Invocations queued before any runtime polls must all be delivered once.
        let invocations: Vec<_> = (0..20)
            .map(|n| {
                let runtime = runtime.clone();
                tokio::spawn(async move { runtime.invoke(json!({ "n": n })).await })
            })
            .collect();
        spawn_runtime(&runtime, echo);
        spawn_runtime(&runtime, echo);
        for (n, invocation) in invocations.into_iter().enumerate() {
            let invocation = invocation.await.expect("invoke task");
            assert_eq!(invocation.expect_ok(), json!({ "echo": { "n": n } }));
        }
    }

    #[tokio::test]
    async fn times_out_clearly_when_nobody_polls() {
        let runtime = RuntimeApi::start().await;
        runtime.set_invoke_timeout(Duration::from_millis(200));
        let error = runtime.try_invoke(json!({})).await.expect_err("nobody polls");
        assert!(matches!(error, InvokeError::Timeout { polled: false, .. }));
        assert!(error.to_string().contains("no function polled"));
        // The abandoned invocation must not be handed to a later poller.
        assert!(lock(&runtime.inner.queue).is_empty());
    }

    #[tokio::test]
    async fn init_errors_fail_waiting_invocations() {
        let runtime = RuntimeApi::start().await;
        let waiting = {
            let runtime = runtime.clone();
            tokio::spawn(async move { runtime.try_invoke(json!({})).await })
        };
        let response = reqwest::Client::new()
            .post(format!("http://{}{API_PREFIX}/init/error", runtime.address()))
            .json(&json!({ "errorType": "Runtime.InitError", "errorMessage": "no config" }))
            .send()
            .await
            .expect("post init error");
        assert_eq!(response.status(), 202);
        let error = waiting.await.expect("task").expect_err("init error");
        assert!(matches!(error, InvokeError::InitError(body) if body["errorMessage"] == "no config"));
        assert_eq!(
            runtime.init_error().expect("recorded")["errorType"],
            "Runtime.InitError"
        );
    }
}
