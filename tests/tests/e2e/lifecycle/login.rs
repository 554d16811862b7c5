//! A login Stara rejects: connect marks the secret version it read, the sweep stops sending
//! repairs that would only be rejected again, and a new secret version (the operator's fix)
//! applies at once, to an explicit connect and to the next sweep.

use testbed::Route;
use testbed::bed::Grower;
use testbed::queue::{repair_body, users_of};
use testbed::secret_state;

use super::{World, failure_codes, outcomes, summary, world};

/// A grower known to Stara and Leaf whose stored login has a wrong password.
async fn grower_with_wrong_password(w: &World) -> Grower {
    let grower = w.bed.add_grower_without_secret().await;
    let mut wrong = grower.clone();
    wrong.password = format!("wrong-pw-{}", uuid::Uuid::new_v4().simple());
    w.bed.store_login(&wrong).await;
    grower
}

#[tokio::test]
async fn a_fixed_password_applies_to_the_next_connect_at_once() {
    let w = world().await;
    let grower = grower_with_wrong_password(&w).await;
    let id = &grower.leaf_user_id;
    let secret_id = w.bed.secret_id(id);
    let rejected = secret_state::current_version(&secret_id).await;

    let (status, body) = w.connect_now(id, false).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("stara_login_rejected")),
        "{body}"
    );
    let secret = w.secret(id).await;
    assert_eq!(secret.rejected_version(), Some(rejected.as_str()), "{secret:?}");
    let (status, body) = w.health(id).await;
    assert_eq!(
        (status, body["health"].as_str()),
        (200, Some("login_rejected")),
        "{body}"
    );

    // The operator stores the right password: a new AWSCURRENT version.
    w.bed.store_login(&grower).await;
    let fixed = secret_state::current_version(&secret_id).await;
    assert_ne!(fixed, rejected);

    // At once: no wait for the warm function's secret cache.
    let (status, body) = w.connect_now(id, false).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (201, Some("connected")),
        "{body}"
    );
    assert_eq!(w.bed.standin.credential(id).expect("credentials").status, "OK");
    let secret = w.secret(id).await;
    assert_eq!(secret.rejected_version(), None, "the mark is removed: {secret:?}");
    assert_eq!(w.bed.standin.count(Route::StaraAuth), 2, "one login per version");
    let (_, body) = w.health(id).await;
    assert_eq!(body["health"], "healthy", "{body}");
    w.assert_no_leaks();
}

#[tokio::test]
async fn a_rejected_login_is_tried_once_until_the_secret_has_a_new_version() {
    let w = world().await;
    let grower = grower_with_wrong_password(&w).await;
    let id = &grower.leaf_user_id;
    w.bed.standin.set_credential(id, "INVALID");
    let broken = w.bed.standin.credential(id);

    // Sweep 1: broken credentials, a repair; connect meets Stara's refusal.
    let got = w.sweep().await;
    assert_eq!(
        got,
        summary(&[("checked", 1), ("unhealthy", 1), ("repairsQueued", 1)]),
        "{got}"
    );
    let repairs = w.queued(1).await;
    assert_eq!(users_of(&repairs), vec![id.clone()]);
    assert!(
        w.deliver(&repairs).await.is_empty(),
        "a rejected login is not retried"
    );
    assert_eq!(failure_codes(&w.connect, id), vec!["stara_login_rejected"]);
    let rejected = secret_state::current_version(&w.bed.secret_id(id)).await;
    assert_eq!(w.secret(id).await.rejected_version(), Some(rejected.as_str()));

    // Sweep 2: the same version is still current, so no check and no repair.
    let got = w.sweep().await;
    assert_eq!(got, summary(&[("loginRejected", 1)]), "{got}");
    let repairs = w.queued(0).await;
    assert!(repairs.is_empty(), "{:?}", users_of(&repairs));
    assert!(w.deliver(&repairs).await.is_empty());
    // A copy of sweep 1's repair that SQS delivers again is skipped too.
    let failures = w.send(&[repair_body(id, false, "INVALID")]).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        outcomes(&w.connect, id).last().map(String::as_str),
        Some("skipped_login_rejected")
    );
    assert_eq!(
        w.bed.standin.count(Route::StaraAuth),
        1,
        "one login attempt in all"
    );
    assert_eq!(w.bed.standin.count(Route::LeafDeleteCredentials), 0);
    assert_eq!(w.bed.standin.credential(id), broken, "never less than before");
    let (_, body) = w.health(id).await;
    assert_eq!(body["health"], "login_rejected", "{body}");

    // The operator stores the right password: the next sweep checks the grower and repairs it.
    w.bed.store_login(&grower).await;
    let got = w.sweep().await;
    assert_eq!(
        got,
        summary(&[("checked", 1), ("unhealthy", 1), ("repairsQueued", 1)]),
        "{got}"
    );
    let repairs = w.queued(1).await;
    assert_eq!(users_of(&repairs), vec![id.clone()]);
    assert!(w.deliver(&repairs).await.is_empty());
    let held = w.bed.standin.credential(id).expect("credentials");
    assert_eq!(held.status, "OK");
    assert_ne!(Some(&held), broken.as_ref());
    assert_eq!(w.bed.standin.count(Route::StaraAuth), 2);
    let got = w.sweep().await;
    assert_eq!(got, summary(&[("checked", 1), ("healthy", 1)]), "{got}");
    w.assert_no_leaks();
}
