//! A grower's lifecycle end to end: the state connect keeps in tags on the grower's login secret
//! (disconnected, login rejected), what the scheduled sweep and the repairs it queues do with
//! it, and the guards that keep a replacement from leaving a grower with less than before.
//!
//! The real `connect` and `verify` binaries, the connect FIFO queue in moto between them (a
//! test delivers what verify queued to connect, as the queue's trigger would), the Stara/Leaf
//! stand-in and the secrets in moto. docs/HEALTH.md draws the states; docs/RELIABILITY.md lists
//! these tests against the faults they cover.
//!
//! `disconnect`: DELETE marks the grower; sweeps and late repairs leave it alone; an explicit
//! connect brings it back. `login`: a login Stara rejects is tried once per secret version.
//! `replacement`: no DELETE without time for the POST, every POST failure after a DELETE and
//! every configuration failure retried through the queue. `health`: one health model for
//! connect and verify, old events, and misnamed secrets.

mod disconnect;
mod health;
mod login;
mod replacement;

use aws_sdk_sqs::types::Message;
use serde_json::{Value, json};
use testbed::bed::{
    Bed, Running, api_response, batch_failures, connect_api_event, disconnect_api_event, sqs_event,
    verify_api_event,
};
use testbed::load_event;
use testbed::queue::{connect_queue, sqs_event_of};
use testbed::secret_state::{self, Described};

/// Both functions of one deployment and the queue between them.
struct World {
    bed: Bed,
    connect: Running,
    verify: Running,
    queue: String,
}

async fn world() -> World {
    let bed = Bed::start().await;
    let queue = connect_queue("lifecycle").await;
    let verify = bed.run("verify", &[("CONNECT_QUEUE_URL", queue.as_str())]).await;
    let connect = bed.run("connect", &[]).await;
    World {
        bed,
        connect,
        verify,
        queue,
    }
}

impl World {
    /// One scheduled verify run; its summary.
    async fn sweep(&self) -> Value {
        let event = load_event("verify-schedule-rule.json");
        self.bed.invoke(&self.verify, event).await.expect_ok()
    }

    /// The repairs waiting in the connect queue (received and deleted): `expected` of them, or
    /// whatever arrived when there should be none.
    async fn queued(&self, expected: usize) -> Vec<Message> {
        testbed::queue::queued(&self.queue, expected).await
    }

    /// Hands `messages` to connect as its SQS trigger would; the batch item failures. An empty
    /// list is not delivered (SQS never sends an empty batch).
    async fn deliver(&self, messages: &[Message]) -> Vec<String> {
        if messages.is_empty() {
            return Vec::new();
        }
        batch_failures(&self.bed.invoke(&self.connect, sqs_event_of(messages)).await)
    }

    /// Sends these message bodies to connect in one SQS batch (ids `m0`, `m1`, ...); the batch
    /// item failures.
    async fn send(&self, bodies: &[String]) -> Vec<String> {
        batch_failures(&self.bed.invoke(&self.connect, sqs_event(bodies)).await)
    }

    /// `POST /connections` without `reason`: an explicit connect.
    async fn connect_now(&self, id: &str, force: bool) -> (u16, Value) {
        api_response(&self.bed.invoke(&self.connect, connect_api_event(id, force)).await)
    }

    /// `DELETE /connections/{id}`.
    async fn disconnect(&self, id: &str) -> (u16, Value) {
        api_response(&self.bed.invoke(&self.connect, disconnect_api_event(id)).await)
    }

    /// `GET /connections/{id}` (verify).
    async fn health(&self, id: &str) -> (u16, Value) {
        api_response(&self.bed.invoke(&self.verify, verify_api_event(id)).await)
    }

    /// The grower's login secret as `DescribeSecret` shows it: tags and versions.
    async fn secret(&self, id: &str) -> Described {
        secret_state::describe(&self.bed.secret_id(id)).await
    }

    fn assert_no_leaks(&self) {
        self.bed
            .assert_no_leaks(&[&self.connect.function, &self.verify.function]);
    }
}

/// A run's summary: every count 0 except those given.
fn summary(counts: &[(&str, u64)]) -> Value {
    let mut summary = json!({
        "checked": 0, "healthy": 0, "unhealthy": 0, "missing": 0, "pending": 0, "errors": 0,
        "unchecked": 0, "repairsQueued": 0, "repairsFailed": 0, "disconnected": 0, "loginRejected": 0,
    });
    for (name, count) in counts {
        assert!(summary.get(name).is_some(), "no summary field {name}");
        summary[name] = json!(count);
    }
    summary
}

/// Whether a log line belongs to this grower (its span or its own `leafUserId` field).
fn about(line: &Value, id: &str) -> bool {
    line["leafUserId"] == id
        || line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|span| span["leafUserId"] == id))
}

/// The lines `running` logged with this message about this grower.
fn lines_about(running: &Running, message: &str, id: &str) -> Vec<Value> {
    running
        .function
        .log_json()
        .into_iter()
        .filter(|line| line["message"] == message && about(line, id))
        .collect()
}

/// The `outcome` of each "connect finished" line about this grower, in order.
fn outcomes(running: &Running, id: &str) -> Vec<String> {
    lines_about(running, "connect finished", id)
        .iter()
        .map(|line| line["outcome"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The `code` of each "connect failed" line about this grower, in order.
fn failure_codes(running: &Running, id: &str) -> Vec<String> {
    lines_about(running, "connect failed", id)
        .iter()
        .map(|line| line["code"].as_str().unwrap_or("?").to_owned())
        .collect()
}
