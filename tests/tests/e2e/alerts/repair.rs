//! An alert about broken credentials, end to end: verify finds the grower by the credentials id
//! connect recorded on its secret and queues a forced repair; connect replaces the credentials
//! and records the new id, so the next alert (about the new credentials) finds the grower too.

use std::time::Duration;

use serde_json::json;
use testbed::Route;
use testbed::alerts::alert_body;
use testbed::aws_proxy::{AwsFault, AwsProxy};
use testbed::bed::{Bed, api_response, connect_api_event, verify_api_event};
use testbed::{moto, secret_state};

use super::{ALERT_REASON, CREDENTIALS_TAG, World, parts, world};

/// Posts a `credentialsUnauthenticated` alert about `credentials`; checks that it queued one
/// forced repair of `id`, and hands that repair to connect.
async fn alert_and_repair(w: &World, id: &str, credentials: &str) {
    let (status, answer) = w
        .alert(&alert_body("credentialsUnauthenticated", credentials))
        .await;
    assert_eq!(
        (status, answer),
        (202, json!({"outcome": "repair_queued", "leafUserId": id}))
    );
    let messages = w.queued(1).await;
    assert_eq!(messages.len(), 1);
    let (repair, group, _) = parts(&messages[0]);
    assert_eq!(
        (repair, group.as_str()),
        (
            json!({"leafUserId": id, "force": true, "reason": ALERT_REASON}),
            id
        )
    );
    let failures = w.deliver(&messages).await;
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn an_alert_about_broken_credentials_repairs_the_grower() {
    let w = world().await;
    let (grower, first) = w.connected_grower().await;
    let id = grower.leaf_user_id.as_str();
    let (bystander, bystander_credentials) = w.connected_grower().await;
    // Leaf finds the grower's Stara tokens no longer work.
    w.bed.standin.set_status(id, "INVALID");
    let stara_logins = w.bed.standin.count(Route::StaraAuth);

    alert_and_repair(&w, id, &first).await;

    assert_eq!(w.outcomes(id), ["connected", "reconnected"]);
    assert_eq!(
        w.bed.standin.count(Route::StaraAuth),
        stara_logins + 1,
        "fresh Stara tokens"
    );
    let second = w.bed.standin.credential(id).expect("credentials");
    assert_eq!(second.status, "OK");
    assert_ne!(second.id, first, "new credentials");
    assert_eq!(
        w.credentials_tag(id).await.as_deref(),
        Some(second.id.as_str()),
        "connect recorded the new credentials id"
    );
    let (status, health) = w.post(verify_api_event(id)).await;
    assert_eq!(
        (
            status,
            health["health"].as_str(),
            health["credentialsId"].as_str()
        ),
        (200, Some("healthy"), Some(second.id.as_str())),
        "{health}"
    );

    // An alert about the replaced credentials names no grower any more.
    let (status, answer) = w.alert(&alert_body("credentialsUnauthenticated", &first)).await;
    assert_eq!((status, answer), (200, json!({"outcome": "unknown_credentials"})));
    assert!(w.queued(0).await.is_empty());

    // The new credentials break too: the next alert finds the grower by the new id.
    w.bed.standin.set_status(id, "EXPIRED");
    alert_and_repair(&w, id, &second.id).await;
    assert_eq!(w.outcomes(id), ["connected", "reconnected", "reconnected"]);
    let third = w.bed.standin.credential(id).expect("credentials");
    assert_eq!(third.status, "OK");
    assert!(third.id != first && third.id != second.id);
    assert_eq!(w.credentials_tag(id).await, Some(third.id.clone()));

    // The other grower was never touched.
    let untouched = w
        .bed
        .standin
        .credential(&bystander.leaf_user_id)
        .expect("credentials");
    assert_eq!(
        (untouched.id.as_str(), untouched.status.as_str()),
        (bystander_credentials.as_str(), "OK")
    );
    assert_eq!(w.outcomes(&bystander.leaf_user_id), ["connected"]);
    assert_eq!(w.metric_lines("AlertsRepairQueued"), 2);
    w.assert_no_leaks();
}

/// Connect records the credentials id once it has answered (`lambda/after_response.rs`): a slow
/// Secrets Manager holds up neither the answer nor anything but the process's next event, and the
/// id is there before connect takes that event.
#[tokio::test]
async fn the_credentials_id_is_recorded_after_the_answer() {
    let bed = Bed::start().await;
    let proxy = AwsProxy::start(&moto::moto_endpoint()).await;
    let connect = bed
        .run("connect", &[("AWS_ENDPOINT_URL", &proxy.endpoint())])
        .await;
    let grower = bed.add_grower().await;
    let id = grower.leaf_user_id.as_str();
    let slow = Duration::from_secs(2);
    proxy.inject("secretsmanager.TagResource", AwsFault::Delay(slow), 1);

    // Straight to the emulator: `Bed::invoke` would wait for the invocation to finish.
    let invocation = connect.runtime.invoke(connect_api_event(id, false)).await;
    let (status, body) = api_response(&invocation);
    assert_eq!(
        (status, body["outcome"].as_str()),
        (201, Some("connected")),
        "{body}"
    );
    assert!(
        invocation.elapsed < slow,
        "the answer waited for the tag write: {:?}",
        invocation.elapsed
    );
    let tag = || async {
        secret_state::describe(&bed.secret_id(id))
            .await
            .tags
            .get(CREDENTIALS_TAG)
            .cloned()
    };
    assert_eq!(tag().await, None, "not written yet: Secrets Manager is slow");

    assert!(
        connect
            .runtime
            .finished(&invocation, Duration::from_secs(10))
            .await
    );
    let held = bed.standin.credential(id).expect("Leaf holds credentials");
    assert_eq!(
        tag().await,
        Some(held.id),
        "written before connect asked for its next event"
    );
    assert_eq!(proxy.calls("secretsmanager.TagResource"), 1);
    bed.assert_no_leaks(&[&connect.function]);
}
