//! The connect queue between verify and connect: a FIFO queue in moto, the repair messages verify
//! sends to it, and the SQS event connect's trigger would make of what it received.

use aws_sdk_sqs::types::Message;
use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
use serde_json::{Value, json};

use crate::{load_event, moto};

/// A new FIFO queue in moto, named `stara-connect-<label>-<uuid>.fifo`; returns its URL.
pub async fn connect_queue(label: &str) -> String {
    let name = format!("stara-connect-{label}-{}.fifo", uuid::Uuid::new_v4().simple());
    moto::create_fifo_queue(&name).await
}

/// The messages waiting in `queue`, received and deleted: `expected` of them (waiting up to
/// 10 s), or whatever arrives within half a second when none should.
pub async fn queued(queue: &str, expected: usize) -> Vec<Message> {
    let wait = std::time::Duration::from_millis(if expected == 0 { 500 } else { 10_000 });
    moto::drain_queue(queue, expected, wait).await
}

/// The body of a repair, as verify sends it: `{"leafUserId", "force", "reason"}`.
pub fn repair_body(leaf_user_id: &str, force: bool, reason: &str) -> String {
    json!({"leafUserId": leaf_user_id, "force": force, "reason": reason}).to_string()
}

/// Messages received from the queue, as the SQS event connect gets (the shape of
/// events/connect-sqs.json), with their own message ids, bodies and FIFO attributes.
pub fn sqs_event_of(messages: &[Message]) -> Value {
    let template = load_event("connect-sqs.json")["Records"][0].clone();
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attribute = |name: Attr| {
                m.attributes()
                    .and_then(|a| a.get(&name))
                    .cloned()
                    .unwrap_or_default()
            };
            let mut record = template.clone();
            record["messageId"] = json!(m.message_id());
            record["receiptHandle"] = json!(m.receipt_handle());
            record["body"] = json!(m.body());
            record["md5OfBody"] = json!(m.md5_of_body());
            record["attributes"]["MessageGroupId"] = json!(attribute(Attr::MessageGroupId));
            record["attributes"]["MessageDeduplicationId"] = json!(attribute(Attr::MessageDeduplicationId));
            record
        })
        .collect();
    json!({"Records": records})
}

/// The `leafUserId` each message's body names, in order.
pub fn users_of(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default();
            body["leafUserId"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}
