//! Scheduled verify runs: the summary over a mix of connections, repairs queued and carried out
//! by connect until every connection is healthy again, auto repair off, a Leaf failure mid-run,
//! bad settings, and a thousand growers.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use testbed::bed::{Bed, api_response, batch_failures};
use testbed::queue::sqs_event_of;
use testbed::{Fault, Route, moto};

use super::{grower, scheduled_run, summary, verify_api_event};

#[tokio::test]
async fn a_scheduled_run_over_a_mix_gives_the_right_summary() {
    let bed = Bed::start().await;
    // No CONNECT_QUEUE_URL: nothing is repaired, only counted.
    let running = bed.run("verify", &[testbed::moto::PATIENT_SDK]).await;
    for _ in 0..3 {
        grower(&bed, Some("OK")).await;
    }
    for _ in 0..2 {
        grower(&bed, Some("INVALID")).await;
    }
    for _ in 0..2 {
        grower(&bed, None).await;
    }
    grower(&bed, Some("PROCESSING")).await;
    // A secret under the prefix that names no grower is an error (checked, never queued).
    moto::put_secret(
        &format!("{}not-a-uuid", bed.grower_prefix),
        &json!({"login": "x", "password": "y-123456"}),
    )
    .await;
    // A grower whose Leaf user does not exist (any more) is an error, never "missing".
    let stranger = uuid::Uuid::new_v4();
    moto::put_secret(
        &format!("{}{stranger}", bed.grower_prefix),
        &json!({"login": "gone", "password": "gone-pw-1"}),
    )
    .await;

    for event in ["verify-schedule-rule.json", "verify-schedule-scheduler.json"] {
        let (got, _) = scheduled_run(&bed, &running, event).await;
        assert_eq!(got, summary(10, 3, 2, 2, 1, 2, 0), "{event}");
    }
    let finished = running
        .function
        .log_json()
        .into_iter()
        .find(|l| l["message"] == "verify run finished")
        .expect("a summary log line");
    assert_eq!(
        (finished["checked"].as_u64(), finished["unhealthy"].as_u64()),
        (Some(10), Some(2))
    );
    let unknown = running
        .function
        .log_json()
        .into_iter()
        .find(|l| l["code"] == "leaf_user_not_found")
        .expect("the unknown user is logged");
    assert_eq!(unknown["leafUserId"], stranger.to_string());
    let emf = running
        .function
        .log_json()
        .into_iter()
        .find(|l| l["Checked"].is_number())
        .expect("an EMF line with the run's counts");
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "StaraConnect");
    assert_eq!(
        (
            emf["Function"].as_str(),
            emf["Healthy"].as_u64(),
            emf["Missing"].as_u64()
        ),
        (Some("verify"), Some(3), Some(2))
    );
    assert!(
        running
            .function
            .log_json()
            .iter()
            .any(|l| l["code"] == "grower_secret_misnamed")
    );
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn repairs_are_queued_and_connect_makes_every_connection_healthy_again() {
    let bed = Bed::start().await;
    let queue = moto::create_fifo_queue(&format!(
        "stara-connect-requests-{}.fifo",
        uuid::Uuid::new_v4().simple()
    ))
    .await;
    let verify = bed
        .run(
            "verify",
            &[("CONNECT_QUEUE_URL", queue.as_str()), testbed::moto::PATIENT_SDK],
        )
        .await;
    let connect = bed.run("connect", &[]).await;

    let healthy = grower(&bed, Some("OK")).await;
    bed.standin.add_event(&healthy.leaf_user_id, 200);
    let invalid = [
        grower(&bed, Some("INVALID")).await,
        grower(&bed, Some("INVALID")).await,
    ];
    let expired = grower(&bed, Some("EXPIRED")).await;
    let missing = [grower(&bed, None).await, grower(&bed, None).await];
    let revoked = grower(&bed, Some("OK")).await;
    bed.standin.add_event(&revoked.leaf_user_id, 401);

    // Detect.
    let (got, run_id) = scheduled_run(&bed, &verify, "verify-schedule-scheduler.json").await;
    assert_eq!(got, summary(7, 1, 4, 2, 0, 0, 6));

    // Queue: one message per broken grower, its own message group, deduplicated per run.
    let messages = moto::drain_queue(&queue, 6, Duration::from_secs(10)).await;
    assert_eq!(messages.len(), 6);
    let mut expected: Vec<(String, bool, String)> = vec![
        (invalid[0].leaf_user_id.clone(), false, "INVALID".into()),
        (invalid[1].leaf_user_id.clone(), false, "INVALID".into()),
        (expired.leaf_user_id.clone(), false, "EXPIRED".into()),
        (missing[0].leaf_user_id.clone(), false, "missing".into()),
        (missing[1].leaf_user_id.clone(), false, "missing".into()),
        (revoked.leaf_user_id.clone(), true, "event_401".into()),
    ];
    expected.sort();
    let mut received: Vec<(String, bool, String)> = Vec::new();
    for m in &messages {
        use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
        let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
        let id = body["leafUserId"].as_str().unwrap().to_owned();
        assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
        let attributes = m.attributes().unwrap();
        assert_eq!(attributes.get(&Attr::MessageGroupId), Some(&id));
        assert_eq!(
            attributes.get(&Attr::MessageDeduplicationId),
            Some(&format!("{id}-{run_id}"))
        );
        received.push((
            id,
            body["force"].as_bool().unwrap(),
            body["reason"].as_str().unwrap().to_owned(),
        ));
    }
    received.sort();
    assert_eq!(received, expected);

    // Repair: connect takes the messages as its SQS trigger would hand them over.
    let invocation = bed.invoke(&connect, sqs_event_of(&messages)).await;
    assert!(batch_failures(&invocation).is_empty(), "{:?}", invocation.outcome);
    let emf: Vec<Value> = connect
        .function
        .log_json()
        .into_iter()
        .filter(|l| l["Connects"] == 1)
        .collect();
    assert_eq!(emf.len(), 6, "one metric line per connect");
    assert!(
        emf.iter()
            .all(|l| l["Function"] == "connect" && l["UpstreamLatency"].is_number())
    );
    assert_eq!(emf.iter().filter(|l| l["Outcome"] == "reconnected").count(), 4);
    assert_eq!(emf.iter().filter(|l| l["Outcome"] == "connected").count(), 2);

    // Verify again: the loop is closed.
    let (got, _) = scheduled_run(&bed, &verify, "verify-schedule-rule.json").await;
    assert_eq!(got, summary(7, 7, 0, 0, 0, 0, 0));
    assert!(
        moto::drain_queue(&queue, 0, Duration::from_millis(500))
            .await
            .is_empty(),
        "nothing more to repair"
    );
    for grower in invalid.iter().chain(&missing).chain([&expired, &revoked]) {
        let (_, body) = api_response(&bed.invoke(&verify, verify_api_event(&grower.leaf_user_id)).await);
        assert_eq!(body["health"], "healthy", "{body}");
    }
    bed.assert_no_leaks(&[&verify.function, &connect.function]);
}

