//! A scheduled run in one invocation: every grower listed, checked and, when broken, sent to
//! connect for repair, all before the invocation's deadline.
//!
//! A run keeps counts, not per-grower results, so its memory does not grow with the number of
//! growers; the concurrency bound caps how many Leaf answers are alive at once. Repairs are
//! sent while the checks go on, so a run cut short by its deadline has still queued most.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::Verifier;
use super::checks::{Job, Limits, Outcome};
use super::stages::{LISTED_AHEAD, list_growers, send_repairs};
use crate::domain::error::ConnectorError;
use crate::domain::health::Health;
use crate::domain::ports::{GrowerDirectory, LatencyRecorder, REPAIRS_PER_CALL, RepairQueue};

/// How a run, or one batch of a fanned-out run, went.
/// `checked = healthy + unhealthy + missing + pending + errors`; `disconnected` and
/// `loginRejected` growers are left alone, and `unchecked` ones were not reached in time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunSummary {
    pub(crate) checked: u64,
    pub(crate) healthy: u64,
    pub(crate) unhealthy: u64,
    pub(crate) missing: u64,
    pub(crate) pending: u64,
    /// Growers whose check failed (Leaf unreachable, unknown Leaf user, misnamed secret).
    pub(crate) errors: u64,
    /// Growers no check started for before the deadline.
    pub(crate) unchecked: u64,
    pub(crate) repairs_queued: u64,
    /// Repairs the queue did not take, or that were not sent in time; each is logged.
    pub(crate) repairs_failed: u64,
    /// Growers an operator disconnected.
    pub(crate) disconnected: u64,
    /// Growers whose current login Stara rejected.
    pub(crate) login_rejected: u64,
}

impl RunSummary {
    pub(super) fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Settled(Health::Disconnected) => self.disconnected += 1,
            Outcome::Settled(Health::LoginRejected) => self.login_rejected += 1,
            Outcome::Settled(health) => {
                self.checked += 1;
                match health {
                    Health::Healthy => self.healthy += 1,
                    Health::Unhealthy => self.unhealthy += 1,
                    Health::Missing => self.missing += 1,
                    _ => self.pending += 1,
                }
            }
            Outcome::Failed { .. } => {
                self.checked += 1;
                self.errors += 1;
            }
            Outcome::OutOfTime => self.unchecked += 1,
        }
    }
}

/// One scheduled run.
#[derive(Clone, Debug)]
pub(crate) struct RunSettings {
    /// Makes the repair messages' deduplication ids unique to this run: the invocation's request id.
    pub(crate) run_id: String,
    /// Where on the grower circle this run starts (`stages::rotation_start`).
    pub(crate) start: u64,
    pub(crate) limits: Limits,
}

/// What a scheduled run came to.
#[derive(Debug)]
pub(crate) struct RunReport {
    pub(crate) summary: RunSummary,
    /// Whether the listing reached its last page.
    pub(crate) listing_complete: bool,
    /// Why the listing failed, when it did: the counts are still those of the growers reached.
    pub(crate) failure: Option<ConnectorError>,
}

impl Verifier {
    /// Checks every grower `directory` lists, `concurrency` at a time, and queues a repair for
    /// each unhealthy or missing one when `repairs` is given. A grower's failure is counted in
    /// `errors`; a failed listing ends the run early, with the counts so far.
    pub(crate) async fn run(
        &self,
        directory: &dyn GrowerDirectory,
        repairs: Option<&dyn RepairQueue>,
        settings: &RunSettings,
        latency: &mut dyn LatencyRecorder,
    ) -> RunReport {
        let limits = &settings.limits;
        tracing::info!(
            concurrency = limits.concurrency,
            repair = repairs.is_some(),
            "verify run started"
        );
        // Listing, checking and queueing repairs overlap: checks start with the first page.
        let (found, growers) = mpsc::channel(LISTED_AHEAD);
        let (to_queue, queued) = mpsc::channel(REPAIRS_PER_CALL * 4);
        let run_id: Arc<str> = settings.run_id.as_str().into();
        let listing = list_growers(directory, found, settings.start, &limits.deadline);
        let jobs = futures_util::stream::unfold(growers, move |mut growers| {
            let run_id = run_id.clone();
            async move {
                let user = growers.recv().await?;
                Some((
                    Job {
                        user,
                        run_id,
                        origin: 0,
                    },
                    growers,
                ))
            }
        });
        let mut summary = RunSummary::default();
        let checking = async {
            self.check_jobs(jobs, &to_queue, limits, latency, |_, outcome| {
                summary.count(outcome)
            })
            .await;
            drop(to_queue);
        };
        let sending = send_repairs(repairs, queued, &limits.finish);
        let (listed, (), sent) = tokio::join!(listing, checking, sending);
        for (queued, failed) in sent.values() {
            summary.repairs_queued += queued;
            summary.repairs_failed += failed;
        }
        if summary.unchecked > 0 {
            tracing::warn!(
                unchecked = summary.unchecked,
                code = "run_out_of_time",
                "the run ran out of time: growers left unchecked are counted as unchecked"
            );
        }
        let (listing_complete, failure) = match listed {
            Ok(listing) => {
                summary.disconnected += listing.disconnected;
                summary.login_rejected += listing.login_rejected;
                summary.checked += listing.misnamed;
                summary.errors += listing.misnamed;
                (listing.complete, None)
            }
            Err(e) => (false, Some(e)),
        };
        RunReport {
            summary,
            listing_complete,
            failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::domain::model::ConnectRequest;
    use crate::domain::time::Deadline;
    use crate::testing::{
        FakeDirectory, FakeRepairQueue, FakeStates, event, limits, run_settings, slow_leaf,
    };

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
            .summary;
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
            .summary;
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
            .summary;
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
            limits: Limits {
                deadline: Deadline::after(Duration::ZERO),
                ..limits(2)
            },
            ..run_settings(2)
        };
        let summary = Verifier::new(leaf, Arc::new(FakeStates::default()))
            .run(&FakeDirectory::of(growers), None, &settings, &mut Vec::new())
            .await
            .summary;
        assert_eq!(
            (summary.checked, summary.errors, summary.unchecked),
            (0, 0, 10),
            "growers not reached are unchecked, not errors"
        );
    }
}
