//! The connect workflow against the fakes: idempotence, replacement, and respect for what
//! people did (disconnects, rejected logins), and never less than before.

use std::time::Duration;

use super::*;
use crate::testing::{FakeLeaf, FakeLogins, FakeStara, FakeStates};

struct World {
    logins: Arc<FakeLogins>,
    states: Arc<FakeStates>,
    stara: Arc<FakeStara>,
    leaf: Arc<FakeLeaf>,
    connector: Connector,
    user: Uuid,
}

/// The fakes behind a connector, and a Leaf user with a stored Stara login (`pw`), no
/// credentials and no state recorded yet.
pub(super) type Fakes = (
    Arc<FakeLogins>,
    Arc<FakeStates>,
    Arc<FakeStara>,
    Arc<FakeLeaf>,
    Uuid,
);

pub(super) fn fakes() -> Fakes {
    let (logins, states) = (Arc::new(FakeLogins::default()), Arc::new(FakeStates::default()));
    let (stara, leaf) = (Arc::new(FakeStara::default()), Arc::new(FakeLeaf::default()));
    let user = Uuid::new_v4();
    logins.logins.lock().unwrap().insert(user, "pw".into());
    leaf.users.lock().unwrap().insert(user);
    (logins, states, stara, leaf, user)
}

/// A Leaf user with a stored Stara login and no credentials yet.
fn world() -> World {
    let (logins, states, stara, leaf, user) = fakes();
    let timeout = Duration::from_secs(2);
    let connector = Connector::new(
        logins.clone(),
        states.clone(),
        stara.clone(),
        leaf.clone(),
        timeout,
    );
    World {
        logins,
        states,
        stara,
        leaf,
        connector,
        user,
    }
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

async fn send(w: &World, force: bool, reason: Option<&str>) -> Result<ConnectReport, ConnectorError> {
    let request = ConnectRequest {
        leaf_user_id: w.user,
        force,
        reason: reason.map(str::to_owned),
    };
    w.connector.connect(&request, &deadline()).await
}

async fn connect(w: &World, force: bool) -> Result<ConnectReport, ConnectorError> {
    send(w, force, None).await
}

/// (Stara calls, Leaf DELETEs, Leaf POSTs)
fn calls(w: &World) -> (usize, usize, usize) {
    (
        *w.stara.calls.lock().unwrap(),
        *w.leaf.deletes.lock().unwrap(),
        *w.leaf.posts.lock().unwrap(),
    )
}

fn state(w: &World) -> GrowerState {
    w.states
        .states
        .lock()
        .unwrap()
        .get(&w.user)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_new_user_gets_connected() {
    let w = world();
    let report = connect(&w, false).await.unwrap();
    assert_eq!(report.outcome, Outcome::Connected);
    assert_eq!(report.credentials.unwrap().status, "OK");
    assert_eq!(calls(&w), (1, 0, 1));
}

#[tokio::test]
async fn a_repeat_changes_nothing_and_skips_stara() {
    let w = world();
    connect(&w, false).await.unwrap();
    let report = connect(&w, false).await.unwrap();
    assert_eq!(report.outcome, Outcome::AlreadyConnected);
    assert_eq!(calls(&w), (1, 0, 1), "no second Stara call, no second POST");
}

#[tokio::test]
async fn force_replaces_working_credentials() {
    let w = world();
    w.leaf.hold(w.user, "OK");
    let report = connect(&w, true).await.unwrap();
    assert_eq!(report.outcome, Outcome::Reconnected);
    assert_eq!(report.replaced_status.as_deref(), Some("OK"));
    assert_eq!(calls(&w), (1, 1, 1));
}

#[tokio::test]
async fn broken_credentials_are_replaced_without_force() {
    let w = world();
    w.leaf.hold(w.user, "INVALID");
    let report = connect(&w, false).await.unwrap();
    assert_eq!(report.outcome, Outcome::Reconnected);
    assert_eq!(report.replaced_status.as_deref(), Some("INVALID"));
    assert_eq!(report.credentials.unwrap().id, format!("new-{}", w.user));
}

#[tokio::test]
async fn an_unknown_leaf_user_is_reported_before_touching_stara() {
    let w = world();
    w.leaf.users.lock().unwrap().clear();
    assert_eq!(
        connect(&w, false).await.unwrap_err(),
        ConnectorError::LeafUserNotFound
    );
    assert_eq!(calls(&w), (0, 0, 0));
}

#[tokio::test]
async fn a_missing_login_leaves_the_old_credentials_alone() {
    let w = world();
    w.logins.logins.lock().unwrap().clear();
    w.leaf.hold(w.user, "INVALID");
    let err = connect(&w, false).await.unwrap_err();
    assert_eq!(err.code(), "grower_login_not_found");
    assert_eq!(calls(&w), (0, 0, 0));
    assert!(w.leaf.held.lock().unwrap().contains_key(&w.user));
}

#[tokio::test]
async fn a_rejected_password_deletes_nothing() {
    let w = world();
    w.leaf.hold(w.user, "INVALID");
    *w.stara.fail.lock().unwrap() = Some(ConnectorError::StaraLoginRejected { status: 401 });
    let err = connect(&w, true).await.unwrap_err();
    assert_eq!(err.http_status(), 422);
    assert_eq!(calls(&w), (1, 0, 0));
}

#[tokio::test]
async fn losing_a_race_to_another_writer_is_already_connected() {
    let w = world();
    *w.leaf.race_on_post.lock().unwrap() = Some("OK");
    assert_eq!(
        connect(&w, false).await.unwrap().outcome,
        Outcome::AlreadyConnected
    );
}

#[tokio::test]
async fn losing_a_race_to_broken_credentials_is_a_retryable_error() {
    let w = world();
    *w.leaf.race_on_post.lock().unwrap() = Some("INVALID");
    let err = connect(&w, false).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.http_status(), 502);
}

#[tokio::test]
async fn upstream_failures_pass_through_typed() {
    let w = world();
    w.leaf.fail.lock().unwrap().insert(w.user);
    let err = connect(&w, false).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.http_status(), 503);
}