#[tokio::test]
async fn with_auto_repair_off_nothing_is_queued() {
    let bed = Bed::start().await;
    let queue = moto::create_fifo_queue(&format!(
        "stara-connect-off-{}.fifo",
        uuid::Uuid::new_v4().simple()
    ))
    .await;
    let running = bed
        .run(
            "verify",
            &[("CONNECT_QUEUE_URL", queue.as_str()), ("AUTO_REPAIR", "off")],
        )
        .await;
    grower(&bed, Some("INVALID")).await;
    grower(&bed, None).await;
    let (got, _) = scheduled_run(&bed, &running, "verify-schedule-rule.json").await;
    assert_eq!(got, summary(2, 0, 1, 1, 0, 0, 0));
    assert!(
        moto::drain_queue(&queue, 0, Duration::from_millis(500))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn one_leaf_failure_mid_run_is_an_error_and_the_rest_complete() {
    let bed = Bed::start().await;
    let queue = moto::create_fifo_queue(&format!(
        "stara-connect-fail-{}.fifo",
        uuid::Uuid::new_v4().simple()
    ))
    .await;
    let running = bed
        .run(
            "verify",
            &[("CONNECT_QUEUE_URL", queue.as_str()), ("VERIFY_CONCURRENCY", "2")],
        )
        .await;
    for _ in 0..8 {
        grower(&bed, Some("OK")).await;
    }
    grower(&bed, None).await;
    // The fifth credentials lookup fails with a 500 (not retried); the others answer normally.
    bed.standin
        .inject(Route::LeafGetCredentials, Fault::Latency(Duration::ZERO), 4);
    bed.standin
        .inject(Route::LeafGetCredentials, Fault::Status(500), 1);

    let (got, _) = scheduled_run(&bed, &running, "verify-schedule-rule.json").await;
    // Which grower met the failure depends on scheduling; the counts around it do not.
    let healthy = got["healthy"].as_u64().unwrap();
    let missing = got["missing"].as_u64().unwrap();
    assert_eq!(
        (got["checked"].as_u64(), got["errors"].as_u64(), healthy + missing),
        (Some(9), Some(1), 8),
        "{got}"
    );
    assert_eq!(got["repairsQueued"].as_u64(), Some(missing), "{got}");
    let failed = running
        .function
        .log_json()
        .into_iter()
        .find(|l| l["code"] == "upstream_bad_gateway")
        .expect("the failure is logged");
    assert_eq!(failed["message"], "verify failed for this grower");
    assert_eq!(
        moto::drain_queue(&queue, missing as usize, Duration::from_secs(5))
            .await
            .len() as u64,
        missing
    );
    assert_eq!(bed.standin.pending_faults(Route::LeafGetCredentials), 0);
    assert_eq!(
        bed.standin.count(Route::LeafGetCredentials),
        9,
        "every grower was looked at once"
    );
}

#[tokio::test]
async fn bad_verify_settings_stop_the_function_at_start() {
    let bed = Bed::start().await;
    for (name, value) in [
        ("VERIFY_CONCURRENCY", "0"),
        ("AUTO_REPAIR", "maybe"),
        ("CONNECT_QUEUE_URL", "not-a-queue-url"),
    ] {
        let mut running = bed.run("verify", &[(name, value)]).await;
        let status = running
            .function
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("the function exits");
        assert!(!status.success(), "{name}");
        let logs = running.function.logs().join("\n");
        assert!(
            logs.contains("cannot start") && logs.contains(name),
            "{name}: {logs}"
        );
        assert_eq!(running.runtime.polls(), 0, "{name}: it never took an invocation");
    }
}

/// Stores `n` grower login secrets under the bed's prefix, 16 at a time, with one client.
async fn seed_growers(bed: &Bed, n: usize, status: &str) -> Vec<String> {
    let client = moto::secrets_client().await;
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    futures_util::stream::iter(ids.clone())
        .map(|id| {
            let client = client.clone();
            let name = format!("{}{id}", bed.grower_prefix);
            bed.standin.set_credential(&id, status);
            async move {
                client
                    .create_secret()
                    .name(name)
                    .secret_string(r#"{"login":"seeded","password":"seeded-pw-0"}"#)
                    .send()
                    .await
                    .expect("create_secret");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    ids
}

#[tokio::test]
async fn a_run_over_a_thousand_growers_completes() {
    let bed = Bed::start().await;
    let running = bed.run("verify", &[testbed::moto::PATIENT_SDK]).await;
    running.runtime.set_function_timeout(Duration::from_secs(300));
    running.runtime.set_invoke_timeout(Duration::from_secs(300));
    seed_growers(&bed, 1000, "OK").await;
    let started = Instant::now();
    let (got, _) = scheduled_run(&bed, &running, "verify-schedule-rule.json").await;
    eprintln!(
        "1,000 growers verified in {:?}, peak RSS {:?} kB",
        started.elapsed(),
        running.function.peak_rss_kb()
    );
    assert_eq!(got, summary(1000, 1000, 0, 0, 0, 0, 0));
    assert_eq!(bed.standin.count(Route::LeafGetCredentials), 1000);
}
