//! Asking connect to repair a connection: a message on its FIFO queue, the same one
//! `POST /connections` callers use, so repairs get connect's retries and dead-letter queue.
//!
//! Each grower is its own message group (repairs of different growers do not wait on each
//! other), and the deduplication id holds the run id, so a retried run does not queue twice
//! within SQS's five-minute window while the next run still can.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::sqs_batch::{BATCH_SIZE, BatchSink, Entry, SqsSink, send_with_retries};
use crate::domain::error::ConnectorError;
use crate::domain::model::ConnectRequest;
use crate::domain::ports::RepairQueue;

/// The connect function's FIFO queue.
pub(crate) struct SqsRepairQueue {
    sink: Arc<dyn BatchSink>,
}

impl SqsRepairQueue {
    pub(crate) fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            sink: Arc::new(SqsSink {
                client,
                queue_url: queue_url.into(),
                variable: "CONNECT_QUEUE_URL",
            }),
        }
    }

    /// Sends one batch (entries refused on SQS's side again); returns how many were queued.
    async fn send_chunk(&self, pending: Vec<Entry>) -> Result<usize, ConnectorError> {
        let total = pending.len();
        let given_up = send_with_retries(self.sink.as_ref(), pending).await?;
        for (entry, r, attempts) in &given_up {
            let group = entry.group_id.as_deref().unwrap_or_default();
            tracing::error!(leafUserId = group, code = %r.code, senderFault = r.sender_fault, attempts,
                "repair request not queued");
        }
        Ok(total - given_up.len())
    }
}

#[async_trait]
impl RepairQueue for SqsRepairQueue {
    async fn enqueue(&self, run_id: &str, repairs: &[ConnectRequest]) -> Result<usize, ConnectorError> {
        let mut sent = 0;
        for chunk in repairs.chunks(BATCH_SIZE) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| Entry {
                    id: i.to_string(),
                    body: serde_json::to_string(r).expect("a connect request always serialises"),
                    group_id: Some(r.leaf_user_id.to_string()),
                    dedup_id: Some(dedup_id(&r.leaf_user_id, run_id)),
                })
                .collect();
            sent += self.send_chunk(entries).await?;
        }
        Ok(sent)
    }
}

/// `<leafUserId>-<run id>`, cut to what SQS accepts (128 characters of letters, digits and punctuation).
pub(crate) fn dedup_id(leaf_user_id: &Uuid, run_id: &str) -> String {
    let run: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .collect();
    let mut id = format!("{leaf_user_id}-{run}");
    id.truncate(128);
    id
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::adapters::sqs_batch::{MAX_ATTEMPTS, Refused, SEND_BATCH};
    use crate::domain::error::{Service, UpstreamError, UpstreamKind};

    /// One scripted answer: the (entry id, sender fault) pairs SQS refuses, or a failed call.
    type Answer = Result<Vec<(&'static str, bool)>, ConnectorError>;

    /// Answers each call with the next scripted result; records what was sent.
    #[derive(Default)]
    struct ScriptedSink {
        script: Mutex<VecDeque<Answer>>,
        calls: Mutex<Vec<Vec<Entry>>>,
    }

    #[async_trait]
    impl BatchSink for ScriptedSink {
        async fn send_batch(&self, entries: &[Entry]) -> Result<Vec<Refused>, ConnectorError> {
            self.calls.lock().unwrap().push(entries.to_vec());
            let next = self.script.lock().unwrap().pop_front().unwrap_or(Ok(vec![]));
            next.map(|refused| {
                refused
                    .into_iter()
                    .map(|(id, sender_fault)| Refused {
                        id: id.into(),
                        code: "X".into(),
                        sender_fault,
                    })
                    .collect()
            })
        }
    }

    fn queue(script: Vec<Answer>) -> (SqsRepairQueue, Arc<ScriptedSink>) {
        let sink = Arc::new(ScriptedSink {
            script: Mutex::new(script.into()),
            ..Default::default()
        });
        (SqsRepairQueue { sink: sink.clone() }, sink)
    }

    fn calls(sink: &ScriptedSink) -> Vec<Vec<Entry>> {
        sink.calls.lock().unwrap().clone()
    }

    fn repairs(n: usize) -> Vec<ConnectRequest> {
        (0..n)
            .map(|_| ConnectRequest {
                leaf_user_id: Uuid::new_v4(),
                force: false,
                reason: Some("INVALID".into()),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn batches_of_ten_with_group_and_dedup_ids() {
        let (q, sink) = queue(vec![]);
        let repairs = repairs(23);
        assert_eq!(q.enqueue("run-1", &repairs).await.unwrap(), 23);
        let calls = calls(&sink);
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        let first = &calls[0][0];
        let id = repairs[0].leaf_user_id;
        assert_eq!(first.group_id, Some(id.to_string()));
        assert_eq!(first.dedup_id, Some(format!("{id}-run-1")));
        let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"leafUserId": id.to_string(), "force": false, "reason": "INVALID"})
        );
        assert!(
            calls.iter().all(|c| c
                .iter()
                .map(|e| &e.id)
                .collect::<std::collections::HashSet<_>>()
                .len()
                == c.len()),
            "ids unique per batch"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_entries_reported_failed_are_sent_again() {
        let (q, sink) = queue(vec![Ok(vec![("2", false), ("5", false)]), Ok(vec![])]);
        assert_eq!(q.enqueue("r", &repairs(7)).await.unwrap(), 7);
        let calls = calls(&sink);
        assert_eq!(calls.len(), 2);
        let mut again: Vec<&str> = calls[1].iter().map(|e| e.id.as_str()).collect();
        again.sort_unstable();
        assert_eq!(again, vec!["2", "5"]);
    }

    #[tokio::test(start_paused = true)]
    async fn sender_faults_are_not_retried_and_retries_are_bounded() {
        let (q, sink) = queue(vec![
            Ok(vec![("0", true), ("1", false)]),
            Ok(vec![("1", false)]),
            Ok(vec![("1", false)]),
        ]);
        assert_eq!(q.enqueue("r", &repairs(3)).await.unwrap(), 1);
        let calls = calls(&sink);
        assert_eq!(calls.len() as u32, MAX_ATTEMPTS);
        assert!(calls[1..].iter().all(|c| c.len() == 1 && c[0].id == "1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_is_an_error() {
        let unavailable = UpstreamError::new(Service::Sqs, SEND_BATCH, UpstreamKind::Unavailable, "x").into();
        let (q, _) = queue(vec![Err(unavailable)]);
        let err = q.enqueue("r", &repairs(2)).await.unwrap_err();
        assert!(err.is_retryable());
    }

    #[test]
    fn dedup_ids_fit_sqs_rules() {
        let id = Uuid::new_v4();
        assert_eq!(
            dedup_id(&id, "8f1b2c3d-0000-4000-8000-000000000001"),
            format!("{id}-8f1b2c3d-0000-4000-8000-000000000001")
        );
        let odd = dedup_id(&id, &format!("a b/{}", "x".repeat(300)));
        assert!(odd.len() == 128 && !odd.contains(' ') && !odd.contains('/'));
    }
}
