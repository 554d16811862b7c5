//! The verify queue (`VERIFY_QUEUE_URL`), a standard SQS queue: where a fanned-out run puts its
//! check messages and hands its listing on.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::repair_queue::send_error;
use crate::domain::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use crate::domain::ports::{VERIFY_MESSAGES_PER_CALL, VerifyQueue};
use crate::domain::verify::VerifyMessage;

/// SQS takes at most 256 KiB in one SendMessageBatch; a full check message is about 15 KiB.
const MAX_BATCH_BYTES: usize = 240 * 1024;
/// Sends of one entry, the first included, while SQS reports it failed on its side.
const MAX_ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(100);

pub(crate) struct SqsVerifyQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsVerifyQueue {
    pub(crate) fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// One SendMessageBatch, then again the entries SQS failed on its side; `Err` names the
    /// first entry that could not be sent.
    async fn send_batch(&self, mut pending: Vec<(String, String)>) -> Result<(), ConnectorError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body)
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
                .map_err(|e| send_error("VERIFY_QUEUE_URL", e))?;
            let failed = output.failed();
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(f) = failed.iter().find(|f| f.sender_fault()) {
                return Err(ConnectorError::Configuration(format!(
                    "SQS SendMessageBatch to VERIFY_QUEUE_URL refused a message: {}",
                    f.code()
                )));
            }
            if attempt == MAX_ATTEMPTS {
                let detail = format!("{} message(s) refused: {}", failed.len(), failed[0].code());
                return Err(UpstreamError::new(
                    Service::Sqs,
                    "SendMessageBatch",
                    UpstreamKind::Unavailable,
                    detail,
                )
                .into());
            }
            tracing::warn!(
                entries = failed.len(),
                attempt,
                "SQS refused part of a batch: sending again"
            );
            pending.retain(|(id, _)| failed.iter().any(|f| f.id() == id));
            tokio::time::sleep(FIRST_PAUSE * 2u32.pow(attempt - 1)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl VerifyQueue for SqsVerifyQueue {
    async fn send(&self, messages: &[VerifyMessage]) -> Result<(), ConnectorError> {
        let mut batch: Vec<(String, String)> = Vec::with_capacity(VERIFY_MESSAGES_PER_CALL);
        let mut bytes = 0;
        for (i, message) in messages.iter().enumerate() {
            let body = serde_json::to_string(message).expect("a verify message always serialises");
            let full = batch.len() == VERIFY_MESSAGES_PER_CALL || bytes + body.len() > MAX_BATCH_BYTES;
            if full && !batch.is_empty() {
                self.send_batch(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += body.len();
            batch.push((i.to_string(), body));
        }
        if !batch.is_empty() {
            self.send_batch(batch).await?;
        }
        Ok(())
    }
}
