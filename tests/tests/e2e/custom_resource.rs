//! `Custom::LeafWebhook` end to end: the real `verify` binary gets CloudFormation's requests
//! (from `events/verify-custom-resource-*.json`), registers and removes the alerts webhook at the
//! Leaf stand-in, and answers each request with a PUT to a `ResponseURL` served here on
//! 127.0.0.1, which records what CloudFormation would read.
//!
//! Create, Update and Delete (a missing webhook counts as removed); a webhook of someone else's
//! already on the events fails the Create with a Reason that names it and gives the ways out,
//! and the rollback's Delete then calls no one; a Leaf that never answers is answered FAILED
//! before the function's deadline.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use testbed::alerts::store_webhook_secret;
use testbed::bed::{Bed, Running};
use testbed::standin::WebhookView;
use testbed::{Fault, Route, load_event};

const EVENTS: [&str; 2] = ["credentialsUnauthenticated", "credentialsLimitedPermission"];
/// What verify answers as PhysicalResourceId when it registered nothing.
const NOT_REGISTERED: &str = "stara-connect-webhook-not-registered";
const ALERTS_URL: &str = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/leaf/alerts";

/// One PUT (or anything else) the `ResponseURL` server received.
#[derive(Debug, Clone)]
struct Answer {
    method: String,
    target: String,
    content_type: Option<String>,
    body: Value,
}

/// CloudFormation's side: a `ResponseURL` on 127.0.0.1 that records every request.
struct ResponseUrl {
    base: String,
    seen: Arc<Mutex<Vec<Answer>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ResponseUrl {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ResponseUrl {
    async fn start() -> ResponseUrl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let content_type = parts.headers.get("content-type");
                        record.lock().unwrap().push(Answer {
                            method: parts.method.to_string(),
                            target: parts.uri.to_string(),
                            content_type: content_type.map(|v| v.to_str().unwrap_or("?").to_owned()),
                            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                        });
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        ResponseUrl { base, seen, server }
    }

    /// A pre-signed-looking URL of this server, one per request.
    fn url(&self, request_id: &str) -> String {
        format!(
            "{}/cfn/{request_id}?X-Amz-Expires=7200&X-Amz-Signature=e2e",
            self.base
        )
    }

    /// The one answer to `url`; panics unless there is exactly one, a PUT with an empty
    /// Content-Type.
    fn answer(&self, url: &str) -> Value {
        let target = url.strip_prefix(&self.base).expect("a URL of this server");
        let seen = self.seen.lock().unwrap();
        let answers: Vec<&Answer> = seen.iter().filter(|a| a.target == target).collect();
        let [answer] = answers.as_slice() else {
            panic!("expected one answer to {target}: {seen:?}")
        };
        assert_eq!(answer.method, "PUT", "{answer:?}");
        assert_eq!(answer.content_type.as_deref(), Some(""), "{answer:?}");
        answer.body.clone()
    }
}

/// A deployment of verify with alerts on, and CloudFormation's `ResponseURL`.
struct World {
    bed: Bed,
    verify: Running,
    cfn: ResponseUrl,
    /// The stack's name (the webhook is `<stack>-stara-connect`).
    stack: String,
}

async fn world() -> World {
    let bed = Bed::start().await;
    let (secret_id, _) = store_webhook_secret(&bed).await;
    let verify = bed
        .run("verify", &[("LEAF_WEBHOOK_SECRET_ID", secret_id.as_str())])
        .await;
    let stack = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    World {
        bed,
        verify,
        cfn: ResponseUrl::start().await,
        stack,
    }
}

impl World {
    /// Sends CloudFormation's `kind` request; returns the function's own result and the answer
    /// CloudFormation got.
    async fn request(&self, kind: &str, physical_id: Option<&str>, url: &str) -> (Value, Value) {
        let sample = match kind {
            "Delete" => "verify-custom-resource-delete.json",
            _ => "verify-custom-resource-create.json",
        };
        let mut event = load_event(sample);
        let request_id = uuid::Uuid::new_v4().to_string();
        let response_url = self.cfn.url(&request_id);
        event["RequestType"] = json!(kind);
        event["RequestId"] = json!(request_id);
        event["ResponseURL"] = json!(response_url);
        event["StackId"] = json!(format!(
            "arn:aws:cloudformation:us-east-1:123456789012:stack/{}/5b6f3a40-1a2b-11ef-9c3d",
            self.stack
        ));
        event["ResourceProperties"]["Url"] = json!(url);
        let object = event.as_object_mut().expect("an object");
        match physical_id {
            Some(id) => object.insert("PhysicalResourceId".into(), json!(id)),
            None => object.remove("PhysicalResourceId"),
        };
        let returned = self.bed.invoke(&self.verify, event.clone()).await.expect_ok();
        let answer = self.cfn.answer(&response_url);
        assert_eq!(answer["StackId"], event["StackId"], "{answer}");
        assert_eq!(answer["RequestId"], event["RequestId"], "{answer}");
        assert_eq!(answer["LogicalResourceId"], "LeafWebhook", "{answer}");
        assert_eq!(
            returned,
            json!({"Status": answer["Status"], "PhysicalResourceId": answer["PhysicalResourceId"],
                "Answered": true}),
        );
        (returned, answer)
    }

