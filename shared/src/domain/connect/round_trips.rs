//! How many round trips a connect waits for, on paused time: every call to Stara, Leaf and the
//! secret store takes one `RTT` (Stara's `issue_tokens` is two calls, `/autenticacao` then
//! `/token`), so the elapsed time counts the round trips on the critical path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::*;
use crate::domain::model::{CredentialEvent, StaraTokens};
use crate::domain::time::measure_upstream;
use crate::testing::{FakeLeaf, FakeLogins, FakeStara, FakeStates};

const RTT: Duration = Duration::from_millis(20);

async fn trip(n: u32) {
    tokio::time::sleep(RTT * n).await;
}

/// The fakes, each call delayed by its round trips.
struct Slow<T>(Arc<T>);

#[async_trait]
impl GrowerLogins for Slow<FakeLogins> {
    async fn grower_login(&self, user: &Uuid) -> Result<StaraLogin, ConnectorError> {
        trip(1).await;
        self.0.grower_login(user).await
    }
    fn forget(&self, user: &Uuid) {
        self.0.forget(user)
    }
}

#[async_trait]
impl GrowerStates for Slow<FakeStates> {
    async fn state(&self, user: &Uuid) -> Result<Option<GrowerState>, ConnectorError> {
        trip(1).await;
        self.0.state(user).await
    }
    async fn mark(&self, user: &Uuid, mark: Mark) {
        trip(1).await;
        self.0.mark(user, mark).await
    }
}

#[async_trait]
impl StaraApi for Slow<FakeStara> {
    async fn issue_tokens(&self, login: &StaraLogin, d: &Deadline) -> Result<StaraTokens, ConnectorError> {
        trip(2).await;
        self.0.issue_tokens(login, d).await
    }
}

/// The grower's state, read in `.1` round trips.
struct SlowStates(Arc<FakeStates>, u32);

#[async_trait]
impl GrowerStates for SlowStates {
    async fn state(&self, user: &Uuid) -> Result<Option<GrowerState>, ConnectorError> {
        trip(self.1).await;
        self.0.state(user).await
    }
    async fn mark(&self, user: &Uuid, mark: Mark) {
        trip(1).await;
        self.0.mark(user, mark).await
    }
}

/// Leaf, counting the user lookups.
struct SlowLeaf(Arc<FakeLeaf>, Arc<AtomicUsize>);

#[async_trait]
impl LeafApi for SlowLeaf {
    async fn get_credentials(
        &self,
        u: &Uuid,
        d: &Deadline,
    ) -> Result<Option<LeafCredentials>, ConnectorError> {
        trip(1).await;
        self.0.get_credentials(u, d).await
    }
    async fn user_exists(&self, u: &Uuid, d: &Deadline) -> Result<bool, ConnectorError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        trip(1).await;
        self.0.user_exists(u, d).await
    }
    async fn create_credentials(
        &self,
        u: &Uuid,
        t: &StaraTokens,
        d: &Deadline,
    ) -> Result<Created, ConnectorError> {
        trip(1).await;
        self.0.create_credentials(u, t, d).await
    }
    async fn delete_credentials(&self, u: &Uuid, d: &Deadline) -> Result<bool, ConnectorError> {
        trip(1).await;
        self.0.delete_credentials(u, d).await
    }
    async fn events(&self, u: &Uuid, d: &Deadline) -> Result<Option<Vec<CredentialEvent>>, ConnectorError> {
        trip(1).await;
        self.0.events(u, d).await
    }
}

struct World {
    stara: Arc<FakeStara>,
    leaf: Arc<FakeLeaf>,
    logins: Arc<FakeLogins>,
    lookups: Arc<AtomicUsize>,
    connector: Connector,
    user: Uuid,
}

/// A Leaf user with a stored login, no credentials, and no state recorded yet.
fn world() -> World {
    let (logins, states, stara, leaf, user) = super::tests::fakes();
    let lookups = Arc::new(AtomicUsize::new(0));
    let connector = Connector::new(
        Arc::new(Slow(logins.clone())),
        Arc::new(Slow(states)),
        Arc::new(Slow(stara.clone())),
        Arc::new(SlowLeaf(leaf.clone(), lookups.clone())),
        Duration::from_secs(2),
    );
    World {
        stara,
        leaf,
        logins,
        lookups,
        connector,
        user,
    }
}