#[tokio::test]
async fn disconnect_tells_removed_from_nothing_and_unknown() {
    let w = world();
    w.leaf.hold(w.user, "OK");
    assert_eq!(
        w.connector.disconnect(&w.user, &deadline()).await.unwrap(),
        Disconnected::Removed
    );
    assert_eq!(
        w.connector.disconnect(&w.user, &deadline()).await.unwrap(),
        Disconnected::NothingToRemove
    );
    let stranger = Uuid::new_v4();
    assert_eq!(
        w.connector.disconnect(&stranger, &deadline()).await.unwrap_err(),
        ConnectorError::LeafUserNotFound
    );
}

#[tokio::test]
async fn a_pending_status_is_kept_without_force() {
    for status in ["PROCESSING", "PENDING", "SOMETHING_NEW"] {
        let w = world();
        w.leaf.hold(w.user, status);
        let report = connect(&w, false).await.unwrap();
        assert_eq!(report.outcome, Outcome::Pending, "{status}");
        assert_eq!(
            calls(&w),
            (0, 0, 0),
            "{status}: verify leaves it alone, so does connect"
        );
    }
}

#[tokio::test]
async fn a_repair_for_a_disconnected_grower_changes_nothing() {
    let w = world();
    w.leaf.hold(w.user, "INVALID");
    w.states.mark(&w.user, Mark::Disconnected).await;
    let report = send(&w, true, Some("INVALID")).await.unwrap();
    assert_eq!(report.outcome, Outcome::SkippedDisconnected);
    assert_eq!(calls(&w), (0, 0, 0));
    assert!(state(&w).disconnected, "still disconnected");
}

#[tokio::test]
async fn an_explicit_connect_clears_the_disconnect() {
    let w = world();
    w.states.mark(&w.user, Mark::Disconnected).await;
    assert_eq!(connect(&w, false).await.unwrap().outcome, Outcome::Connected);
    let state = state(&w);
    assert!(
        !state.disconnected && state.rejected_version.is_none(),
        "{state:?}"
    );
    assert!(w.states.marks.lock().unwrap().contains(&(w.user, Mark::Cleared)));
}

