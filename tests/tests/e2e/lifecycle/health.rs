//! One health model for connect and verify: connect keeps what verify does not call unhealthy,
//! Leaf events from before the current credentials do not count, and a secret whose name does
//! not end in a lower-case Leaf user id is reported, never repaired in a loop.

use std::time::{Duration, SystemTime};

use testbed::Route;
use testbed::bed::Grower;
use testbed::queue::users_of;

use super::{summary, world};

#[tokio::test]
async fn connect_keeps_the_credentials_verify_calls_pending() {
    let w = world().await;
    let mut pending = Vec::new();
    for status in ["PROCESSING", "PENDING", "SOMETHING_NEW"] {
        let grower = w.bed.add_grower().await;
        w.bed.standin.set_credential(&grower.leaf_user_id, status);
        pending.push((grower, status));
    }
    for (grower, status) in &pending {
        let id = &grower.leaf_user_id;
        let held = w.bed.standin.credential(id);
        let (code, body) = w.connect_now(id, false).await;
        assert_eq!(
            (code, body["outcome"].as_str(), body["leafStatus"].as_str()),
            (200, Some("pending"), Some(*status)),
            "{body}"
        );
        assert_eq!(w.bed.standin.credential(id), held, "{status}: left alone");
        let (_, body) = w.health(id).await;
        assert_eq!(body["health"], "pending", "verify agrees: {body}");
    }
    for route in [
        Route::StaraAuth,
        Route::LeafDeleteCredentials,
        Route::LeafPostCredentials,
    ] {
        assert_eq!(w.bed.standin.count(route), 0, "{route:?}");
    }
    // `force` still replaces them.
    let (grower, _) = &pending[0];
    let (code, body) = w.connect_now(&grower.leaf_user_id, true).await;
    assert_eq!(
        (code, body["outcome"].as_str()),
        (201, Some("reconnected")),
        "{body}"
    );
    w.assert_no_leaks();
}

#[tokio::test]
async fn a_401_event_older_than_the_credentials_does_not_count() {
    let w = world().await;
    // Leaf still lists a 401 the previous credentials got, an hour before these were created.
    let replaced = w.bed.add_grower().await;
    let id = &replaced.leaf_user_id;
    w.bed.standin.set_credential(id, "OK");
    w.bed
        .standin
        .add_event_at(id, 401, SystemTime::now() - Duration::from_secs(3600));
    let created = w.bed.standin.created_time(id).expect("credentials");
    let events = w.bed.standin.events(id);
    assert!(events[0]["createdDate"].as_str().unwrap() < created.as_str());
    // The rule itself still holds: a 401 after the credentials were created is a forced repair.
    let revoked = w.bed.add_grower().await;
    w.bed.standin.set_credential(&revoked.leaf_user_id, "OK");
    tokio::time::sleep(Duration::from_millis(5)).await;
    w.bed.standin.add_event(&revoked.leaf_user_id, 401);

    let got = w.sweep().await;
    assert_eq!(
        got,
        summary(&[
            ("checked", 2),
            ("healthy", 1),
            ("unhealthy", 1),
            ("repairsQueued", 1)
        ]),
        "{got}"
    );
    let repairs = w.queued(1).await;
    assert_eq!(users_of(&repairs), vec![revoked.leaf_user_id.clone()]);
    let (status, body) = w.health(id).await;
    assert_eq!(
        (status, body["health"].as_str()),
        (200, Some("healthy")),
        "{body}"
    );

    // connect agrees: nothing to replace without force.
    let (status, body) = w.connect_now(id, false).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("already_connected")),
        "{body}"
    );
    assert_eq!(w.bed.standin.count(Route::LeafDeleteCredentials), 0);
    w.assert_no_leaks();
}

#[tokio::test]
async fn an_upper_case_secret_name_is_an_error_and_never_queued() {
    let w = world().await;
    // A Leaf user with no credentials: "missing", if the name were taken as its id.
    let id = uuid::Uuid::new_v4().to_string();
    w.bed.standin.add_leaf_user(&id);
    let misnamed = Grower {
        leaf_user_id: id.to_uppercase(),
        login: format!("grower-{}", &id[..8]),
        password: format!("stara-pw-{}", uuid::Uuid::new_v4().simple()),
    };
    w.bed
        .standin
        .add_stara_account(&misnamed.login, &misnamed.password);
    w.bed.store_login(&misnamed).await;
    let secret_id = w.bed.secret_id(&misnamed.leaf_user_id);

    let named = || {
        w.verify
            .function
            .logs()
            .into_iter()
            .filter(|line| line.contains("grower_secret_misnamed") && line.contains(&secret_id))
            .count()
    };
    // Two sweeps, as two hours of the schedule: an error each time, never a repair.
    for run in 1..=2 {
        let before = named();
        let got = w.sweep().await;
        assert_eq!(got, summary(&[("checked", 1), ("errors", 1)]), "run {run}: {got}");
        let repairs = w.queued(0).await;
        assert!(repairs.is_empty(), "run {run}: {:?}", users_of(&repairs));
        assert!(named() > before, "run {run}: a log line names the secret");
    }
    for route in [Route::LeafPostCredentials, Route::StaraAuth] {
        assert_eq!(w.bed.standin.count(route), 0, "{route:?}");
    }
    w.assert_no_leaks();
}