/// The connect's result and its round trips (elapsed ÷ RTT).
async fn timed(w: &World, force: bool, reason: Option<&str>) -> (Result<ConnectReport, ConnectorError>, f64) {
    let request = ConnectRequest {
        leaf_user_id: w.user,
        force,
        reason: reason.map(str::to_owned),
    };
    let started = Instant::now();
    let result = w
        .connector
        .connect(&request, &Deadline::after(Duration::from_secs(5)))
        .await;
    (result, started.elapsed().as_secs_f64() / RTT.as_secs_f64())
}

#[tokio::test(start_paused = true)]
async fn a_first_connect_waits_for_four_round_trips_then_the_state_write() {
    let w = world();
    let (report, trips) = timed(&w, false, None).await;
    assert_eq!(report.unwrap().outcome, Outcome::Connected);
    // GET credentials ‖ state ‖ login; Stara ×2 ‖ user lookup; POST; then the attached id's tag.
    assert_eq!(trips, 5.0, "4 upstream round trips + 1 state write (was 6 + 1)");
    assert_eq!(*w.stara.calls.lock().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_repeat_is_one_round_trip_and_no_stara_call() {
    let w = world();
    timed(&w, false, None).await.0.unwrap();
    let (report, trips) = timed(&w, false, None).await;
    assert_eq!(report.unwrap().outcome, Outcome::AlreadyConnected);
    assert_eq!(trips, 1.0);
    assert_eq!(*w.stara.calls.lock().unwrap(), 1, "no second Stara call");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_user_ends_the_connect_when_leaf_says_so() {
    let w = world();
    w.leaf.users.lock().unwrap().clear();
    let (result, trips) = timed(&w, false, None).await;
    assert_eq!(result.unwrap_err(), ConnectorError::LeafUserNotFound);
    // The lookup answers after one round trip, while Stara's login is still on its way: it is
    // dropped, and nothing is written.
    assert_eq!((trips, *w.leaf.posts.lock().unwrap()), (2.0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_missing_login_names_an_unknown_user_first() {
    let w = world();
    w.leaf.users.lock().unwrap().clear();
    w.logins.logins.lock().unwrap().clear();
    let (result, _) = timed(&w, false, None).await;
    assert_eq!(result.unwrap_err(), ConnectorError::LeafUserNotFound);
    w.leaf.users.lock().unwrap().insert(w.user);
    let (result, trips) = timed(&w, false, None).await;
    assert_eq!(result.unwrap_err().code(), "grower_login_not_found");
    assert_eq!((trips, *w.stara.calls.lock().unwrap()), (2.0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_replacement_gets_tokens_before_it_deletes() {
    let w = world();
    w.leaf.hold(w.user, "INVALID");
    let (report, trips) = timed(&w, false, None).await;
    assert_eq!(report.unwrap().outcome, Outcome::Reconnected);
    // GET ‖ state ‖ login; Stara ×2; DELETE; POST; the attached id's tag.
    assert_eq!(trips, 6.0);
}

#[tokio::test(start_paused = true)]
async fn the_user_is_looked_up_only_when_leaf_holds_nothing() {
    let w = world();
    w.leaf.hold(w.user, "OK");
    let (report, trips) = timed(&w, true, None).await;
    assert_eq!(report.unwrap().outcome, Outcome::Reconnected);
    assert_eq!((trips, w.lookups.load(Ordering::SeqCst)), (6.0, 0));
    let (report, trips) = timed(&world(), true, None).await;
    assert_eq!((report.unwrap().outcome, trips), (Outcome::Connected, 5.0));
}

#[tokio::test(start_paused = true)]
async fn a_state_read_slower_than_leafs_get_counts_as_upstream_beyond_it() {
    let (logins, states, stara, leaf, user) = super::tests::fakes();
    leaf.hold(user, "OK");
    let connector = Connector::new(
        Arc::new(Slow(logins)),
        Arc::new(SlowStates(states, 3)),
        Arc::new(Slow(stara)),
        Arc::new(SlowLeaf(leaf, Arc::default())),
        Duration::from_secs(2),
    );
    let request = ConnectRequest {
        leaf_user_id: user,
        force: false,
        reason: None,
    };
    let deadline = Deadline::after(Duration::from_secs(5));
    let (report, upstream) = measure_upstream(connector.connect(&request, &deadline)).await;
    assert_eq!(report.unwrap().outcome, Outcome::AlreadyConnected);
    // Leaf's GET (one round trip) is its adapter's to record; the state read beside it took
    // three, so two of them were a wait of their own. (The fakes record nothing else.)
    assert_eq!(upstream, RTT * 2);
}
