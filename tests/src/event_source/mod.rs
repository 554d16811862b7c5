//! Lambda's SQS event source mapping for a standard queue in moto, with
//! `ReportBatchItemFailures`: pollers receive messages, invoke the function with the event
//! Lambda builds of them, delete what the function handled and leave its batch item failures
//! (all records, when the invocation errs) to come back.
//!
//! Each poller invokes one batch at a time through the function's Runtime API emulator; with
//! as many processes as pollers on that emulator (`Bed::run_fleet`), every batch in flight has
//! a process of its own, as with Lambda's concurrency. A received batch stays invisible for
//! `in_flight_secs` (a queue's visibility timeout is longer than the function's timeout, so no
//! message comes back while it is being handled); a failed record is made visible again after
//! `retry_after_secs`, a short stand-in for the rest of that timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::Value;

use crate::bed::{Bed, Running};
use crate::moto;

mod records;
mod via;

pub use records::sqs_event;
use records::{attribute, id_of, reported_failures};

/// How the mapping polls and how long it goes on.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// Batches handled at once (Lambda's `MaximumConcurrency`).
    pub pollers: usize,
    /// Records per invocation, at most 10 (`BatchSize`).
    pub batch_size: i32,
    /// Long-poll wait of each `ReceiveMessage`, whole seconds.
    pub wait_secs: i32,
    /// Visibility timeout of a received message while its batch is handled, whole seconds.
    pub in_flight_secs: i32,
    /// When a failed record becomes visible again, whole seconds.
    pub retry_after_secs: i32,
    /// The drain gives up after this (see [`Drained::timed_out`]).
    pub timeout: Duration,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            pollers: 1,
            batch_size: 10,
            wait_secs: 1,
            in_flight_secs: 120,
            retry_after_secs: 1,
            timeout: Duration::from_secs(45),
        }
    }
}

/// One record handed to the function.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub message_id: String,
    pub body: String,
    /// `ApproximateReceiveCount` (exact in moto): 1 on the first delivery.
    pub receive_count: u32,
    /// A batch item failure, or a record of an invocation that erred.
    pub failed: bool,
    /// The request id of the invocation that got it.
    pub request_id: String,
    pub at: Instant,
}

impl Delivery {
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// What a drain saw.
#[derive(Clone, Debug, Default)]
pub struct Drained {
    /// Every record of every invocation, in the order the invocations ended.
    pub deliveries: Vec<Delivery>,
    pub invocations: usize,
    /// Invocations that ended in an error (every record of theirs came back).
    pub errors: Vec<Value>,
    /// Whether the queue still held messages (or a batch was in flight) at the timeout.
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Drained {
    /// Asserts the queue emptied with no failed invocation and no batch item failure.
    pub fn assert_clean(&self) {
        assert!(!self.timed_out, "the queue never emptied: {self:?}");
        assert!(self.errors.is_empty(), "invocations failed: {:?}", self.errors);
        assert!(
            self.failed().is_empty(),
            "batch item failures: {:?}",
            self.failed()
        );
    }

    /// Deliveries of records the function reported as failed.
    pub fn failed(&self) -> Vec<&Delivery> {
        self.deliveries.iter().filter(|d| d.failed).collect()
    }

    /// Deliveries of messages delivered before.
    pub fn redelivered(&self) -> Vec<&Delivery> {
        self.deliveries.iter().filter(|d| d.receive_count > 1).collect()
    }

    /// Deliveries whose body has `"type": kind` (`check`, `list`).
    pub fn of_type(&self, kind: &str) -> Vec<&Delivery> {
        self.deliveries
            .iter()
            .filter(|d| d.json()["type"] == kind)
            .collect()
    }

    /// How many times each message was delivered.
    pub fn deliveries_per_message(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for delivery in &self.deliveries {
            *counts.entry(delivery.message_id.clone()).or_default() += 1;
        }
        counts
    }
}

/// What the pollers share.
struct Shared {
    /// Batches received and not yet settled (deleted or made visible again).
    in_flight: AtomicUsize,
    stop: AtomicBool,
    invocations: AtomicUsize,
    deliveries: Mutex<Vec<Delivery>>,
    errors: Mutex<Vec<Value>>,
}

impl Mapping {
    /// Polls `queue_url` and invokes `function` until the queue holds no message (visible,
    /// in flight or delayed) and no batch is in flight, or until [`timeout`](Self::timeout).
    /// Invocations go through [`Bed::invoke`] (their responses join the leak scan).
    pub async fn drain(&self, bed: &Bed, function: &Running, queue_url: &str) -> Drained {
        self.drain_with(moto::sqs_client().await, bed, function, queue_url)
            .await
    }

