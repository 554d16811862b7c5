//! The emulator against a minimal runtime client, like `lambda_runtime`'s loop.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::endpoints::API_PREFIX;
use super::{InvokeError, RuntimeApi, lock};

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

/// A runtime that, after posting each answer, works on for `linger` before it polls again; it
/// polls `rounds` times.
fn spawn_lingering_runtime(runtime: &RuntimeApi, linger: Duration, rounds: usize) {
    let base = format!("http://{}{API_PREFIX}", runtime.address());
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        for _ in 0..rounds {
            let next = client
                .get(format!("{base}/invocation/next"))
                .send()
                .await
                .expect("next");
            let request_id = next.headers()["lambda-runtime-aws-request-id"]
                .to_str()
                .expect("ascii")
                .to_owned();
            client
                .post(format!("{base}/invocation/{request_id}/response"))
                .json(&json!({ "ok": true }))
                .send()
                .await
                .expect("post answer");
            tokio::time::sleep(linger).await;
        }
    });
}

#[tokio::test]
async fn an_invocation_is_finished_when_the_function_polls_again() {
    let runtime = RuntimeApi::start().await;
    let linger = Duration::from_millis(300);
    spawn_lingering_runtime(&runtime, linger, 2);
    runtime.wait_first_poll(Duration::from_secs(10)).await;

    let invocation = runtime.invoke(json!({})).await;
    let answered = std::time::Instant::now();
    assert!(
        invocation.elapsed < linger,
        "the answer does not wait for the work after it"
    );
    assert!(runtime.finished(&invocation, Duration::from_secs(10)).await);
    assert!(
        answered.elapsed() >= linger - Duration::from_millis(50),
        "{:?}",
        answered.elapsed()
    );
    // Answered once: it never polls again, so the next invocation's wait gives up.
    let (runtime2, linger2) = (RuntimeApi::start().await, Duration::from_secs(3600));
    spawn_lingering_runtime(&runtime2, linger2, 1);
    let stuck = runtime2.invoke(json!({})).await;
    assert!(!runtime2.finished(&stuck, Duration::from_millis(200)).await);
}
