//! The verify workflow: how one grower's connection stands, and a run over every grower that
//! asks connect to repair what broke.
//!
//! A run keeps counts, not per-grower results, so its memory does not grow with the number of
//! growers; the concurrency bound caps how many Leaf answers are alive at once. Repairs are
//! sent while the checks go on, so a run cut short by Lambda's timeout has still queued most.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use crate::directory::GrowerDirectory;
use crate::error::ConnectorError;
use crate::health::{self, Assessment, Health};
use crate::http::{Deadline, measure_upstream};
use crate::leaf::{CredentialEvent, LeafApi, LeafCredentials};
use crate::metrics::LatencySamples;
use crate::repair_queue::{BATCH_SIZE, RepairQueue, RepairRequest};

/// What verify found for one grower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionCheck {
    pub assessment: Assessment,
    /// What Leaf holds, without tokens; `None` when the connection is missing.
    pub credentials: Option<LeafCredentials>,
    /// The newest provider event, when it was looked at and there is one.
    pub last_event: Option<CredentialEvent>,
}

/// How one scheduled run went. `checked = healthy + unhealthy + missing + pending + errors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub checked: u64,
    pub healthy: u64,
    pub unhealthy: u64,
    pub missing: u64,
    pub pending: u64,
    /// Growers whose check failed (Leaf unreachable, unknown Leaf user, out of time).
    pub errors: u64,
    pub repairs_queued: u64,
    /// Repairs the queue did not take; each is logged.
    pub repairs_failed: u64,
}

impl RunSummary {
    fn count(&mut self, health: Health) {
        match health {
            Health::Healthy => self.healthy += 1,
            Health::Unhealthy => self.unhealthy += 1,
            Health::Missing => self.missing += 1,
            Health::Pending => self.pending += 1,
        }
    }
}

/// The limits of one run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// Makes the repair messages' deduplication ids unique to this run: the invocation's request id.
    pub run_id: String,
    pub concurrency: usize,
    /// Upstream time one grower's check may take.
    pub check_budget: Duration,
    /// No check starts after this; growers left over count as errors.
    pub deadline: Deadline,
}

pub struct Verifier {
    leaf: Arc<dyn LeafApi>,
}

impl Verifier {
    pub fn new(leaf: Arc<dyn LeafApi>) -> Self {
        Self { leaf }
    }

    /// How one grower's connection stands: the credentials and their events, asked for at the
    /// same time, so a check costs one upstream round trip rather than two.
    pub async fn check(&self, user: &Uuid, deadline: &Deadline) -> Result<ConnectionCheck, ConnectorError> {
        let (held, events) = tokio::join!(
            self.leaf.get_credentials(user, deadline),
            self.leaf.events(user, deadline)
        );
        let Some(held) = held? else {
            // Leaf answers 404 both for "no credentials" and "no such user": ask which.
            if !self.leaf.user_exists(user, deadline).await? {
                return Err(ConnectorError::LeafUserNotFound);
            }
            return Ok(ConnectionCheck {
                assessment: health::assess(None, None),
                credentials: None,
                last_event: None,
            });
        };
        // The events only refine an `OK`; any other status decides alone, even if they failed.
        let last_event = match events {
            Ok(events) => health::newest_event(&events.unwrap_or_default()).cloned(),
            Err(_) if health::status_is_decisive(&held.status) => None,
            Err(e) => return Err(e),
        };
        Ok(ConnectionCheck {
            assessment: health::assess(Some(&held), last_event.as_ref()),
            credentials: Some(held),
            last_event,
        })
    }

    /// Checks every grower `directory` lists, `settings.concurrency` at a time, and queues a
    /// repair for each unhealthy or missing one when `repairs` is given. Only listing the
    /// growers can fail the run; a grower's failure is counted in `errors`.
    pub async fn run(
        &self,
        directory: &dyn GrowerDirectory,
        repairs: Option<&dyn RepairQueue>,
        settings: &RunSettings,
    ) -> Result<RunSummary, ConnectorError> {
        tracing::info!(
            concurrency = settings.concurrency,
            repair = repairs.is_some(),
            "verify run started"
        );
        // Listing, checking and queueing repairs overlap: checks start with the first page.
        let (found, growers) = mpsc::channel::<Uuid>(LISTED_AHEAD);
        let (to_queue, queued) = mpsc::channel::<RepairRequest>(BATCH_SIZE * 4);
        let listing = list_growers(directory, found);
        let checking = self.check_all(growers, to_queue, settings);
        let sending = send_repairs(repairs, queued, &settings.run_id);
        let (listed, mut summary, (repairs_queued, repairs_failed)) =
            tokio::join!(listing, checking, sending);
        listed?;
        summary.repairs_queued = repairs_queued;
        summary.repairs_failed = repairs_failed;
        Ok(summary)
    }

