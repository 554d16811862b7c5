//! A grower's login created or changed in Secrets Manager (CloudTrail through EventBridge):
//! verify queues a connect with `reason: login_changed`, so a new grower is connected and a
//! corrected password is tried at once; calls on other secrets, and calls that change no login,
//! are ignored; a disconnected grower stays disconnected.

use serde_json::json;
use testbed::alerts::secret_arn;
use testbed::bed::{api_response, disconnect_api_event, verify_api_event};
use testbed::secret_state;
use testbed::{Route, moto};

use super::{World, parts, world};

/// What a connect queued for a changed login looks like.
fn login_changed(id: &str) -> serde_json::Value {
    json!({"leafUserId": id, "force": false, "reason": "login_changed"})
}

/// Sends verify `event_name` about `secret`; checks that it queued one connect of `id`, and
/// returns that message.
async fn changed(w: &World, event_name: &str, secret: &str, id: &str) -> aws_sdk_sqs::types::Message {
    let answer = w.secret_call(event_name, secret).await;
    assert_eq!(
        answer,
        json!({"outcome": "connect_queued", "leafUserId": id}),
        "{event_name} {secret}"
    );
    let mut messages = w.queued(1).await;
    assert_eq!(messages.len(), 1, "{event_name} {secret}");
    let message = messages.remove(0);
    let (body, group, _) = parts(&message);
    assert_eq!((body, group.as_str()), (login_changed(id), id));
    message
}

#[tokio::test]
async fn a_new_login_connects_the_grower_at_once() {
    let w = world().await;
    // A Leaf user without credentials; then the operator stores the grower's login.
    let grower = w.bed.add_grower_without_secret().await;
    let id = grower.leaf_user_id.as_str();
    w.bed.store_login(&grower).await;

    let message = changed(&w, "CreateSecret", &w.bed.secret_id(id), id).await;
    assert!(w.deliver(&[message]).await.is_empty());

    assert_eq!(w.outcomes(id), ["connected"]);
    let held = w.bed.standin.credential(id).expect("credentials");
    assert_eq!(held.status, "OK");
    assert_eq!(w.credentials_tag(id).await, Some(held.id.clone()));
    let (status, health) = w.post(verify_api_event(id)).await;
    assert_eq!(
        (status, health["health"].as_str()),
        (200, Some("healthy")),
        "{health}"
    );
    w.assert_no_leaks();
}

#[tokio::test]
async fn a_corrected_login_repairs_a_broken_grower() {
    let w = world().await;
    let (grower, old) = w.connected_grower().await;
    let id = grower.leaf_user_id.as_str();
    let name = w.bed.secret_id(id);
    // The grower changed the Stara password; Leaf's tokens stopped working. The operator stores
    // the new password: a new version of the secret.
    let password = format!("stara-pw-new-{}", uuid::Uuid::new_v4().simple());
    w.bed.standin.add_stara_account(&grower.login, &password);
    w.bed.remember_secret(&password);
    w.bed.standin.set_status(id, "INVALID");
    let login = json!({"login": grower.login, "password": password});
    secret_state::put_new_version(&name, &login).await;

    // CloudTrail names the secret by the ARN Secrets Manager gave it (name, `-`, 6 characters).
    let arn = secret_arn(&name).await;
    let suffix = arn
        .split_once(&format!(":secret:{name}-"))
        .map(|(_, suffix)| suffix);
    assert!(
        arn.starts_with("arn:aws:secretsmanager:") && suffix.is_some_and(|s| s.len() == 6),
        "{arn}"
    );
    let message = changed(&w, "PutSecretValue", &arn, id).await;
    assert!(w.deliver(&[message]).await.is_empty());

    assert_eq!(w.outcomes(id), ["connected", "reconnected"]);
    let auth = w.bed.standin.requests(Route::StaraAuth);
    let last = auth.last().expect("a Stara login").json().expect("JSON");
    assert_eq!(last["password"], password.as_str(), "the new password was used");
    let held = w.bed.standin.credential(id).expect("credentials");
    assert_eq!(held.status, "OK");
    assert_ne!(held.id, old);
    assert_eq!(w.credentials_tag(id).await, Some(held.id.clone()));
    w.assert_no_leaks();
}

