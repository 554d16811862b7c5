//! Never less than before, and never a lost repair: no DELETE unless a POST still fits in the
//! deadline; once deleted, every POST failure goes back to the queue (or asks the caller to try
//! again); configuration failures go back to the queue too, so they reach the DLQ and its alarm.

use std::time::Duration;

use testbed::aws_proxy::{AwsFault, AwsProxy};
use testbed::bed::{Bed, Running, api_response, batch_failures, connect_api_event, connect_body, sqs_event};
use testbed::queue::repair_body;
use testbed::{Fault, Route, moto};

/// A Leaf 400 on the POST that follows a DELETE: through SQS a batch item failure, and the
/// redelivery (the fault gone) attaches credentials again; through the API a 503 to retry.
#[tokio::test]
async fn a_post_failure_after_the_delete_is_retried_until_the_grower_is_connected() {
    let bed = Bed::start().await;
    let connect = bed.run("connect", &[]).await;
    let broken = bed.add_grower().await;
    bed.standin.set_credential(&broken.leaf_user_id, "INVALID");
    let forced = bed.add_grower().await;
    bed.standin.set_credential(&forced.leaf_user_id, "OK");
    let cases = [
        (&broken, repair_body(&broken.leaf_user_id, false, "INVALID")),
        (&forced, connect_body(&forced.leaf_user_id, true)),
    ];
    for (deleted, (grower, body)) in (1..).zip(cases) {
        let id = &grower.leaf_user_id;
        bed.standin
            .inject(Route::LeafPostCredentials, Fault::Status(400), 1);
        let event = sqs_event(std::slice::from_ref(&body));

        let first = batch_failures(&bed.invoke(&connect, event.clone()).await);
        assert_eq!(first, vec!["m0".to_owned()], "{body}: back to the queue");
        assert_eq!(bed.standin.count(Route::LeafDeleteCredentials), deleted, "{body}");
        assert_eq!(
            bed.standin.credential(id),
            None,
            "{body}: deleted, not yet replaced"
        );

        let again = batch_failures(&bed.invoke(&connect, event).await);
        assert!(again.is_empty(), "{body}: {again:?}");
        assert_eq!(bed.standin.credential(id).expect("credentials").status, "OK");
    }

    // Through the API: a 503 the caller can retry, then the retry connects.
    let by_api = bed.add_grower().await;
    let id = &by_api.leaf_user_id;
    bed.standin.set_credential(id, "OK");
    bed.standin
        .inject(Route::LeafPostCredentials, Fault::Status(400), 1);
    let (status, body) = api_response(&bed.invoke(&connect, connect_api_event(id, true)).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("replacement_pending")),
        "{body}"
    );
    assert_eq!(bed.standin.credential(id), None);
    let (status, body) = api_response(&bed.invoke(&connect, connect_api_event(id, true)).await);
    assert_eq!(
        (status, body["outcome"].as_str()),
        (201, Some("connected")),
        "{body}"
    );
    assert_eq!(bed.standin.conflicts(), 0, "no duplicate POST");
    bed.assert_no_leaks(&[&connect.function]);
}