#[tokio::test]
async fn a_rejected_login_is_forgotten_marked_and_not_tried_again_for_that_version() {
    let w = world();
    w.leaf.hold(w.user, "INVALID");
    *w.stara.fail.lock().unwrap() = Some(ConnectorError::StaraLoginRejected { status: 401 });
    assert_eq!(
        send(&w, false, Some("INVALID")).await.unwrap_err().http_status(),
        422
    );
    assert_eq!(
        *w.logins.forgotten.lock().unwrap(),
        vec![w.user],
        "the cached login is dropped"
    );
    assert_eq!(
        state(&w).rejected_version.as_deref(),
        Some("v2"),
        "the version of `pw`"
    );

    // The sweep would see the rejected version still current: a repair is not tried.
    w.states
        .states
        .lock()
        .unwrap()
        .get_mut(&w.user)
        .unwrap()
        .current_version = Some("v2".into());
    let report = send(&w, false, Some("INVALID")).await.unwrap();
    assert_eq!(report.outcome, Outcome::SkippedLoginRejected);
    assert_eq!(*w.stara.calls.lock().unwrap(), 1, "one login attempt in all");

    // A new version of the secret is tried, and clears the mark when it works.
    *w.stara.fail.lock().unwrap() = None;
    w.logins.logins.lock().unwrap().insert(w.user, "fixed-pw".into());
    w.states
        .states
        .lock()
        .unwrap()
        .get_mut(&w.user)
        .unwrap()
        .current_version = Some("v8".into());
    assert_eq!(
        send(&w, false, Some("INVALID")).await.unwrap().outcome,
        Outcome::Reconnected
    );
    assert_eq!(state(&w).rejected_version, None);
}

#[tokio::test]
async fn a_login_older_than_the_current_version_is_read_again() {
    let w = world();
    let current = Some("v8".to_owned());
    w.states.states.lock().unwrap().insert(
        w.user,
        GrowerState {
            current_version: current,
            ..GrowerState::default()
        },
    );
    connect(&w, false).await.unwrap();
    assert_eq!(
        *w.logins.forgotten.lock().unwrap(),
        vec![w.user],
        "v2 was read, v8 is current"
    );
}

#[tokio::test]
async fn no_delete_without_time_for_the_post() {
    let w = world();
    w.leaf.hold(w.user, "INVALID");
    let short = Deadline::after(Duration::from_millis(1500));
    let request = ConnectRequest {
        leaf_user_id: w.user,
        force: false,
        reason: None,
    };
    let err = w.connector.connect(&request, &short).await.unwrap_err();
    assert_eq!((err.code(), err.is_retryable()), ("replacement_deferred", true));
    assert_eq!(calls(&w), (1, 0, 0), "tokens issued, nothing deleted");
    assert!(w.leaf.held.lock().unwrap().contains_key(&w.user));
}

#[tokio::test]
async fn after_a_delete_every_post_failure_is_retryable() {
    let w = world();
    w.leaf.hold(w.user, "INVALID");
    *w.leaf.fail_post.lock().unwrap() = Some(ConnectorError::LeafUserNotFound);
    let err = connect(&w, false).await.unwrap_err();
    assert_eq!(
        (err.code(), err.is_retryable(), err.http_status()),
        ("replacement_pending", true, 503)
    );
    // Without a delete before it, the same failure stays what it is.
    let fresh = world();
    *fresh.leaf.fail_post.lock().unwrap() = Some(ConnectorError::LeafUserNotFound);
    assert_eq!(
        connect(&fresh, false).await.unwrap_err(),
        ConnectorError::LeafUserNotFound
    );
}

#[tokio::test]
async fn a_disconnect_is_recorded() {
    let w = world();
    w.leaf.hold(w.user, "OK");
    w.connector.disconnect(&w.user, &deadline()).await.unwrap();
    assert!(state(&w).disconnected);
    let stranger = Uuid::new_v4();
    assert!(w.connector.disconnect(&stranger, &deadline()).await.is_err());
    assert!(
        !w.states.marks.lock().unwrap().iter().any(|(u, _)| *u == stranger),
        "no mark for an unknown user"
    );
}

#[tokio::test]
async fn the_attached_credentials_id_is_recorded_once() {
    let w = world();
    connect(&w, false).await.unwrap();
    assert_eq!(state(&w).credentials_id, Some(format!("new-{}", w.user)));
    connect(&w, false).await.unwrap();
    let attached = w
        .states
        .marks
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| matches!(m, Mark::Attached { .. }))
        .count();
    assert_eq!(attached, 1, "a repeat finds the id recorded already");
}
