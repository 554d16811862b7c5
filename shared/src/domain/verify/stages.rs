//! The two ends of a verify run that talk to AWS: listing the growers, and sending repairs.

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::error::ConnectorError;
use crate::domain::model::ConnectRequest;
use crate::domain::ports::{GrowerDirectory, REPAIRS_PER_CALL, RepairQueue};

/// How many listed growers may wait for a check: a few pages, so memory stays flat.
pub(super) const LISTED_AHEAD: usize = 500;

/// What the listing settled without a check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Listing {
    /// Growers an operator disconnected: left alone.
    pub(super) disconnected: u64,
    /// Growers whose current login Stara rejected: left alone until the secret changes.
    pub(super) login_rejected: u64,
    /// Secrets under the prefix whose name is no lower-case Leaf user id: each one an error.
    pub(super) misnamed: u64,
}

/// Lists every grower page by page into `found`, each id once, except those whose state says
/// to leave them alone. A failed page fails the run (the checks already started still finish
/// and are counted).
pub(super) async fn list_growers(
    directory: &dyn GrowerDirectory,
    found: mpsc::Sender<Uuid>,
) -> Result<Listing, ConnectorError> {
    let mut listing = Listing::default();
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
        for name in page.misnamed {
            listing.misnamed += 1;
            tracing::warn!(
                secretId = name,
                code = "grower_secret_misnamed",
                "secret under the grower prefix does not end in a lower-case Leaf user id: not checked"
            );
        }
        for grower in page.growers {
            if !seen.insert(grower.id) {
                continue;
            }
            if grower.state.disconnected {
                listing.disconnected += 1;
                tracing::debug!(leafUserId = %grower.id, health = "disconnected", "left alone");
            } else if grower.state.login_rejected() {
                listing.login_rejected += 1;
                tracing::debug!(leafUserId = %grower.id, health = "login_rejected", "left alone");
            } else if found.send(grower.id).await.is_err() {
                return Ok(listing);
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
    Ok(listing)
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

    use async_trait::async_trait;

    use super::*;
    use crate::domain::error::{Service, UpstreamError, UpstreamKind};
    use crate::domain::ports::GrowerPage;
    use crate::domain::verify::Verifier;
    use crate::testing::{FakeDirectory, FakeRepairQueue, FakeStates, run_settings, slow_leaf};

    #[tokio::test(start_paused = true)]
    async fn a_broken_queue_is_counted_and_not_called_again() {
        let leaf = slow_leaf();
        let growers: Vec<Uuid> = (0..30).map(|_| leaf.grower(None)).collect();
        let queue = FakeRepairQueue::default();
        *queue.fail.lock().unwrap() = Some(ConnectorError::Configuration("SQS: AccessDenied".into()));
        let summary = Verifier::new(leaf, Arc::new(FakeStates::default()))
            .run(
                &FakeDirectory::of(growers),
                Some(&queue),
                &run_settings(30),
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
        let err = Verifier::new(slow_leaf(), Arc::new(FakeStates::default()))
            .run(&Down, None, &run_settings(1), &mut Vec::new())
            .await
            .unwrap_err();
        assert!(err.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn what_people_did_is_left_alone_and_misnamed_secrets_are_errors() {
        use crate::domain::model::GrowerState;
        let leaf = slow_leaf();
        let disconnected = leaf.grower(Some("INVALID"));
        let rejected = leaf.grower(None);
        let rejected_then_changed = leaf.grower(None);
        let state = |disconnected: bool, rejected: Option<&str>, current: &str| GrowerState {
            disconnected,
            rejected_version: rejected.map(str::to_owned),
            current_version: Some(current.to_owned()),
            credentials_id: None,
        };
        let directory = FakeDirectory {
            growers: vec![disconnected, rejected, rejected_then_changed],
            states: [
                (disconnected, state(true, None, "v1")),
                (rejected, state(false, Some("v1"), "v1")),
                (rejected_then_changed, state(false, Some("v1"), "v2")),
            ]
            .into(),
            misnamed: vec!["stara-connect/growers/8C2F7E1A-4B3D-4E5F-9A6B-7C8D9E0F1A2B".into()],
            ..FakeDirectory::default()
        };
        let queue = FakeRepairQueue::default();
        let summary = Verifier::new(leaf.clone(), Arc::new(FakeStates::default()))
            .run(&directory, Some(&queue), &run_settings(4), &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(
            (
                summary.disconnected,
                summary.login_rejected,
                summary.checked,
                summary.missing,
                summary.errors
            ),
            (1, 1, 2, 1, 1)
        );
        let sent: Vec<_> = queue
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.leaf_user_id)
            .collect();
        assert_eq!(
            sent,
            vec![rejected_then_changed],
            "only the grower whose login changed is repaired"
        );
        assert_eq!(
            *leaf.gets.lock().unwrap(),
            vec![rejected_then_changed],
            "the others are not even checked"
        );
    }
}
