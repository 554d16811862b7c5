//! SQS queues the proxy keeps in memory instead of moto, opt-in, one by one
//! ([`AwsProxy::serve_queue`](super::AwsProxy::serve_queue)). moto looks at every message of a
//! queue for every call (a `ReceiveMessage` takes about 0.6 s with 1,000 messages of 11 KB
//! waiting, a `GetQueueAttributes` 0.2 s), and two receives at once can hand out one message
//! twice; a benchmark that queues a thousand messages needs neither.
//!
//! What a standard queue does, for the calls the functions and the event source mapping make:
//! `SendMessage(Batch)`, `ReceiveMessage` (long polling, visibility timeout, the system
//! attributes), `DeleteMessage(Batch)`, `ChangeMessageVisibility(Batch)`, `GetQueueAttributes`.
//! A `.fifo` queue drops a message whose deduplication id it has seen (for as long as the queue
//! lives, not SQS's five minutes) and keeps no order between groups: nothing receives from it
//! in order here. The MD5 digests are not computed (the Rust SDK does not check them).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::aws_error;
use crate::server::{self, HttpResponse};

/// Stands for the MD5 digests SQS computes.
const NO_MD5: &str = "00000000000000000000000000000000";

#[derive(Default)]
pub(super) struct Queues {
    by_url: Mutex<HashMap<String, Queue>>,
}

struct Queue {
    arn: String,
    fifo: bool,
    /// Messages not yet deleted, oldest first.
    messages: Vec<Stored>,
    /// Deduplication ids seen (FIFO).
    seen: HashSet<String>,
    /// Messages accepted (a duplicate is not).
    sent: usize,
}

struct Stored {
    id: String,
    body: String,
    /// When it may be received again; `None`: never received.
    hidden_until: Option<Instant>,
    receives: u32,
    sent_ms: u128,
    first_receive_ms: Option<u128>,
    group: Option<String>,
    dedup: Option<String>,
}

impl Queues {
    /// A new empty queue of this URL (named `.../<name>`; `.fifo` at the end makes it FIFO).
    pub(super) fn create(&self, url: &str) {
        let name = url.rsplit('/').next().unwrap_or(url);
        let queue = Queue {
            arn: format!("arn:aws:sqs:us-east-1:123456789012:{name}"),
            fifo: name.ends_with(".fifo"),
            messages: Vec::new(),
            seen: HashSet::new(),
            sent: 0,
        };
        self.lock().insert(url.to_owned(), queue);
    }

    /// The bodies of the messages `url` holds (not deleted), oldest first, and how many it
    /// accepted in all; `None` if the proxy does not serve it.
    pub(super) fn contents(&self, url: &str) -> Option<(Vec<String>, usize)> {
        let queues = self.lock();
        let queue = queues.get(url)?;
        Some((
            queue.messages.iter().map(|m| m.body.clone()).collect(),
            queue.sent,
        ))
    }

    /// The answer to an SQS call (`AmazonSQS.<operation>`, JSON `body`) on a served queue;
    /// `None` when the call names no served queue (it goes to moto).
    pub(super) async fn answer(&self, operation: &str, body: &[u8]) -> Option<HttpResponse> {
        let asked: Value = serde_json::from_slice(body).ok()?;
        let url = asked["QueueUrl"].as_str()?.to_owned();
        if !self.lock().contains_key(&url) {
            return None;
        }
        let operation = operation.strip_prefix("AmazonSQS.").unwrap_or(operation);
        if operation == "ReceiveMessage" {
            return Some(self.receive(&url, &asked).await);
        }
        let mut queues = self.lock();
        let queue = queues.get_mut(&url)?;
        let answer = match operation {
            "SendMessage" => Ok(queue.send(&asked)),
            "SendMessageBatch" => Ok(batch(&asked, |entry| Ok(queue.send(entry)))),
            "DeleteMessage" => queue.delete(&asked).map(|()| json!({})),
            "DeleteMessageBatch" => Ok(batch(&asked, |entry| queue.delete(entry).map(|()| json!({})))),
            "ChangeMessageVisibility" => queue.change_visibility(&asked).map(|()| json!({})),
            "ChangeMessageVisibilityBatch" => Ok(batch(&asked, |entry| {
                queue.change_visibility(entry).map(|()| json!({}))
            })),
            "GetQueueAttributes" => Ok(queue.attributes(&asked)),
            _ => Err((
                "UnsupportedOperation",
                "not served by the proxy's in-memory queue",
            )),
        };
        Some(match answer {
            Ok(value) => json_1_0(&value),
            Err((kind, message)) => aws_error(400, kind, message),
        })
    }