#[tokio::test]
async fn only_calls_that_change_a_growers_login_queue_a_connect() {
    let w = world().await;
    let grower = w.bed.add_grower().await;
    let id = grower.leaf_user_id.as_str();
    let name = w.bed.secret_id(id);
    // Another secret, outside the grower prefix, whose name ends in the same id.
    let outside = format!("stara-connect-test/{}/other/{id}", uuid::Uuid::new_v4().simple());
    moto::put_secret(&outside, &json!({"login": "x", "password": "other-pw-1"})).await;
    let outside_arn = secret_arn(&outside).await;
    let upper = format!("{}{}", w.bed.grower_prefix, id.to_uppercase());

    let ignored = [
        ("PutSecretValue", outside.as_str()),
        ("PutSecretValue", outside_arn.as_str()),
        ("CreateSecret", outside.as_str()),
        ("UpdateSecret", w.bed.leaf_secret_id.as_str()),
        ("PutSecretValue", upper.as_str()),
        ("DeleteSecret", name.as_str()),
        ("GetSecretValue", name.as_str()),
        // Connect tags the secret itself: a tag must never start a connect.
        ("TagResource", name.as_str()),
    ];
    for (call, secret) in ignored {
        let answer = w.secret_call(call, secret).await;
        assert_eq!(answer, json!({"outcome": "ignored"}), "{call} {secret}");
    }
    assert!(w.queued(0).await.is_empty(), "nothing queued");

    // The four calls that create or change a login, each its own event: one connect each.
    let calls = ["CreateSecret", "PutSecretValue", "UpdateSecret", "RestoreSecret"];
    for call in calls {
        let answer = w.secret_call(call, &name).await;
        assert_eq!(answer["outcome"], "connect_queued", "{call}");
    }
    let messages = w.queued(calls.len()).await;
    assert_eq!(messages.len(), calls.len());
    let mut dedup: Vec<String> = messages.iter().map(|m| parts(m).2).collect();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), calls.len(), "one deduplication id per event");
    assert!(messages.iter().all(|m| parts(m).0 == login_changed(id)));
    // One batch: the grower is connected once.
    assert!(w.deliver(&messages).await.is_empty());
    assert_eq!(w.outcomes(id), ["connected"]);
    assert_eq!(w.bed.standin.count(Route::LeafPostCredentials), 1);
    w.assert_no_leaks();
}

#[tokio::test]
async fn a_changed_login_leaves_a_disconnected_grower_disconnected() {
    let w = world().await;
    let (grower, _) = w.connected_grower().await;
    let id = grower.leaf_user_id.as_str();
    let name = w.bed.secret_id(id);
    let (status, _) = api_response(&w.bed.invoke(&w.connect, disconnect_api_event(id)).await);
    assert_eq!(status, 204);
    assert!(secret_state::describe(&name).await.disconnected());
    let login = json!({"login": grower.login, "password": grower.password});
    secret_state::put_new_version(&name, &login).await;
    let before = w.bed.standin.counts();

    let message = changed(&w, "PutSecretValue", &name, id).await;
    assert!(
        w.deliver(&[message]).await.is_empty(),
        "a skipped connect is no failure"
    );

    assert_eq!(w.outcomes(id), ["connected", "skipped_disconnected"]);
    let after = w.bed.standin.counts();
    for route in [
        Route::StaraAuth,
        Route::StaraToken,
        Route::LeafPostCredentials,
        Route::LeafDeleteCredentials,
    ] {
        assert_eq!(after[&route], before[&route], "{route:?}: nothing changed");
    }
    assert_eq!(w.bed.standin.credential(id), None);
    assert!(secret_state::describe(&name).await.disconnected());
    let (status, health) = w.post(verify_api_event(id)).await;
    assert_eq!(
        (status, health["health"].as_str()),
        (200, Some("disconnected")),
        "{health}"
    );
    w.assert_no_leaks();
}

/// The event is a repair (it has a `reason`): it is tried because the version changed, and a
/// login that works clears the rejection.
#[tokio::test]
async fn a_fixed_password_clears_a_rejected_login() {
    let w = world().await;
    let grower = w.bed.add_grower_without_secret().await;
    let id = grower.leaf_user_id.as_str();
    let name = w.bed.secret_id(id);
    let mut wrong = grower.clone();
    wrong.password = format!("wrong-pw-{}", uuid::Uuid::new_v4().simple());
    w.bed.store_login(&wrong).await;
    let message = changed(&w, "CreateSecret", &name, id).await;
    assert!(
        w.deliver(&[message]).await.is_empty(),
        "a rejected login is not retried"
    );
    let rejected = secret_state::current_version(&name).await;
    let secret = secret_state::describe(&name).await;
    assert_eq!(secret.rejected_version(), Some(rejected.as_str()), "{secret:?}");

    // The operator stores the right password.
    let login = json!({"login": grower.login, "password": grower.password});
    let fixed = secret_state::put_new_version(&name, &login).await;
    let arn = secret_arn(&name).await;
    let message = changed(&w, "PutSecretValue", &arn, id).await;
    assert!(w.deliver(&[message]).await.is_empty());

    assert_eq!(w.outcomes(id), ["connected"]);
    let held = w.bed.standin.credential(id).expect("credentials");
    assert_eq!(held.status, "OK");
    let secret = secret_state::describe(&name).await;
    assert_eq!(secret.current_version.as_deref(), Some(fixed.as_str()));
    assert_eq!(
        secret.rejected_version(),
        None,
        "the rejection is cleared: {secret:?}"
    );
    assert_eq!(w.credentials_tag(id).await, Some(held.id.clone()));
    w.assert_no_leaks();
}