    fn webhook(&self, id: &str, url: &str) -> WebhookView {
        WebhookView {
            id: id.to_owned(),
            name: format!("{}-stara-connect", self.stack),
            url: url.to_owned(),
            events: EVENTS.map(str::to_owned).to_vec(),
        }
    }
}

#[tokio::test]
async fn create_update_and_delete_keep_one_webhook_at_leaf() {
    let w = world().await;
    let (_, created) = w.request("Create", None, ALERTS_URL).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    let id = created["PhysicalResourceId"].as_str().expect("an id").to_owned();
    assert_eq!(created["Data"], json!({"WebhookId": id}));
    assert_eq!(w.bed.standin.webhooks(), [w.webhook(&id, ALERTS_URL)]);
    let posts = w.bed.standin.requests(Route::LeafPostWebhook);
    let [post] = posts.as_slice() else {
        panic!("{posts:?}")
    };
    let mut keys: Vec<String> = post
        .json()
        .expect("JSON")
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(keys, ["events", "name", "secret", "url"]);

    // A new URL: the old webhook holds the events, so it goes and the new one comes.
    let moved = "https://alerts.example.com/leaf/alerts";
    let (_, updated) = w.request("Update", Some(&id), moved).await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    let new_id = updated["PhysicalResourceId"].as_str().expect("an id").to_owned();
    assert_ne!(new_id, id);
    assert_eq!(w.bed.standin.webhooks(), [w.webhook(&new_id, moved)]);

    // CloudFormation's cleanup Delete of the old id, then the stack's Delete.
    for (physical_id, reason) in [
        (&id, format!("Leaf webhook {id} was already gone")),
        (&new_id, format!("Leaf webhook {new_id} removed")),
        (&new_id, format!("Leaf webhook {new_id} was already gone")),
    ] {
        let (_, deleted) = w.request("Delete", Some(physical_id), moved).await;
        assert_eq!(
            (
                &deleted["Status"],
                &deleted["PhysicalResourceId"],
                &deleted["Reason"]
            ),
            (&json!("SUCCESS"), &json!(physical_id), &json!(reason))
        );
    }
    assert!(w.bed.standin.webhooks().is_empty());
    assert_eq!(w.bed.standin.count(Route::LeafDeleteWebhook), 4);
    assert!(w.bed.standin.unrouted().is_empty());
    w.bed.assert_no_leaks(&[&w.verify.function]);
}

#[tokio::test]
async fn a_webhook_already_on_the_events_fails_the_create_and_is_named() {
    let w = world().await;
    let theirs = w
        .bed
        .standin
        .add_webhook("legacy-alerts", "https://hooks.example/leaf", &[EVENTS[0]]);
    let before = w.bed.standin.webhooks();
    let (returned, failed) = w.request("Create", None, ALERTS_URL).await;
    assert_eq!(returned["Status"], "FAILED");
    assert_eq!(failed["PhysicalResourceId"], NOT_REGISTERED);
    let reason = failed["Reason"].as_str().expect("a Reason");
    for part in [
        &format!(
            "another webhook already listens to credentialsUnauthenticated: 'legacy-alerts' \
             (id {theirs}, url https://hooks.example/leaf)."
        ),
        "only one webhook",
        "LeafAlerts=Disabled",
        &format!("DELETE /services/alerts/api/alerts/webhooks/{theirs}"),
    ] {
        assert!(reason.contains(part), "{part}: {reason}");
    }
    assert_eq!(w.bed.standin.webhooks(), before, "nothing changed at Leaf");

    // The rollback: CloudFormation deletes what the failed Create answered; no one is called.
    let (_, deleted) = w.request("Delete", Some(NOT_REGISTERED), ALERTS_URL).await;
    assert_eq!(
        (&deleted["Status"], &deleted["PhysicalResourceId"]),
        (&json!("SUCCESS"), &json!(NOT_REGISTERED))
    );
    assert_eq!(w.bed.standin.count(Route::LeafDeleteWebhook), 0);
    assert_eq!(w.bed.standin.webhooks(), before);
    // The listing verify read carries the other webhook's secret: it must not be logged.
    assert_eq!(w.bed.standin.count(Route::LeafGetWebhooks), 1);
    w.bed.assert_no_leaks(&[&w.verify.function]);
}

#[tokio::test]
async fn a_leaf_that_never_answers_is_answered_failed_before_the_deadline() {
    let w = world().await;
    let timeout = Duration::from_secs(8);
    w.verify.runtime.set_function_timeout(timeout);
    w.bed.standin.inject(Route::LeafPostWebhook, Fault::Hang, 10);
    let started = Instant::now();
    let (_, failed) = w.request("Create", None, ALERTS_URL).await;
    assert!(
        started.elapsed() < timeout,
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        (&failed["Status"], &failed["PhysicalResourceId"]),
        (&json!("FAILED"), &json!(NOT_REGISTERED))
    );
    let reason = failed["Reason"].as_str().expect("a Reason");
    assert!(reason.contains("in time"), "{reason}");
}