/// Stara answers within the attempt timeout, but so slowly that a POST (one attempt, 2 s, plus
/// a 1 s margin) no longer fits before the deadline (4 s): the old credentials stay untouched
/// and the request fails retryably. The deadline is UPSTREAM_BUDGET_MS, or Lambda's own.
#[tokio::test]
async fn no_delete_without_time_left_for_the_post() {
    // Which deadline binds: the budget (4 s), or Lambda's (4.3 s less the function's 300 ms
    // response margin) under a budget of 25 s.
    let settings = [
        ("UPSTREAM_BUDGET_MS", "4000", None),
        ("Lambda's deadline", "25000", Some(Duration::from_millis(4300))),
    ];
    for (deadline, budget, function_timeout) in settings {
        let bed = Bed::start().await;
        let env = [("HTTP_TIMEOUT_MS", "2000"), ("UPSTREAM_BUDGET_MS", budget)];
        let connect = bed.run("connect", &env).await;
        if let Some(function_timeout) = function_timeout {
            connect.runtime.set_function_timeout(function_timeout);
        }
        let api = bed.add_grower().await;
        let queued = bed.add_grower().await;
        for grower in [&api, &queued] {
            bed.standin.set_credential(&grower.leaf_user_id, "INVALID");
        }
        let old = bed.standin.credential(&api.leaf_user_id);
        let slow_stara = || {
            bed.standin
                .inject(Route::StaraAuth, Fault::Latency(Duration::from_millis(1600)), 1)
        };

        slow_stara();
        let (status, body) = api_response(
            &bed.invoke(&connect, connect_api_event(&api.leaf_user_id, false))
                .await,
        );
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("replacement_deferred")),
            "{deadline}: {body}"
        );
        slow_stara();
        let failures = deliver(&bed, &connect, &queued.leaf_user_id).await;
        assert_eq!(failures, vec!["m0".to_owned()], "{deadline}");

        assert_eq!(
            bed.standin.count(Route::StaraAuth),
            2,
            "{deadline}: Stara answered"
        );
        assert_eq!(bed.standin.count(Route::LeafDeleteCredentials), 0, "{deadline}");
        assert_eq!(bed.standin.count(Route::LeafPostCredentials), 0, "{deadline}");
        assert_eq!(bed.standin.credential(&api.leaf_user_id), old, "{deadline}");

        // With Stara at its usual speed the same settings leave room: the repair goes through.
        let (status, body) = api_response(
            &bed.invoke(&connect, connect_api_event(&api.leaf_user_id, false))
                .await,
        );
        assert_eq!(
            (status, body["outcome"].as_str()),
            (201, Some("reconnected")),
            "{deadline}: {body}"
        );
        assert!(deliver(&bed, &connect, &queued.leaf_user_id).await.is_empty());
        bed.assert_no_leaks(&[&connect.function]);
    }
}

async fn deliver(bed: &Bed, connect: &Running, id: &str) -> Vec<String> {
    let event = sqs_event(&[repair_body(id, false, "INVALID")]);
    batch_failures(&bed.invoke(connect, event).await)
}

/// A deployment fault: the Leaf owner's login refused, the Leaf owner's secret missing, or
/// Secrets Manager denying the read. The API says so (500); a queued connect goes back to the
/// queue, to reach the DLQ after maxReceiveCount instead of vanishing from the queue.
#[tokio::test]
async fn configuration_failures_go_back_to_the_queue() {
    #[derive(Debug, Clone, Copy)]
    enum Broken {
        OwnerRefused,
        OwnerSecretMissing,
        AccessDenied,
    }
    for broken in [
        Broken::OwnerRefused,
        Broken::OwnerSecretMissing,
        Broken::AccessDenied,
    ] {
        let bed = Bed::start().await;
        let proxy = AwsProxy::start(&moto::moto_endpoint()).await;
        let missing = format!("{}-missing", bed.leaf_secret_id);
        let mut env = vec![("AWS_ENDPOINT_URL", proxy.endpoint())];
        match broken {
            // Leaf now wants another password than the one in LEAF_SECRET_ID.
            Broken::OwnerRefused => {
                let password = format!("rotated-{}", uuid::Uuid::new_v4().simple());
                bed.standin.set_leaf_owner("owner@example.com", &password);
            }
            Broken::OwnerSecretMissing => env.push(("LEAF_SECRET_ID", missing)),
            Broken::AccessDenied => {
                proxy.inject("secretsmanager.GetSecretValue", AwsFault::AccessDenied, 100)
            }
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let connect = bed.run("connect", &env).await;
        let grower = bed.add_grower().await;
        let id = &grower.leaf_user_id;

        let (status, body) = api_response(&bed.invoke(&connect, connect_api_event(id, false)).await);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (500, Some("configuration_error")),
            "{broken:?}: {body}"
        );
        let failures = batch_failures(&bed.invoke(&connect, sqs_event(&[connect_body(id, false)])).await);
        assert_eq!(failures, vec!["m0".to_owned()], "{broken:?}");
        let repair = sqs_event(&[repair_body(id, false, "missing")]);
        let failures = batch_failures(&bed.invoke(&connect, repair).await);
        assert_eq!(failures, vec!["m0".to_owned()], "{broken:?}: a repair too");

        assert_eq!(bed.standin.count(Route::LeafPostCredentials), 0, "{broken:?}");
        assert_eq!(bed.standin.count(Route::StaraAuth), 0, "{broken:?}");
        bed.assert_no_leaks(&[&connect.function]);
    }
}
