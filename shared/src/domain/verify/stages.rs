//! The two ends of a scheduled run that talk to AWS: listing the growers, and sending repairs.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::checks::{Repair, left_alone};
use crate::domain::error::ConnectorError;
use crate::domain::health::Health;
use crate::domain::ports::{GrowerDirectory, REPAIRS_PER_CALL, RepairQueue};
use crate::domain::time::Deadline;

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
    /// Whether every page was listed before the deadline.
    pub(super) complete: bool,
}

/// Where on a circle of `u64` a grower sits: a mix of its id's bits, so neighbours in
/// ListSecrets' (name) order land far apart.
pub(crate) fn position(id: &Uuid) -> u64 {
    let (high, low) = id.as_u64_pair();
    (high ^ low.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Where the run that starts in `unix_minute` begins on the circle. Successive minutes step by
/// the golden ratio of the circle, so consecutive runs start far apart and a run cut short
/// leaves a different part of the fleet unchecked each time.
pub(crate) fn rotation_start(unix_minute: u64) -> u64 {
    unix_minute.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Lists every grower page by page into `found`, each id once, except those whose state says
/// to leave them alone. Growers at or after `start` on the circle go first; the others (16
/// bytes each) wait for the end of the listing. Stops at `deadline` with `complete: false`.
/// A failed page fails the run (the checks already started still finish and are counted).
pub(super) async fn list_growers(
    directory: &dyn GrowerDirectory,
    found: mpsc::Sender<Uuid>,
    start: u64,
    deadline: &Deadline,
) -> Result<Listing, ConnectorError> {
    let mut listing = Listing::default();
    let started = std::time::Instant::now();
    // Ids differing only in letter case name the same grower.
    let mut seen = std::collections::HashSet::new();
    let mut held_back = Vec::new();
    let (mut pages, mut token) = (0usize, None);
    loop {
        let Ok(page) = tokio::time::timeout(deadline.remaining(), directory.page(token)).await else {
            break;
        };
        let page = page.inspect_err(|e| {
            tracing::error!(code = e.code(), retryable = e.is_retryable(), error = %e, pages,
                "listing the growers failed");
        })?;
        pages += 1;
        for name in page.misnamed {
            listing.misnamed += 1;
            warn_misnamed(&name);
        }
        for grower in page.growers {
            if !seen.insert(grower.id) {
                continue;
            }
            match left_alone(&grower.state) {
                Some(Health::Disconnected) => listing.disconnected += 1,
                Some(_) => listing.login_rejected += 1,
                None if position(&grower.id) < start => held_back.push(grower.id),
                None if found.send(grower.id).await.is_err() => return Ok(listing),
                None => {}
            }
        }
        token = page.next;
        if token.is_none() {
            listing.complete = true;
            break;
        }
    }
    for id in held_back {
        if found.send(id).await.is_err() {
            break;
        }
    }
    tracing::info!(
        growers = seen.len(),
        pages,
        complete = listing.complete,
        listMs = started.elapsed().as_millis() as u64,
        "growers listed"
    );
    if !listing.complete {
        tracing::warn!(
            pages,
            code = "listing_out_of_time",
            "the listing ran out of time: growers after the last page are not in this run"
        );
    }
    Ok(listing)
}

pub(super) fn warn_misnamed(name: &str) {
    tracing::warn!(
        secretId = name,
        code = "grower_secret_misnamed",
        "secret under the grower prefix does not end in a lower-case Leaf user id: not checked"
    );
}

/// What the repair sends came to, by run: (queued, failed).
pub(super) type Sent = BTreeMap<Arc<str>, (u64, u64)>;

/// Sends the repairs the checks produce, up to ten per call, while the checks go on, and none
/// after `finish`. Without a queue, the repairs are dropped.
pub(super) async fn send_repairs(
    queue: Option<&dyn RepairQueue>,
    mut queued: mpsc::Receiver<Repair>,
    finish: &Deadline,
) -> Sent {
    let mut sent = Sent::new();
    let Some(queue) = queue else {
        queued.close();
        return sent;
    };
    let mut chunk = Vec::with_capacity(REPAIRS_PER_CALL);
    let mut broken: Option<ConnectorError> = None;
    while queued.recv_many(&mut chunk, REPAIRS_PER_CALL).await > 0 {
        // A chunk mixes runs only in a batch of check messages from two runs.
        let mut by_run: BTreeMap<Arc<str>, Vec<_>> = BTreeMap::new();
        for (run, request) in chunk.drain(..) {
            by_run.entry(run).or_default().push(request);
        }
        for (run, batch) in by_run {
            let n = batch.len() as u64;
            let counts = sent.entry(run.clone()).or_default();
            if broken.is_some() || finish.is_past() {
                counts.1 += n;
                continue;
            }
            let call = tokio::time::timeout(finish.remaining(), queue.enqueue(&run, &batch)).await;
            match call {
                Ok(Ok(accepted)) => {
                    counts.0 += accepted as u64;
                    counts.1 += n - accepted as u64;
                }
                Ok(Err(e)) => {
                    counts.1 += n;
                    tracing::error!(code = e.code(), retryable = e.is_retryable(), error = %e, repairs = n,
                        "repair requests not queued");
                    // A deployment problem does not fix itself within the run: stop calling.
                    if !e.is_retryable() {
                        broken = Some(e);
                    }
                }
                Err(_) => {
                    counts.1 += n;
                    tracing::error!(
                        repairs = n,
                        code = "out_of_time",
                        "repair requests not queued in time"
                    );
                }
            }
        }
    }
    if let Some(e) = broken {
        let failed: u64 = sent.values().map(|c| c.1).sum();
        tracing::error!(code = e.code(), failed, "repairs stopped for the rest of the run");
    }
    sent
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
            .summary;
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
            .failure
            .unwrap();
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
            .summary;
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

    #[tokio::test]
    async fn each_start_checks_its_part_of_the_circle_first() {
        let growers: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
        let directory = FakeDirectory::of(growers.clone());
        let order = |start: u64| {
            let directory = &directory;
            async move {
                let (found, mut rx) = mpsc::channel(500);
                let far = Deadline::after(std::time::Duration::from_secs(60));
                let listing = list_growers(directory, found, start, &far).await.unwrap();
                assert!(listing.complete);
                let mut order = Vec::new();
                while let Some(id) = rx.recv().await {
                    order.push(id);
                }
                order
            }
        };
        assert_eq!(order(0).await, growers, "start 0 keeps the listing's order");
        let start = rotation_start(29_000_000);
        let rotated = order(start).await;
        assert_eq!(rotated.len(), 200, "everyone still comes, once");
        let first_behind = rotated.iter().position(|id| position(id) < start).unwrap();
        assert!(rotated[..first_behind].iter().all(|id| position(id) >= start));
        assert!(rotated[first_behind..].iter().all(|id| position(id) < start));
        assert_ne!(
            rotation_start(29_000_000) >> 60,
            rotation_start(29_000_001) >> 60,
            "consecutive minutes start in different sixteenths of the circle"
        );
    }

    #[tokio::test]
    async fn no_repair_is_sent_after_the_finish() {
        let queue = FakeRepairQueue::default();
        let (tx, rx) = mpsc::channel(10);
        for _ in 0..3 {
            let request = crate::domain::model::ConnectRequest {
                leaf_user_id: Uuid::new_v4(),
                force: false,
                reason: Some("missing".into()),
            };
            tx.send((Arc::from("run-1"), request)).await.unwrap();
        }
        drop(tx);
        let finished = Deadline::after(std::time::Duration::ZERO);
        let sent = send_repairs(Some(&queue), rx, &finished).await;
        assert_eq!(sent[&Arc::from("run-1")], (0, 3));
        assert_eq!(queue.calls.load(Ordering::SeqCst), 0);
    }
}
