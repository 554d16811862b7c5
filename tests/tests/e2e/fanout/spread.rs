//! 300 growers of every kind, listed by one scheduled invocation and checked by three verify
//! processes: exactly the broken ones repaired, once each; the rest left alone; every grower
//! that is checked at all checked exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
use serde_json::Value;
use testbed::bed::{Bed, Running};
use testbed::queue::{connect_queue, queued, users_of};
use testbed::{Route, load_event};

use super::Kind::{Disconnected, Healthy, LoginRejected, Missing, Unhealthy};
use testbed::run_lines::{BATCH_FIELDS, lines, sums};

use super::{Kind, assert_each_checked_once, fanout_env, mapping, seed, verify_queue};

#[tokio::test]
async fn three_processes_check_300_growers_and_repair_exactly_the_broken_ones() {
    let bed = Bed::start().await;
    bed.standin.set_latency(Duration::from_millis(5));
    let verify_queue = verify_queue().await;
    let connect_queue = connect_queue("fanout").await;
    let fleet = bed
        .run_fleet("verify", 3, &fanout_env(&verify_queue, &connect_queue))
        .await;
    let mix = [
        (Healthy, 150),
        (Unhealthy, 50),
        (Missing, 40),
        (Disconnected, 30),
        (LoginRejected, 30),
    ];
    let growers = seed(&bed, &mix).await;

    // The schedule only lists: one check message per page, no Leaf request.
    let listing = bed
        .invoke(&fleet[0], load_event("verify-schedule-scheduler.json"))
        .await;
    let run_id = listing.request_id.clone();
    let report = listing.expect_ok();
    assert_eq!(
        (
            report["runId"].as_str(),
            report["listed"].as_u64(),
            report["messages"].as_u64(),
            report["continued"].as_bool(),
            report["misnamed"].as_u64()
        ),
        (Some(run_id.as_str()), Some(300), Some(3), Some(false), Some(0)),
        "{report}"
    );
    assert_eq!(
        bed.standin.count(Route::LeafGetCredentials),
        0,
        "the listing checks nobody"
    );

    // Three pollers, one message each: three batches at once, one per process.
    let drained = mapping(3, 1).drain(&bed, &fleet[0], &verify_queue).await;
    drained.assert_clean();
    let checks = drained.of_type("check");
    assert_eq!((checks.len(), drained.deliveries.len()), (3, 3), "{drained:?}");

    // The check messages carry every grower once, with the state the listing read.
    let mut carried = Vec::new();
    for delivery in &checks {
        let body = delivery.json();
        assert_eq!(body["runId"], run_id.as_str(), "{body}");
        for grower in body["growers"].as_array().expect("growers") {
            carried.push(grower.clone());
        }
    }
    let ids: BTreeSet<&str> = carried.iter().filter_map(|g| g["leafUserId"].as_str()).collect();
    assert_eq!(
        (carried.len(), ids.len()),
        (300, 300),
        "every grower in exactly one message"
    );
    let flagged = |key: &str| -> BTreeSet<String> {
        let marked = carried.iter().filter(|g| match key {
            "disconnected" => g["disconnected"] == true,
            _ => g["rejectedVersion"].is_string() && g["rejectedVersion"] == g["currentVersion"],
        });
        marked
            .map(|g| g["leafUserId"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        flagged("disconnected"),
        growers.of(|k| k == Disconnected).into_iter().collect()
    );
    assert_eq!(
        flagged("rejected"),
        growers.of(|k| k == LoginRejected).into_iter().collect()
    );

    // Exactly the broken ones are repaired, each once, deduplicated per run.
    let broken = growers.of(Kind::broken);
    let repairs = queued(&connect_queue, broken.len()).await;
    let mut repaired = users_of(&repairs);
    repaired.sort();
    assert_eq!(repaired, broken, "the repairs queued");
    for (message, user) in repairs.iter().zip(users_of(&repairs)) {
        let dedup = message
            .attributes()
            .and_then(|a| a.get(&Attr::MessageDeduplicationId));
        assert_eq!(dedup, Some(&format!("{user}-{run_id}")));
    }
    assert_each_checked_once(&bed, &growers.of(Kind::checked));

    // The batches' summary lines add up to the run.
    let processes: Vec<&Running> = fleet.iter().collect();
    let batches = lines(&processes, "verify batch finished");
    assert!(
        batches.iter().all(|l| l["runId"] == run_id.as_str()),
        "{batches:?}"
    );
    let expected: Vec<u64> = vec![3, 240, 150, 50, 40, 0, 0, 0, 90, 0, 30, 30];
    let expected: Value = BATCH_FIELDS.iter().map(|f| f.to_string()).zip(expected).collect();
    assert_eq!(sums(&batches, &BATCH_FIELDS), expected);
    assert_eq!(growers.total(), 300);
    let per_process: Vec<usize> = fleet
        .iter()
        .map(|p| lines(&[p], "verify batch finished").len())
        .collect();
    eprintln!(
        "batches per process: {per_process:?}; drained in {:?}",
        drained.elapsed
    );
    let busy = per_process.iter().filter(|n| **n > 0).count();
    assert!(busy >= 2, "only {busy} of the three processes checked growers");

    // Each batch's metrics carry the run id as a property, never as a dimension.
    let emf: Vec<Value> = processes
        .iter()
        .flat_map(|p| p.function.log_json())
        .filter(|l| l["Checked"].is_number() && l["_aws"].is_object())
        .collect();
    assert_eq!(emf.len(), batches.len(), "one metrics line per batch line");
    for line in &emf {
        assert_eq!(line["runId"], run_id.as_str());
        let dimensions = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"].to_string();
        assert!(!dimensions.contains("runId"), "{dimensions}");
    }
    let functions: Vec<_> = fleet.iter().map(|p| &p.function).collect();
    bed.assert_no_leaks(&functions);
}
