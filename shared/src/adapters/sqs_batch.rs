//! SendMessageBatch for both queues verify sends to: one call of at most ten entries, and the
//! entries SQS refused on its side sent again, with a pause, a bounded number of times.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::domain::error::{ConnectorError, Service, UpstreamError, UpstreamKind};

/// SendMessageBatch takes at most ten entries.
pub(super) const BATCH_SIZE: usize = 10;
/// Sends of one entry, the first included, while SQS reports it failed on its side.
pub(super) const MAX_ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(100);
pub(super) const SEND_BATCH: &str = "SendMessageBatch";

/// One entry as sent; `id` is unique within its batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) id: String,
    pub(super) body: String,
    /// FIFO queues only: the message group and the deduplication id.
    pub(super) group_id: Option<String>,
    pub(super) dedup_id: Option<String>,
}

/// An entry SQS did not take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Refused {
    pub(super) id: String,
    pub(super) code: String,
    /// The entry itself is wrong: sending it again cannot help.
    pub(super) sender_fault: bool,
}

/// One SendMessageBatch call, behind a seam so the retry rules can be tested without SQS.
#[async_trait]
pub(super) trait BatchSink: Send + Sync {
    async fn send_batch(&self, entries: &[Entry]) -> Result<Vec<Refused>, ConnectorError>;
}

/// A queue, and the variable that names it (for errors).
pub(super) struct SqsSink {
    pub(super) client: aws_sdk_sqs::Client,
    pub(super) queue_url: String,
    pub(super) variable: &'static str,
}

#[async_trait]
impl BatchSink for SqsSink {
    async fn send_batch(&self, entries: &[Entry]) -> Result<Vec<Refused>, ConnectorError> {
        let entries: Vec<SendMessageBatchRequestEntry> = entries
            .iter()
            .map(|e| {
                SendMessageBatchRequestEntry::builder()
                    .id(&e.id)
                    .message_body(&e.body)
                    .set_message_group_id(e.group_id.clone())
                    .set_message_deduplication_id(e.dedup_id.clone())
                    .build()
                    .expect("id and body are always set")
            })
            .collect();
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| send_error(self.variable, e))?;
        Ok(output
            .failed()
            .iter()
            .map(|f| Refused {
                id: f.id().to_owned(),
                code: f.code().to_owned(),
                sender_fault: f.sender_fault(),
            })
            .collect())
    }
}

/// A failed SendMessageBatch to the queue `variable` names: a configuration error when the
/// queue is missing or forbidden, else a transient one.
fn send_error<E: ProvideErrorMetadata, R>(variable: &str, e: SdkError<E, R>) -> ConnectorError {
    let code = e.code().unwrap_or("no answer").to_owned();
    match code.as_str() {
        "AccessDenied"
        | "AccessDeniedException"
        | "AWS.SimpleQueueService.NonExistentQueue"
        | "QueueDoesNotExist"
        | "InvalidAddress" => {
            ConnectorError::Configuration(format!("SQS {SEND_BATCH} to {variable}: {code}"))
        }
        _ if matches!(e, SdkError::TimeoutError(_)) => UpstreamError::new(
            Service::Sqs,
            SEND_BATCH,
            UpstreamKind::Timeout,
            "no answer in time",
        )
        .into(),
        _ => UpstreamError::new(Service::Sqs, SEND_BATCH, UpstreamKind::Unavailable, code).into(),
    }
}

/// An entry given up: what SQS said, and after how many sends.
pub(super) type GivenUp = (Entry, Refused, u32);

/// Sends one batch, then again only the entries SQS reported failed on its side, until they
/// are sent or `MAX_ATTEMPTS` is reached. Returns the entries given up: a sender fault at once,
/// others after the last attempt. `Err` when a whole call failed.
pub(super) async fn send_with_retries(
    sink: &dyn BatchSink,
    mut pending: Vec<Entry>,
) -> Result<Vec<GivenUp>, ConnectorError> {
    let mut given_up = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let refused = sink.send_batch(&pending).await?;
        let mut retry = Vec::new();
        for r in refused {
            let Some(at) = pending.iter().position(|e| e.id == r.id) else {
                continue;
            };
            let entry = pending.swap_remove(at);
            if r.sender_fault || attempt == MAX_ATTEMPTS {
                given_up.push((entry, r, attempt));
            } else {
                retry.push(entry);
            }
        }
        if retry.is_empty() {
            break;
        }
        tracing::warn!(
            entries = retry.len(),
            attempt,
            "SQS refused part of a batch: sending those entries again"
        );
        tokio::time::sleep(FIRST_PAUSE * 2u32.pow(attempt - 1)).await;
        pending = retry;
    }
    Ok(given_up)
}
