//! A listing cut short by its deadline: the scheduled invocation lists what it can, hands the
//! rest on in a `list` message, and the consumers list on from it; every grower is checked once.

use std::collections::BTreeSet;
use std::time::Duration;

use testbed::bed::{Bed, Running};
use testbed::load_event;
use testbed::queue::{connect_queue, queued, users_of};

use super::Kind::{Healthy, Missing, Unhealthy};
use testbed::run_lines::{lines, sum};

use super::{Kind, assert_each_checked_once, fanout_env, mapping, seed, verify_queue};

#[tokio::test]
async fn a_listing_cut_short_by_its_deadline_goes_on_from_a_list_message() {
    let bed = Bed::start().await;
    bed.standin.set_latency(Duration::from_millis(5));
    let verify_queue = verify_queue().await;
    let connect_queue = connect_queue("continued").await;
    let env = fanout_env(&verify_queue, &connect_queue);
    // The scheduled invocation runs on its own emulator with a 3 s timeout: all of it is the
    // finish margin, so its deadline for starting a page has passed from the outset. It still
    // lists one page (a run always moves on) and must hand the rest on.
    let lister = bed.run("verify", &env).await;
    lister.runtime.set_function_timeout(Duration::from_secs(3));
    let consumers = bed.run_fleet("verify", 2, &env).await;
    // Three ListSecrets pages of 100.
    let growers = seed(&bed, &[(Healthy, 200), (Unhealthy, 30), (Missing, 20)]).await;

    let listing = bed
        .invoke(&lister, load_event("verify-schedule-scheduler.json"))
        .await;
    assert!(
        listing.elapsed < Duration::from_secs(3),
        "answered after its deadline: {listing:?}"
    );
    let run_id = listing.request_id.clone();
    let report = listing.expect_ok();
    assert_eq!(
        (
            report["listed"].as_u64(),
            report["messages"].as_u64(),
            report["continued"].as_bool()
        ),
        (Some(100), Some(1), Some(true)),
        "{report}"
    );

    // Batches of up to ten: the first one may hold the check and the list message together.
    let drained = mapping(2, 10).drain(&bed, &consumers[0], &verify_queue).await;
    drained.assert_clean();
    let lists = drained.of_type("list");
    assert_eq!(lists.len(), 1, "one continuation: {drained:?}");
    let continuation = lists[0].json();
    assert_eq!(continuation["runId"], run_id.as_str(), "{continuation}");
    assert!(
        continuation["nextToken"].as_str().is_some_and(|t| !t.is_empty()),
        "{continuation}"
    );
    let checks = drained.of_type("check");
    assert_eq!(checks.len(), 3, "{drained:?}");
    let mut carried = Vec::new();
    for delivery in &checks {
        let body = delivery.json();
        assert_eq!(body["runId"], run_id.as_str(), "the run id goes on: {body}");
        let growers = body["growers"].as_array().expect("growers");
        carried.extend(
            growers
                .iter()
                .filter_map(|g| g["leafUserId"].as_str().map(str::to_owned)),
        );
    }
    let distinct: BTreeSet<&String> = carried.iter().collect();
    assert_eq!(
        (carried.len(), distinct.len()),
        (250, 250),
        "every grower in one message"
    );

    // The two listings (the schedule's and the continuation's) cover the fleet once.
    let everyone: Vec<&Running> = std::iter::once(&lister).chain(&consumers).collect();
    let listings = lines(&everyone, "verify listing finished");
    assert_eq!(listings.len(), 2, "{listings:?}");
    assert!(
        listings.iter().all(|l| l["runId"] == run_id.as_str()),
        "{listings:?}"
    );
    assert_eq!(sum(&listings, "listed"), 250);
    let continued: Vec<bool> = listings.iter().filter_map(|l| l["continued"].as_bool()).collect();
    assert_eq!(continued, [true, false], "{listings:?}");

    assert_each_checked_once(&bed, &growers.of(Kind::checked));
    let batches = lines(&everyone, "verify batch finished");
    assert!(
        batches.iter().all(|l| l["runId"] == run_id.as_str()),
        "{batches:?}"
    );
    let counted = ["checked", "healthy", "unchecked", "errors", "repairsQueued"].map(|f| sum(&batches, f));
    assert_eq!(counted, [250, 200, 0, 0, 50]);
    let broken = growers.of(Kind::broken);
    let mut repaired = users_of(&queued(&connect_queue, broken.len()).await);
    repaired.sort();
    assert_eq!(repaired, broken);
    let functions: Vec<_> = everyone.iter().map(|p| &p.function).collect();
    bed.assert_no_leaks(&functions);
}