    /// [`drain`](Self::drain) with the SQS calls made by `client`.
    async fn drain_with(&self, client: Client, bed: &Bed, function: &Running, queue_url: &str) -> Drained {
        assert!((1..=10).contains(&self.batch_size), "BatchSize is 1 to 10");
        let source = Source {
            mapping: self,
            bed,
            function,
            arn: queue_arn(&client, queue_url).await,
            client,
            queue_url,
            shared: Shared {
                in_flight: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
                invocations: AtomicUsize::new(0),
                deliveries: Mutex::new(Vec::new()),
                errors: Mutex::new(Vec::new()),
            },
        };
        let started = Instant::now();
        let watching = async {
            let timed_out = loop {
                // A received batch is counted in flight before any of it is deleted, and a
                // message stays in the queue until deleted: so "none of either" (read in that
                // order) means nothing is left, nor will be. moto tells no one, so ask it.
                if source.shared.in_flight.load(Ordering::SeqCst) == 0 && source.queue_is_empty().await {
                    break false;
                }
                if started.elapsed() > self.timeout {
                    break true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            source.shared.stop.store(true, Ordering::SeqCst);
            timed_out
        };
        let pollers = (0..self.pollers.max(1)).map(|_| source.poll());
        let (timed_out, _) = tokio::join!(watching, futures_util::future::join_all(pollers));
        let Source { shared, .. } = source;
        Drained {
            deliveries: shared.deliveries.into_inner().unwrap_or_default(),
            invocations: shared.invocations.load(Ordering::SeqCst),
            errors: shared.errors.into_inner().unwrap_or_default(),
            timed_out,
            elapsed: started.elapsed(),
        }
    }
}

/// One drain: the queue, the function, and what the pollers share.
struct Source<'a> {
    mapping: &'a Mapping,
    bed: &'a Bed,
    function: &'a Running,
    client: Client,
    queue_url: &'a str,
    arn: String,
    shared: Shared,
}

impl Source<'_> {
    async fn poll(&self) {
        while !self.shared.stop.load(Ordering::SeqCst) {
            let received = self
                .client
                .receive_message()
                .queue_url(self.queue_url)
                .max_number_of_messages(self.mapping.batch_size)
                .visibility_timeout(self.mapping.in_flight_secs)
                .wait_time_seconds(self.mapping.wait_secs)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto: receive_message: {}", DisplayErrorContext(&e)));
            let messages = received.messages().to_vec();
            if !messages.is_empty() {
                self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
                self.handle(&messages).await;
                self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Invokes the function with one batch, then deletes what it handled and makes what failed
    /// visible again.
    async fn handle(&self, messages: &[Message]) {
        let invocation = self
            .bed
            .invoke(self.function, sqs_event(messages, &self.arn))
            .await;
        self.shared.invocations.fetch_add(1, Ordering::SeqCst);
        let failed = match &invocation.outcome {
            Ok(response) => reported_failures(response, messages),
            Err(error) => {
                self.shared.errors.lock().unwrap().push(error.clone());
                messages.iter().map(|m| id_of(m).to_owned()).collect()
            }
        };
        let is_failed = |m: &Message| failed.iter().any(|id| id == id_of(m));
        let (retry, done): (Vec<&Message>, Vec<&Message>) = messages.iter().partition(|m| is_failed(m));
        self.delete(&done).await;
        self.make_visible(&retry).await;
        let at = Instant::now();
        let mut deliveries = self.shared.deliveries.lock().unwrap();
        for message in messages {
            deliveries.push(Delivery {
                message_id: id_of(message).to_owned(),
                body: message.body().unwrap_or_default().to_owned(),
                receive_count: attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)
                    .parse()
                    .unwrap_or(0),
                failed: is_failed(message),
                request_id: invocation.request_id.clone(),
                at,
            });
        }
    }

    async fn delete(&self, messages: &[&Message]) {
        if messages.is_empty() {
            return;
        }
        let entries = messages.iter().enumerate().map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .expect("id and receipt handle are set")
        });
        let deleted = self
            .client
            .delete_message_batch()
            .queue_url(self.queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto: delete_message_batch: {}", DisplayErrorContext(&e)));
        assert!(
            deleted.failed().is_empty(),
            "moto: not deleted: {:?}",
            deleted.failed()
        );
    }

    async fn make_visible(&self, messages: &[&Message]) {
        if messages.is_empty() {
            return;
        }
        let entries = messages.iter().enumerate().map(|(i, m)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(format!("v{i}"))
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .visibility_timeout(self.mapping.retry_after_secs)
                .build()
                .expect("id and receipt handle are set")
        });
        let changed = self
            .client
            .change_message_visibility_batch()
            .queue_url(self.queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "moto: change_message_visibility_batch: {}",
                    DisplayErrorContext(&e)
                )
            });
        assert!(
            changed.failed().is_empty(),
            "moto: not made visible: {:?}",
            changed.failed()
        );
    }

    /// Whether the queue holds no message at all: visible, in flight or delayed.
    async fn queue_is_empty(&self) -> bool {
        let counts = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ];
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(self.queue_url)
            .set_attribute_names(Some(counts.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto: get_queue_attributes: {}", DisplayErrorContext(&e)));
        let held = attributes.attributes().cloned().unwrap_or_default();
        counts.iter().all(|name| held.get(name).is_some_and(|n| n == "0"))
    }
}

async fn queue_arn(client: &Client, queue_url: &str) -> String {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "moto: get_queue_attributes({queue_url}): {}",
                DisplayErrorContext(&e)
            )
        });
    attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_else(|| panic!("moto: {queue_url} has no QueueArn"))
}
