//! A verify run: every grower listed, checked and, when broken, sent to connect for repair.
//!
//! A run keeps counts, not per-grower results, so its memory does not grow with the number of
//! growers; the concurrency bound caps how many Leaf answers are alive at once. Repairs are
//! sent while the checks go on, so a run cut short by Lambda's timeout has still queued most.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use super::stages::{LISTED_AHEAD, list_growers, send_repairs};
use super::{ConnectionCheck, Verifier};
use crate::domain::error::ConnectorError;
use crate::domain::health::Health;
use crate::domain::model::ConnectRequest;
use crate::domain::ports::{GrowerDirectory, LatencyRecorder, REPAIRS_PER_CALL, RepairQueue};
use crate::domain::time::{Deadline, measure_upstream};

/// How one scheduled run went. `checked = healthy + unhealthy + missing + pending + errors`;
/// `disconnected` and `loginRejected` growers are left alone, not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunSummary {
    pub(crate) checked: u64,
    pub(crate) healthy: u64,
    pub(crate) unhealthy: u64,
    pub(crate) missing: u64,
    pub(crate) pending: u64,
    /// Growers whose check failed (Leaf unreachable, unknown Leaf user, out of time).
    pub(crate) errors: u64,
    pub(crate) repairs_queued: u64,
    /// Repairs the queue did not take; each is logged.
    pub(crate) repairs_failed: u64,
    /// Growers an operator disconnected.
    pub(crate) disconnected: u64,
    /// Growers whose current login Stara rejected.
    pub(crate) login_rejected: u64,
}

impl RunSummary {
    fn count(&mut self, health: Health) {
        match health {
            Health::Healthy => self.healthy += 1,
            Health::Unhealthy => self.unhealthy += 1,
            Health::Missing => self.missing += 1,
            Health::Pending => self.pending += 1,
            Health::Disconnected => self.disconnected += 1,
            Health::LoginRejected => self.login_rejected += 1,
        }
    }
}

/// The limits of one run.
#[derive(Clone, Debug)]
pub(crate) struct RunSettings {
    /// Makes the repair messages' deduplication ids unique to this run: the invocation's request id.
    pub(crate) run_id: String,
    pub(crate) concurrency: usize,
    /// Upstream time one grower's check may take.
    pub(crate) check_budget: Duration,
    /// No check starts after this; growers left over count as errors.
    pub(crate) deadline: Deadline,
}

impl Verifier {
    /// Checks every grower `directory` lists, `settings.concurrency` at a time, and queues a
    /// repair for each unhealthy or missing one when `repairs` is given. Only listing the
    /// growers can fail the run; a grower's failure is counted in `errors`.
    pub(crate) async fn run(
        &self,
        directory: &dyn GrowerDirectory,
        repairs: Option<&dyn RepairQueue>,
        settings: &RunSettings,
        latency: &mut dyn LatencyRecorder,
    ) -> Result<RunSummary, ConnectorError> {
        tracing::info!(
            concurrency = settings.concurrency,
            repair = repairs.is_some(),
            "verify run started"
        );
        // Listing, checking and queueing repairs overlap: checks start with the first page.
        let (found, growers) = mpsc::channel::<Uuid>(LISTED_AHEAD);
        let (to_queue, queued) = mpsc::channel::<ConnectRequest>(REPAIRS_PER_CALL * 4);
        let listing = list_growers(directory, found);
        let checking = self.check_all(growers, to_queue, settings, latency);
        let sending = send_repairs(repairs, queued, &settings.run_id);
        let (listed, mut summary, (repairs_queued, repairs_failed)) =
            tokio::join!(listing, checking, sending);
        let listing = listed?;
        summary.disconnected = listing.disconnected;
        summary.login_rejected = listing.login_rejected;
        summary.checked += listing.misnamed;
        summary.errors += listing.misnamed;
        summary.repairs_queued = repairs_queued;
        summary.repairs_failed = repairs_failed;
        Ok(summary)
    }