    async fn check_all(
        &self,
        growers: mpsc::Receiver<Uuid>,
        to_queue: mpsc::Sender<RepairRequest>,
        settings: &RunSettings,
    ) -> RunSummary {
        let mut summary = RunSummary::default();
        let mut latency = LatencySamples::new("verify");
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
            latency.push(upstream);
            match result {
                Ok(check) => {
                    let health = check.assessment.health;
                    summary.count(health);
                    log_check(&user, &check);
                    if let Some(reason) = check.assessment.reason {
                        let request = RepairRequest {
                            leaf_user_id: user,
                            force: check.assessment.force,
                            reason,
                        };
                        // A closed channel means repairing is off: nothing to do.
                        let _ = to_queue.send(request).await;
                    }
                }
                Err(e) => {
                    summary.errors += 1;
                    tracing::warn!(leafUserId = %user, outcome = "failed", code = e.code(), retryable = e.is_retryable(), error = %e, "verify failed for this grower");
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

/// How many listed growers may wait for a check: a few pages, so memory stays flat.
const LISTED_AHEAD: usize = 500;

/// Lists every grower page by page into `found`, each id once. A failed page fails the run
/// (the checks already started still finish and are counted).
async fn list_growers(
    directory: &dyn GrowerDirectory,
    found: mpsc::Sender<Uuid>,
) -> Result<(), ConnectorError> {
    let started = std::time::Instant::now();
    // Ids differing only in letter case name the same grower.
    let mut seen = std::collections::HashSet::new();
    let (mut pages, mut token) = (0usize, None);
    loop {
        let page = directory.page(token).await.inspect_err(|e| {
            tracing::error!(code = e.code(), retryable = e.is_retryable(), error = %e, pages, "listing the growers failed");
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

fn log_check(user: &Uuid, check: &ConnectionCheck) {
    let a = &check.assessment;
    let status = check.credentials.as_ref().map(|c| c.status.as_str());
    let event_code = check.last_event.as_ref().and_then(|e| e.status_code);
    match a.health {
        Health::Healthy => {
            tracing::debug!(leafUserId = %user, health = a.health.as_str(), leafStatus = status, "connection healthy")
        }
        Health::Pending => {
            tracing::info!(leafUserId = %user, health = a.health.as_str(), leafStatus = status, "connection pending: left alone")
        }
        Health::Unhealthy | Health::Missing => {
            tracing::warn!(leafUserId = %user, health = a.health.as_str(), leafStatus = status, lastEventCode = event_code, reason = a.reason.as_deref(), force = a.force, "connection needs repair")
        }
    }
}

/// Sends the repairs the checks produce, up to ten per call, while the checks go on. Without
/// a queue, the repairs are dropped. Returns (queued, failed).
async fn send_repairs(
    queue: Option<&dyn RepairQueue>,
    mut queued: mpsc::Receiver<RepairRequest>,
    run_id: &str,
) -> (u64, u64) {
    let Some(queue) = queue else {
        queued.close();
        return (0, 0);
    };
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let mut broken: Option<ConnectorError> = None;
    while queued.recv_many(&mut batch, BATCH_SIZE).await > 0 {
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
                    tracing::error!(code = e.code(), retryable = e.is_retryable(), error = %e, repairs = n, "repair requests not queued");
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
pub(crate) mod fakes {
    //! In-memory Leaf, grower list and repair queue for verify's tests.

    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::directory::GrowerPage;
    use crate::error::{Service, UpstreamError, UpstreamKind};
    use crate::leaf::Created;
    use crate::stara::StaraTokens;

    /// Leaf as a map: users, their credentials' status, their events; failures by user.
    #[derive(Default)]
    pub struct FakeLeaf {
        pub users: Mutex<HashSet<Uuid>>,
        pub held: Mutex<HashMap<Uuid, String>>,
        pub events: Mutex<HashMap<Uuid, Vec<CredentialEvent>>>,
        pub fail: Mutex<HashSet<Uuid>>,
        pub fail_events: Mutex<HashSet<Uuid>>,
        pub event_calls: AtomicUsize,
        pub in_flight: AtomicUsize,
        pub most_in_flight: AtomicUsize,
    }

    impl FakeLeaf {
        /// A new Leaf user, with credentials of this status or none.
        pub fn grower(&self, status: Option<&str>) -> Uuid {
            let user = Uuid::new_v4();
            self.users.lock().unwrap().insert(user);
            if let Some(status) = status {
                self.held.lock().unwrap().insert(user, status.into());
            }
            user
        }
    }

    #[async_trait]
    impl LeafApi for FakeLeaf {
        async fn get_credentials(
            &self,
            user: &Uuid,
            _: &Deadline,
        ) -> Result<Option<LeafCredentials>, ConnectorError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.fail.lock().unwrap().contains(user) {
                return Err(
                    UpstreamError::new(Service::Leaf, "GET", UpstreamKind::BadGateway, "HTTP 500").into(),
                );
            }
            let status = self.held.lock().unwrap().get(user).cloned();
            Ok(status.map(|status| LeafCredentials {
                id: format!("cred-{user}"),
                status,
                created_time: Some("2026-01-01T00:00:00Z".into()),
            }))
        }
        async fn user_exists(&self, user: &Uuid, _: &Deadline) -> Result<bool, ConnectorError> {
            Ok(self.users.lock().unwrap().contains(user))
        }
        async fn create_credentials(
            &self,
            _: &Uuid,
            _: &StaraTokens,
            _: &Deadline,
        ) -> Result<Created, ConnectorError> {
            unreachable!("verify never writes to Leaf")
        }
        async fn delete_credentials(&self, _: &Uuid, _: &Deadline) -> Result<bool, ConnectorError> {
            unreachable!("verify never writes to Leaf")
        }
        async fn events(
            &self,
            user: &Uuid,
            _: &Deadline,
        ) -> Result<Option<Vec<CredentialEvent>>, ConnectorError> {
            self.event_calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.fail_events.lock().unwrap().contains(user) {
                return Err(UpstreamError::new(
                    Service::Leaf,
                    "GET events",
                    UpstreamKind::Unavailable,
                    "HTTP 503",
                )
                .into());
            }
            Ok(Some(
                self.events.lock().unwrap().get(user).cloned().unwrap_or_default(),
            ))
        }
    }

    /// A grower list served in pages of three, each page with its own token.
    pub struct List(pub Vec<Uuid>);

    #[async_trait]
    impl GrowerDirectory for List {
        async fn page(&self, token: Option<String>) -> Result<GrowerPage, ConnectorError> {
            let start: usize = token.map_or(0, |t| t.parse().expect("a token this fake gave"));
            let end = (start + 3).min(self.0.len());
            Ok(GrowerPage {
                ids: self.0[start..end].to_vec(),
                next: (end < self.0.len()).then(|| end.to_string()),
            })
        }
    }

    /// Keeps what it is sent, with the run id.
    #[derive(Default)]
    pub struct Collect {
        pub sent: Mutex<Vec<(String, RepairRequest)>>,
        pub calls: AtomicUsize,
        pub fail: Mutex<Option<ConnectorError>>,
    }

    #[async_trait]
    impl RepairQueue for Collect {
        async fn enqueue(&self, run_id: &str, repairs: &[RepairRequest]) -> Result<usize, ConnectorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert!(repairs.len() <= BATCH_SIZE);
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(e);
            }
            self.sent
                .lock()
                .unwrap()
                .extend(repairs.iter().map(|r| (run_id.to_owned(), r.clone())));
            Ok(repairs.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;

    use async_trait::async_trait;

    use super::fakes::*;
    use super::*;
    use crate::error::{Service, UpstreamError, UpstreamKind};

    fn settings(concurrency: usize) -> RunSettings {
        RunSettings {
            run_id: "run-1".into(),
            concurrency,
            check_budget: Duration::from_secs(5),
            deadline: Deadline::after(Duration::from_secs(3600)),
        }
    }

    fn event(code: i64) -> CredentialEvent {
        CredentialEvent {
            status_code: Some(code),
            created_date: Some("2026-01-02T00:00:00Z".into()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_grower_is_judged_by_status_and_newest_event() {
        let leaf = Arc::new(FakeLeaf::default());
        let verifier = Verifier::new(leaf.clone());
        let d = Deadline::after(Duration::from_secs(5));
        let ok = leaf.grower(Some("OK"));
        leaf.events
            .lock()
            .unwrap()
            .insert(ok, vec![event(401), event(200)]);
        let check = verifier.check(&ok, &d).await.unwrap();
        assert_eq!(check.assessment.health, Health::Healthy);
        assert_eq!(check.last_event, Some(event(200)));
        assert_eq!(check.credentials.unwrap().id, format!("cred-{ok}"));

        let broken = leaf.grower(Some("OK"));
        leaf.events.lock().unwrap().insert(broken, vec![event(403)]);
        assert_eq!(
            verifier
                .check(&broken, &d)
                .await
                .unwrap()
                .assessment
                .reason
                .as_deref(),
            Some("event_403")
        );

        let missing = leaf.grower(None);
        let check = verifier.check(&missing, &d).await.unwrap();
        assert_eq!(
            (check.assessment.health, check.credentials, check.last_event),
            (Health::Missing, None, None)
        );

        assert_eq!(
            verifier.check(&Uuid::new_v4(), &d).await.unwrap_err(),
            ConnectorError::LeafUserNotFound
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_is_one_round_trip() {
        let leaf = Arc::new(FakeLeaf::default());
        let verifier = Verifier::new(leaf.clone());
        let d = Deadline::after(Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        verifier.check(&leaf.grower(Some("OK")), &d).await.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(20),
            "credentials and events asked for at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_events_matter_only_for_an_ok_status() {
        let leaf = Arc::new(FakeLeaf::default());
        let verifier = Verifier::new(leaf.clone());
        let d = Deadline::after(Duration::from_secs(5));
        let invalid = leaf.grower(Some("INVALID"));
        let ok = leaf.grower(Some("OK"));
        leaf.fail_events.lock().unwrap().extend([invalid, ok]);
        assert_eq!(
            verifier.check(&invalid, &d).await.unwrap().assessment.health,
            Health::Unhealthy
        );
        assert!(verifier.check(&ok, &d).await.unwrap_err().is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_counts_every_kind_and_queues_repairs() {
        let leaf = Arc::new(FakeLeaf::default());
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
        let queue = Collect::default();
        let summary = Verifier::new(leaf.clone())
            .run(&List(all), Some(&queue), &settings(4))
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
                repairs_failed: 0
            }
        );

        let sent = queue.sent.lock().unwrap();
        let by_user: HashMap<Uuid, &RepairRequest> = sent
            .iter()
            .map(|(run, r)| {
                assert_eq!(run, "run-1");
                (r.leaf_user_id, r)
            })
            .collect();
        assert_eq!(by_user.len(), 4);
        assert_eq!(
            (by_user[&invalid].reason.as_str(), by_user[&invalid].force),
            ("INVALID", false)
        );
        assert_eq!(
            (by_user[&expired].reason.as_str(), by_user[&expired].force),
            ("EXPIRED", false)
        );
        assert_eq!(
            (by_user[&missing].reason.as_str(), by_user[&missing].force),
            ("missing", false)
        );
        assert_eq!(
            (by_user[&revoked].reason.as_str(), by_user[&revoked].force),
            ("event_401", true)
        );
        assert!(
            !by_user.contains_key(&stranger),
            "an unknown Leaf user is an error, not a repair"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded_and_repairs_go_ten_at_a_time() {
        let leaf = Arc::new(FakeLeaf::default());
        let growers: Vec<Uuid> = (0..1000)
            .map(|i| leaf.grower(if i % 4 == 0 { None } else { Some("OK") }))
            .collect();
        let queue = Collect::default();
        let summary = Verifier::new(leaf.clone())
            .run(&List(growers), Some(&queue), &settings(16))
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
        let leaf = Arc::new(FakeLeaf::default());
        let growers = vec![leaf.grower(None), leaf.grower(Some("INVALID"))];
        let summary = Verifier::new(leaf)
            .run(&List(growers), None, &settings(2))
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
    async fn a_broken_queue_is_counted_and_not_called_again() {
        let leaf = Arc::new(FakeLeaf::default());
        let growers: Vec<Uuid> = (0..30).map(|_| leaf.grower(None)).collect();
        let queue = Collect::default();
        *queue.fail.lock().unwrap() = Some(ConnectorError::Configuration("SQS: AccessDenied".into()));
        let summary = Verifier::new(leaf)
            .run(&List(growers), Some(&queue), &settings(30))
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

    #[tokio::test(start_paused = true)]
    async fn growers_left_when_time_runs_out_are_errors() {
        let leaf = Arc::new(FakeLeaf::default());
        let growers: Vec<Uuid> = (0..10).map(|_| leaf.grower(Some("OK"))).collect();
        let settings = RunSettings {
            deadline: Deadline::after(Duration::ZERO),
            ..settings(2)
        };
        let summary = Verifier::new(leaf)
            .run(&List(growers), None, &settings)
            .await
            .unwrap();
        assert_eq!((summary.checked, summary.errors), (10, 10));
    }

    #[tokio::test]
    async fn a_listing_failure_fails_the_run() {
        struct Down;
        #[async_trait]
        impl GrowerDirectory for Down {
            async fn page(&self, _: Option<String>) -> Result<crate::directory::GrowerPage, ConnectorError> {
                Err(UpstreamError::new(
                    Service::SecretsManager,
                    "ListSecrets",
                    UpstreamKind::Unavailable,
                    "x",
                )
                .into())
            }
        }
        let err = Verifier::new(Arc::new(FakeLeaf::default()))
            .run(&Down, None, &settings(1))
            .await
            .unwrap_err();
        assert!(err.is_retryable());
    }
}
