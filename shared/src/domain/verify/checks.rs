//! Checking many growers at once, for a scheduled run and for a batch of check messages alike:
//! bounded concurrency, a deadline after which no check starts, repairs sent as checks end.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use super::{ConnectionCheck, Verifier};
use crate::domain::error::{ConnectorError, Fault};
use crate::domain::health::Health;
use crate::domain::model::{ConnectRequest, GrowerState};
use crate::domain::time::{Deadline, measure_upstream};

/// How many checks, and for how long.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) concurrency: usize,
    /// Upstream time one grower's check may take.
    pub(crate) check_budget: Duration,
    /// No check starts after this; growers left over are `unchecked`.
    pub(crate) deadline: Deadline,
    /// No repair or queue message is sent after this (a little after `deadline`).
    pub(crate) finish: Deadline,
}

/// One grower to check, the run it belongs to, and which part of the work asked for it.
#[derive(Clone, Debug)]
pub(super) struct Job {
    pub(super) user: Uuid,
    pub(super) run_id: Arc<str>,
    pub(super) origin: usize,
}

/// What came of one grower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Checked (or left alone, for what people did): how it stands.
    Settled(Health),
    /// The check failed; `transient` when the same check later can succeed.
    Failed { transient: bool },
    /// No check started before the deadline.
    OutOfTime,
}

impl Outcome {
    /// Whether the work that asked for this grower should be tried again.
    pub(super) fn wants_retry(self) -> bool {
        matches!(self, Self::Failed { transient: true } | Self::OutOfTime)
    }
}

/// A repair to queue, with the run whose deduplication scope it belongs to.
pub(super) type Repair = (Arc<str>, ConnectRequest);

/// What people did that a run must respect: an operator's disconnect, a login Stara rejected
/// that is still current. Such growers are counted, not checked.
pub(super) fn left_alone(state: &GrowerState) -> Option<Health> {
    if state.disconnected {
        Some(Health::Disconnected)
    } else if state.login_rejected() {
        Some(Health::LoginRejected)
    } else {
        None
    }
}

impl Verifier {
    /// Checks every job, `limits.concurrency` at a time, hands each outcome to `counted`, and
    /// puts a repair on `to_queue` for each connection that needs one.
    pub(super) async fn check_jobs(
        &self,
        jobs: impl Stream<Item = Job>,
        to_queue: &mpsc::Sender<Repair>,
        limits: &Limits,
        latency: &mut dyn crate::domain::ports::LatencyRecorder,
        mut counted: impl FnMut(&Job, Outcome),
    ) {
        let results = jobs
            .map(|job| async move {
                if limits.deadline.is_past() {
                    return (job, None);
                }
                let deadline = Deadline::after(limits.check_budget).min(limits.deadline);
                let span = tracing::info_span!("verify", leafUserId = %job.user);
                let checked = measure_upstream(self.check(&job.user, &deadline))
                    .instrument(span)
                    .await;
                (job, Some(checked))
            })
            .buffer_unordered(limits.concurrency.max(1));
        let mut results = std::pin::pin!(results);
        while let Some((job, checked)) = results.next().await {
            let outcome = match checked {
                None => Outcome::OutOfTime,
                // A check the run's deadline cut short was not made, rather than failed.
                Some((Err(e), _)) if e.is_retryable() && limits.deadline.is_past() => {
                    let code = e.code();
                    tracing::debug!(leafUserId = %job.user, code, "check cut short by the run's end");
                    Outcome::OutOfTime
                }
                Some((result, upstream)) => {
                    latency.record(upstream);
                    self.settle(&job, result, to_queue).await
                }
            };
            counted(&job, outcome);
        }
        latency.flush();
    }

    async fn settle(
        &self,
        job: &Job,
        result: Result<ConnectionCheck, ConnectorError>,
        to_queue: &mpsc::Sender<Repair>,
    ) -> Outcome {
        match result {
            Ok(check) => {
                log_check(&job.user, &check);
                let health = check.assessment.health;
                if let Some(reason) = check.assessment.reason {
                    let request = ConnectRequest {
                        leaf_user_id: job.user,
                        force: check.assessment.force,
                        reason: Some(reason),
                    };
                    // A closed channel means repairing is off: nothing to do.
                    let _ = to_queue.send((job.run_id.clone(), request)).await;
                }
                Outcome::Settled(health)
            }
            Err(e) => {
                // A configuration error is fixed by an operator, not by time: still worth
                // another delivery (and the dead-letter queue's alarm) rather than a lost check.
                let transient = e.is_retryable() || e.fault() == Fault::Configuration;
                tracing::warn!(leafUserId = %job.user, outcome = "failed", code = e.code(),
                    retryable = transient, error = %e, "verify failed for this grower");
                Outcome::Failed { transient }
            }
        }
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