    /// Up to `MaxNumberOfMessages` visible messages, waiting up to `WaitTimeSeconds` for one.
    async fn receive(&self, url: &str, asked: &Value) -> HttpResponse {
        let wait = Duration::from_secs(asked["WaitTimeSeconds"].as_u64().unwrap_or(0));
        let until = Instant::now() + wait;
        loop {
            let messages = {
                let mut queues = self.lock();
                let Some(queue) = queues.get_mut(url) else {
                    return aws_error(400, "QueueDoesNotExist", "the queue was removed");
                };
                queue.take(asked)
            };
            if !messages.is_empty() || Instant::now() >= until {
                return json_1_0(&json!({ "Messages": messages }));
            }
            // A stand-in's long poll: look again shortly (a message may be sent or come back).
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        self.by_url.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Queue {
    fn send(&mut self, entry: &Value) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        let dedup = entry["MessageDeduplicationId"].as_str().map(str::to_owned);
        if self.fifo && dedup.as_ref().is_some_and(|d| !self.seen.insert(d.clone())) {
            // SQS accepts a duplicate and drops it.
            return json!({"MessageId": id, "MD5OfMessageBody": NO_MD5});
        }
        self.sent += 1;
        self.messages.push(Stored {
            id: id.clone(),
            body: entry["MessageBody"].as_str().unwrap_or_default().to_owned(),
            hidden_until: None,
            receives: 0,
            sent_ms: now_ms(),
            first_receive_ms: None,
            group: entry["MessageGroupId"].as_str().map(str::to_owned),
            dedup,
        });
        json!({"MessageId": id, "MD5OfMessageBody": NO_MD5})
    }

    /// Marks up to `MaxNumberOfMessages` visible messages received, for `VisibilityTimeout`.
    fn take(&mut self, asked: &Value) -> Vec<Value> {
        let max = asked["MaxNumberOfMessages"].as_u64().unwrap_or(1).clamp(1, 10) as usize;
        let hidden = Duration::from_secs(asked["VisibilityTimeout"].as_u64().unwrap_or(30));
        let names: Vec<&str> = ["MessageSystemAttributeNames", "AttributeNames"]
            .iter()
            .flat_map(|key| asked[*key].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        let now = Instant::now();
        let mut taken = Vec::new();
        for message in self.messages.iter_mut() {
            if taken.len() == max {
                break;
            }
            if message.hidden_until.is_some_and(|until| until > now) {
                continue;
            }
            message.receives += 1;
            message.hidden_until = Some(now + hidden);
            let first = *message.first_receive_ms.get_or_insert_with(now_ms);
            let mut attributes = serde_json::Map::new();
            let mut put = |name: &str, value: String| {
                if names.iter().any(|n| *n == "All" || *n == name) {
                    attributes.insert(name.to_owned(), json!(value));
                }
            };
            put("ApproximateReceiveCount", message.receives.to_string());
            put("SentTimestamp", message.sent_ms.to_string());
            put("ApproximateFirstReceiveTimestamp", first.to_string());
            put("SenderId", "AIDAPROXYSTANDIN".to_owned());
            if let Some(group) = &message.group {
                put("MessageGroupId", group.clone());
            }
            if let Some(dedup) = &message.dedup {
                put("MessageDeduplicationId", dedup.clone());
            }
            let mut received = json!({
                "MessageId": message.id,
                "ReceiptHandle": format!("{}#{}", message.id, message.receives),
                "MD5OfBody": NO_MD5,
                "Body": message.body,
            });
            if !attributes.is_empty() {
                received["Attributes"] = Value::Object(attributes);
            }
            taken.push(received);
        }
        taken
    }

    /// The message a receipt handle names, if it is still held.
    fn find(&mut self, entry: &Value) -> Result<usize, (&'static str, &'static str)> {
        let handle = entry["ReceiptHandle"].as_str().unwrap_or_default();
        let id = handle.split('#').next().unwrap_or_default();
        self.messages
            .iter()
            .position(|m| m.id == id && m.receives > 0)
            .ok_or(("ReceiptHandleIsInvalid", "no such message in flight"))
    }

    fn delete(&mut self, entry: &Value) -> Result<(), (&'static str, &'static str)> {
        let at = self.find(entry)?;
        self.messages.remove(at);
        Ok(())
    }

    fn change_visibility(&mut self, entry: &Value) -> Result<(), (&'static str, &'static str)> {
        let at = self.find(entry)?;
        let hidden = Duration::from_secs(entry["VisibilityTimeout"].as_u64().unwrap_or(0));
        self.messages[at].hidden_until = Some(Instant::now() + hidden);
        Ok(())
    }

    fn attributes(&self, asked: &Value) -> Value {
        let now = Instant::now();
        let hidden = self
            .messages
            .iter()
            .filter(|m| m.hidden_until.is_some_and(|until| until > now))
            .count();
        let all = [
            ("QueueArn", self.arn.clone()),
            (
                "ApproximateNumberOfMessages",
                (self.messages.len() - hidden).to_string(),
            ),
            ("ApproximateNumberOfMessagesNotVisible", hidden.to_string()),
            ("ApproximateNumberOfMessagesDelayed", "0".to_owned()),
            ("FifoQueue", self.fifo.to_string()),
        ];
        let names: Vec<&str> = asked["AttributeNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let chosen: serde_json::Map<String, Value> = all
            .into_iter()
            .filter(|(name, _)| names.iter().any(|n| *n == "All" || n == name))
            .map(|(name, value)| (name.to_owned(), json!(value)))
            .collect();
        json!({ "Attributes": chosen })
    }
}

/// A batch call: each entry through `one`, answered as `Successful` (with the entry's `Id`) or `Failed`.
fn batch(asked: &Value, mut one: impl FnMut(&Value) -> Result<Value, (&'static str, &'static str)>) -> Value {
    let (mut successful, mut failed) = (Vec::new(), Vec::new());
    for entry in asked["Entries"].as_array().into_iter().flatten() {
        let id = entry["Id"].clone();
        match one(entry) {
            Ok(mut done) => {
                done["Id"] = id;
                successful.push(done);
            }
            Err((code, message)) => {
                failed.push(json!({"Id": id, "Code": code, "Message": message, "SenderFault": true}))
            }
        }
    }
    json!({"Successful": successful, "Failed": failed})
}

fn json_1_0(value: &Value) -> HttpResponse {
    let mut response = server::json_response(200, value);
    response.headers_mut().insert(
        "content-type",
        "application/x-amz-json-1.0"
            .parse()
            .expect("a valid header value"),
    );
    response
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
