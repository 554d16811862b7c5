//! The two ends of a verify run that talk to AWS: listing the growers, and sending repairs.

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::error::ConnectorError;
use crate::domain::model::ConnectRequest;
use crate::domain::ports::{GrowerDirectory, REPAIRS_PER_CALL, RepairQueue};

/// How many listed growers may wait for a check: a few pages, so memory stays flat.
pub(super) const LISTED_AHEAD: usize = 500;

/// Lists every grower page by page into `found`, each id once. A failed page fails the run
/// (the checks already started still finish and are counted).
pub(super) async fn list_growers(
    directory: &dyn GrowerDirectory,
    found: mpsc::Sender<Uuid>,
) -> Result<(), ConnectorError> {
    let started = std::time::Instant::now();
    // Ids differing only in letter case name the same grower.
    let mut seen = std::collections::HashSet::new();
    let (mut pages, mut token) = (0usize, None);
    loop {
        let page = directory.page(token).await.inspect_err(|e| {
            tracing::error!(code = e.code(), retryable = e.is_retryable(), error = %e, pages,
                "listing the growers failed");
        })?;
        pages += 1;
        for id in page.ids {
            if seen.insert(id) && found.send(id).await.is_err() {
                return Ok(());
            }
        }
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    tracing::info!(
        growers = seen.len(),
        pages,
        listMs = started.elapsed().as_millis() as u64,
        "growers listed"
    );
    Ok(())
}

/// Sends the repairs the checks produce, up to ten per call, while the checks go on. Without
/// a queue, the repairs are dropped. Returns (queued, failed).
pub(super) async fn send_repairs(
    queue: Option<&dyn RepairQueue>,
    mut queued: mpsc::Receiver<ConnectRequest>,
    run_id: &str,
) -> (u64, u64) {
    let Some(queue) = queue else {
        queued.close();
        return (0, 0);
    };
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(REPAIRS_PER_CALL);
    let mut broken: Option<ConnectorError> = None;
    while queued.recv_many(&mut batch, REPAIRS_PER_CALL).await > 0 {
        let n = batch.len() as u64;
        if broken.is_some() {
            failed += n;
        } else {
            match queue.enqueue(run_id, &batch).await {
                Ok(accepted) => {
                    sent += accepted as u64;
                    failed += n - accepted as u64;
                }
                Err(e) => {
                    failed += n;
                    tracing::error!(code = e.code(), retryable = e.is_retryable(), error = %e, repairs = n,
                        "repair requests not queued");
                    // A deployment problem does not fix itself within the run: stop calling.
                    if !e.is_retryable() {
                        broken = Some(e);
                    }
                }
            }
        }
        batch.clear();
    }
    if let Some(e) = broken {
        tracing::error!(code = e.code(), failed, "repairs stopped for the rest of the run");
    }
    (sent, failed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::domain::error::{Service, UpstreamError, UpstreamKind};
    use crate::domain::ports::GrowerPage;
    use crate::domain::time::Deadline;
    use crate::domain::verify::{RunSettings, Verifier};
    use crate::testing::{FakeDirectory, FakeLeaf, FakeRepairQueue};

    fn settings(concurrency: usize) -> RunSettings {
        RunSettings {
            run_id: "run-1".into(),
            concurrency,
            check_budget: Duration::from_secs(5),
            deadline: Deadline::after(Duration::from_secs(3600)),
        }
    }

    fn leaf() -> Arc<FakeLeaf> {
        Arc::new(FakeLeaf::with_latency(Duration::from_millis(20)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_queue_is_counted_and_not_called_again() {
        let leaf = leaf();
        let growers: Vec<Uuid> = (0..30).map(|_| leaf.grower(None)).collect();
        let queue = FakeRepairQueue::default();
        *queue.fail.lock().unwrap() = Some(ConnectorError::Configuration("SQS: AccessDenied".into()));
        let summary = Verifier::new(leaf)
            .run(
                &FakeDirectory(growers),
                Some(&queue),
                &settings(30),
                &mut Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            (
                summary.missing,
                summary.repairs_queued,
                summary.repairs_failed,
                summary.errors
            ),
            (30, 0, 30, 0)
        );
        assert_eq!(queue.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_listing_failure_fails_the_run() {
        struct Down;
        #[async_trait]
        impl GrowerDirectory for Down {
            async fn page(&self, _: Option<String>) -> Result<GrowerPage, ConnectorError> {
                Err(UpstreamError::new(
                    Service::SecretsManager,
                    "ListSecrets",
                    UpstreamKind::Unavailable,
                    "x",
                )
                .into())
            }
        }
        let err = Verifier::new(leaf())
            .run(&Down, None, &settings(1), &mut Vec::new())
            .await
            .unwrap_err();
        assert!(err.is_retryable());
    }
}
