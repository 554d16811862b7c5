//! A disconnected grower: `DELETE /connections/{id}` marks it on its login secret; the sweep
//! neither checks nor repairs it, a late repair changes nothing, and only an explicit connect
//! (API, or a message without `reason`) brings it back.

use testbed::Route;
use testbed::aws_proxy::{AwsFault, AwsProxy};
use testbed::bed::{Bed, api_response, connect_body, disconnect_api_event};
use testbed::moto;
use testbed::queue::repair_body;

use super::{outcomes, summary, world};

#[tokio::test]
async fn a_disconnected_grower_is_neither_checked_nor_repaired() {
    let w = world().await;
    let connected = w.bed.add_grower().await;
    assert_eq!(w.connect_now(&connected.leaf_user_id, false).await.0, 201);
    let never_connected = w.bed.add_grower().await;
    // A login stored for a Leaf user that does not exist.
    let mut stranger = w.bed.add_grower_without_secret().await;
    stranger.leaf_user_id = uuid::Uuid::new_v4().to_string();
    w.bed.store_login(&stranger).await;

    let (status, body) = w.disconnect(&connected.leaf_user_id).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = w.disconnect(&never_connected.leaf_user_id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_connected"))
    );
    let (status, body) = w.disconnect(&stranger.leaf_user_id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("leaf_user_not_found"))
    );

    // Marked: both growers whose Leaf user exists; nothing for the unknown user.
    for grower in [&connected, &never_connected] {
        let secret = w.secret(&grower.leaf_user_id).await;
        assert!(secret.disconnected(), "{secret:?}");
    }
    let secret = w.secret(&stranger.leaf_user_id).await;
    assert!(secret.lifecycle_tags().is_empty(), "{secret:?}");

    // The sweep counts the two apart from `checked`, and queues nothing for them. The unknown
    // user is checked, and is an error as before.
    let posts = w.bed.standin.count(Route::LeafPostCredentials);
    let got = w.sweep().await;
    assert_eq!(
        got,
        summary(&[("checked", 1), ("errors", 1), ("disconnected", 2)]),
        "{got}"
    );
    assert!(
        w.queued(0).await.is_empty(),
        "no repair for a disconnected grower"
    );
    for grower in [&connected, &never_connected] {
        let (status, body) = w.health(&grower.leaf_user_id).await;
        assert_eq!(
            (status, body["health"].as_str(), body["leafUserId"].as_str()),
            (200, Some("disconnected"), Some(grower.leaf_user_id.as_str())),
            "{body}"
        );
    }
    // A second sweep: still nothing to do.
    assert_eq!(w.sweep().await["disconnected"], 2);
    assert!(w.queued(0).await.is_empty());
    assert_eq!(w.bed.standin.count(Route::LeafPostCredentials), posts);
    assert!(w.bed.standin.credential(&connected.leaf_user_id).is_none());
    w.assert_no_leaks();
}

#[tokio::test]
async fn a_late_repair_after_a_disconnect_changes_nothing_at_leaf() {
    let w = world().await;
    let gone = w.bed.add_grower().await;
    let relinked = w.bed.add_grower().await;
    for grower in [&gone, &relinked] {
        assert_eq!(w.connect_now(&grower.leaf_user_id, false).await.0, 201);
        assert_eq!(w.disconnect(&grower.leaf_user_id).await.0, 204);
    }
    // Credentials attached outside the connector after the disconnect, and broken: a repair
    // would replace them, but the grower asked to be disconnected.
    w.bed.standin.set_credential(&relinked.leaf_user_id, "INVALID");
    let held = w.bed.standin.credential(&relinked.leaf_user_id);
    let before = w.bed.standin.counts();

    // Repairs a sweep queued before the disconnect, delivered after it.
    let failures = w
        .send(&[
            repair_body(&gone.leaf_user_id, false, "missing"),
            repair_body(&relinked.leaf_user_id, true, "event_401"),
        ])
        .await;

    assert!(
        failures.is_empty(),
        "a skipped repair is no failure: {failures:?}"
    );
    let after = w.bed.standin.counts();
    for route in [
        Route::LeafPostCredentials,
        Route::LeafDeleteCredentials,
        Route::StaraAuth,
        Route::StaraToken,
    ] {
        assert_eq!(after[&route], before[&route], "{route:?}");
    }
    assert_eq!(w.bed.standin.credential(&gone.leaf_user_id), None);
    assert_eq!(w.bed.standin.credential(&relinked.leaf_user_id), held);
    for grower in [&gone, &relinked] {
        let finished = outcomes(&w.connect, &grower.leaf_user_id);
        assert_eq!(
            finished.last().map(String::as_str),
            Some("skipped_disconnected"),
            "{finished:?}"
        );
        assert!(w.secret(&grower.leaf_user_id).await.disconnected());
    }
    w.assert_no_leaks();
}

