//! The Runtime API's HTTP endpoints, as the function sees them: `GET .../invocation/next`, the
//! `response` and `error` posts of an invocation, and `POST .../init/error`.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request};
use serde_json::{Value, json};

use super::{Answer, Inner, lock};
use crate::server::{Connection, HttpResponse, json_response};

pub(super) const API_PREFIX: &str = "/2018-06-01/runtime";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:testbed";

pub(super) async fn handle(
    inner: Arc<Inner>,
    request: Request<Incoming>,
    _connection: Connection,
) -> HttpResponse {
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
    inner.polls.send_modify(|polls| *polls += 1);
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
    let polls = *inner.polls.borrow();
    let _ = sender.send(Answer {
        outcome,
        error_type,
        polls,
    });
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