    async fn check_all(
        &self,
        growers: mpsc::Receiver<Uuid>,
        to_queue: mpsc::Sender<ConnectRequest>,
        settings: &RunSettings,
        latency: &mut dyn LatencyRecorder,
    ) -> RunSummary {
        let mut summary = RunSummary::default();
        let mut out_of_time = 0u64;
        let growers = futures_util::stream::unfold(growers, |mut growers| async move {
            growers.recv().await.map(|user| (user, growers))
        });
        let results = growers
            .map(|user| async move {
                if settings.deadline.is_past() {
                    return (user, None);
                }
                let deadline = Deadline::after(settings.check_budget).min(settings.deadline);
                let span = tracing::info_span!("verify", leafUserId = %user);
                (
                    user,
                    Some(
                        measure_upstream(self.check(&user, &deadline))
                            .instrument(span)
                            .await,
                    ),
                )
            })
            .buffer_unordered(settings.concurrency.max(1));
        let mut results = std::pin::pin!(results);
        while let Some((user, outcome)) = results.next().await {
            summary.checked += 1;
            let Some((result, upstream)) = outcome else {
                summary.errors += 1;
                out_of_time += 1;
                continue;
            };
            latency.record(upstream);
            match result {
                Ok(check) => {
                    let health = check.assessment.health;
                    summary.count(health);
                    log_check(&user, &check);
                    if let Some(reason) = check.assessment.reason {
                        let request = ConnectRequest {
                            leaf_user_id: user,
                            force: check.assessment.force,
                            reason: Some(reason),
                        };
                        // A closed channel means repairing is off: nothing to do.
                        let _ = to_queue.send(request).await;
                    }
                }
                Err(e) => {
                    summary.errors += 1;
                    tracing::warn!(leafUserId = %user, outcome = "failed", code = e.code(),
                        retryable = e.is_retryable(), error = %e, "verify failed for this grower");
                }
            }
        }
        latency.flush();
        if out_of_time > 0 {
            tracing::warn!(
                unchecked = out_of_time,
                code = "run_out_of_time",
                "the run ran out of time: growers left unchecked are counted as errors"
            );
        }
        summary
    }
}