#[tokio::test]
async fn an_explicit_connect_brings_a_disconnected_grower_back() {
    let w = world().await;
    let by_api = w.bed.add_grower().await;
    let by_queue = w.bed.add_grower().await;
    for grower in [&by_api, &by_queue] {
        assert_eq!(w.connect_now(&grower.leaf_user_id, false).await.0, 201);
        assert_eq!(w.disconnect(&grower.leaf_user_id).await.0, 204);
        assert!(w.secret(&grower.leaf_user_id).await.disconnected());
    }

    // `POST /connections`, and a message without `reason`: both are the grower's own request.
    let (status, body) = w.connect_now(&by_api.leaf_user_id, false).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (201, Some("connected")),
        "{body}"
    );
    let failures = w.send(&[connect_body(&by_queue.leaf_user_id, false)]).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        outcomes(&w.connect, &by_queue.leaf_user_id)
            .last()
            .map(String::as_str),
        Some("connected")
    );

    for grower in [&by_api, &by_queue] {
        let secret = w.secret(&grower.leaf_user_id).await;
        assert!(
            secret.lifecycle_tags().is_empty(),
            "the mark is cleared: {secret:?}"
        );
        let held = w
            .bed
            .standin
            .credential(&grower.leaf_user_id)
            .expect("credentials");
        assert_eq!(held.status, "OK");
    }
    // The next sweep checks both again.
    let got = w.sweep().await;
    assert_eq!(got, summary(&[("checked", 2), ("healthy", 2)]), "{got}");
    assert!(w.queued(0).await.is_empty());
    let (_, body) = w.health(&by_api.leaf_user_id).await;
    assert_eq!(body["health"], "healthy", "{body}");
    w.assert_no_leaks();
}

/// The mark is written after Leaf answered: if Secrets Manager refuses the tag, the grower is
/// still disconnected at Leaf and the caller still gets the answer Leaf gave.
#[tokio::test]
async fn a_tag_write_that_fails_never_fails_the_disconnect() {
    let bed = Bed::start().await;
    let proxy = AwsProxy::start(&moto::moto_endpoint()).await;
    let connect = bed
        .run("connect", &[("AWS_ENDPOINT_URL", &proxy.endpoint())])
        .await;
    let connected = bed.add_grower().await;
    bed.standin.set_credential(&connected.leaf_user_id, "OK");
    let never_connected = bed.add_grower().await;
    proxy.inject("secretsmanager.TagResource", AwsFault::Unavailable, 100);

    let (status, body) = api_response(
        &bed.invoke(&connect, disconnect_api_event(&connected.leaf_user_id))
            .await,
    );
    assert_eq!(status, 204, "{body}");
    assert!(bed.standin.credential(&connected.leaf_user_id).is_none());
    let (status, body) = api_response(
        &bed.invoke(&connect, disconnect_api_event(&never_connected.leaf_user_id))
            .await,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_connected")),
        "{body}"
    );
    assert!(
        proxy.calls("secretsmanager.TagResource") >= 2,
        "each disconnect tried to mark the grower"
    );
    bed.assert_no_leaks(&[&connect.function]);
}
