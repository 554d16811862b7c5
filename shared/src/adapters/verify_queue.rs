//! The verify queue (`VERIFY_QUEUE_URL`), a standard SQS queue: where a fanned-out run puts its
//! check messages and hands its listing on.

use async_trait::async_trait;

use super::sqs_batch::{BATCH_SIZE, Entry, SEND_BATCH, SqsSink, send_with_retries};
use crate::domain::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use crate::domain::ports::VerifyQueue;
use crate::domain::verify::VerifyMessage;

/// SQS takes at most 256 KiB in one SendMessageBatch; a full check message is about 15 KiB.
const MAX_BATCH_BYTES: usize = 240 * 1024;

pub(crate) struct SqsVerifyQueue {
    sink: SqsSink,
}

impl SqsVerifyQueue {
    pub(crate) fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            sink: SqsSink {
                client,
                queue_url: queue_url.into(),
                variable: "VERIFY_QUEUE_URL",
            },
        }
    }

    /// One SendMessageBatch (entries refused on SQS's side again); `Err` when any message
    /// could not be sent, naming the first.
    async fn send_batch(&self, entries: Vec<Entry>) -> Result<(), ConnectorError> {
        let given_up = send_with_retries(&self.sink, entries).await?;
        let Some((_, first, _)) = given_up.first() else {
            return Ok(());
        };
        if let Some((_, fault, _)) = given_up.iter().find(|(_, r, _)| r.sender_fault) {
            return Err(ConnectorError::Configuration(format!(
                "SQS {SEND_BATCH} to VERIFY_QUEUE_URL refused a message: {}",
                fault.code
            )));
        }
        let detail = format!("{} message(s) refused: {}", given_up.len(), first.code);
        Err(UpstreamError::new(Service::Sqs, SEND_BATCH, UpstreamKind::Unavailable, detail).into())
    }
}

#[async_trait]
impl VerifyQueue for SqsVerifyQueue {
    async fn send(&self, messages: &[VerifyMessage]) -> Result<(), ConnectorError> {
        let mut batch: Vec<Entry> = Vec::with_capacity(BATCH_SIZE);
        let mut bytes = 0;
        for (i, message) in messages.iter().enumerate() {
            let body = serde_json::to_string(message).expect("a verify message always serialises");
            let full = batch.len() == BATCH_SIZE || bytes + body.len() > MAX_BATCH_BYTES;
            if full && !batch.is_empty() {
                self.send_batch(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += body.len();
            batch.push(Entry {
                id: i.to_string(),
                body,
                group_id: None,
                dedup_id: None,
            });
        }
        if !batch.is_empty() {
            self.send_batch(batch).await?;
        }
        Ok(())
    }
}