fn log_check(user: &Uuid, check: &ConnectionCheck) {
    let a = &check.assessment;
    let status = check.credentials.as_ref().map(|c| c.status.as_str());
    let event_code = check.last_event.as_ref().and_then(|e| e.status_code);
    match a.health {
        Health::Healthy => {
            tracing::debug!(leafUserId = %user, health = a.health.as_str(), leafStatus = status,
                "connection healthy")
        }
        Health::Pending | Health::Disconnected | Health::LoginRejected => {
            tracing::info!(leafUserId = %user, health = a.health.as_str(), leafStatus = status,
                "connection left alone")
        }
        Health::Unhealthy | Health::Missing => {
            tracing::warn!(leafUserId = %user, health = a.health.as_str(), leafStatus = status,
                lastEventCode = event_code, reason = a.reason.as_deref(), force = a.force,
                "connection needs repair")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::testing::{FakeDirectory, FakeRepairQueue, FakeStates, event, run_settings, slow_leaf};

    #[tokio::test(start_paused = true)]
    async fn a_run_counts_every_kind_and_queues_repairs() {
        let leaf = slow_leaf();
        let healthy: Vec<Uuid> = (0..5).map(|_| leaf.grower(Some("OK"))).collect();
        let invalid = leaf.grower(Some("INVALID"));
        let expired = leaf.grower(Some("EXPIRED"));
        let missing = leaf.grower(None);
        let pending = leaf.grower(Some("PROCESSING"));
        let unknown_status = leaf.grower(Some("NEW_STATUS"));
        let revoked = leaf.grower(Some("OK"));
        leaf.events.lock().unwrap().insert(revoked, vec![event(401)]);
        let stranger = Uuid::new_v4();
        let failing = leaf.grower(Some("OK"));
        leaf.fail.lock().unwrap().insert(failing);

        let mut all = healthy.clone();
        all.extend([
            invalid,
            expired,
            missing,
            pending,
            unknown_status,
            revoked,
            stranger,
            failing,
        ]);
        let queue = FakeRepairQueue::default();
        let summary = Verifier::new(leaf.clone(), Arc::new(FakeStates::default()))
            .run(
                &FakeDirectory::of(all),
                Some(&queue),
                &run_settings(4),
                &mut Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            summary,
            RunSummary {
                checked: 13,
                healthy: 5,
                unhealthy: 3,
                missing: 1,
                pending: 2,
                errors: 2,
                repairs_queued: 4,
                repairs_failed: 0,
                ..RunSummary::default()
            }
        );

        let sent = queue.sent.lock().unwrap();
        let by_user: HashMap<Uuid, &ConnectRequest> = sent
            .iter()
            .map(|(run, r)| {
                assert_eq!(run, "run-1");
                (r.leaf_user_id, r)
            })
            .collect();
        assert_eq!(by_user.len(), 4);
        assert_eq!(
            (
                by_user[&invalid].reason.as_deref().unwrap(),
                by_user[&invalid].force
            ),
            ("INVALID", false)
        );
        assert_eq!(
            (
                by_user[&expired].reason.as_deref().unwrap(),
                by_user[&expired].force
            ),
            ("EXPIRED", false)
        );
        assert_eq!(
            (
                by_user[&missing].reason.as_deref().unwrap(),
                by_user[&missing].force
            ),
            ("missing", false)
        );
        assert_eq!(
            (
                by_user[&revoked].reason.as_deref().unwrap(),
                by_user[&revoked].force
            ),
            ("event_401", true)
        );
        assert!(
            !by_user.contains_key(&stranger),
            "an unknown Leaf user is an error, not a repair"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded_and_repairs_go_ten_at_a_time() {
        let leaf = slow_leaf();
        let growers: Vec<Uuid> = (0..1000)
            .map(|i| leaf.grower(if i % 4 == 0 { None } else { Some("OK") }))
            .collect();
        let queue = FakeRepairQueue::default();
        let summary = Verifier::new(leaf.clone(), Arc::new(FakeStates::default()))
            .run(
                &FakeDirectory::of(growers),
                Some(&queue),
                &run_settings(16),
                &mut Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            (
                summary.checked,
                summary.healthy,
                summary.missing,
                summary.repairs_queued
            ),
            (1000, 750, 250, 250)
        );
        assert_eq!(leaf.most_in_flight.load(Ordering::SeqCst), 16);
        assert!(queue.calls.load(Ordering::SeqCst) >= 25);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_queue_nothing_is_queued() {
        let leaf = slow_leaf();
        let growers = vec![leaf.grower(None), leaf.grower(Some("INVALID"))];
        let summary = Verifier::new(leaf, Arc::new(FakeStates::default()))
            .run(
                &FakeDirectory::of(growers),
                None,
                &run_settings(2),
                &mut Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            (
                summary.missing,
                summary.unhealthy,
                summary.repairs_queued,
                summary.repairs_failed
            ),
            (1, 1, 0, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn growers_left_when_time_runs_out_are_errors() {
        let leaf = slow_leaf();
        let growers: Vec<Uuid> = (0..10).map(|_| leaf.grower(Some("OK"))).collect();
        let settings = RunSettings {
            deadline: Deadline::after(Duration::ZERO),
            ..run_settings(2)
        };
        let summary = Verifier::new(leaf, Arc::new(FakeStates::default()))
            .run(&FakeDirectory::of(growers), None, &settings, &mut Vec::new())
            .await
            .unwrap();
        assert_eq!((summary.checked, summary.errors), (10, 10));
    }
}
