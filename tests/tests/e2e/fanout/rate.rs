//! The load on Leaf: at most `LEAF_MAX_RPS` requests a second per process, and a 429 storm
//! that slows every process down without losing the run.
//!
//! Rates are measured at the stand-in over sliding 1 s windows. The limiter spaces requests
//! `1/LEAF_MAX_RPS` apart, so a window that opens on a request can hold one more than the rate:
//! `LEAF_MAX_RPS + 1` a process. The stand-in stamps a request when its thread (one of two
//! cores, shared with the functions, moto and another test) gets to it, so a late stamp can
//! bunch with the next one: the bound allows 50 ms of that a process, `LEAF_MAX_RPS / 20`.

use std::collections::HashSet;
use std::time::Duration;

use testbed::Route;
use testbed::bed::Bed;
use testbed::load_event;
use testbed::queue::{connect_queue, queued, users_of};
use testbed::standin::{count_between, peak_in_window};

use super::Kind::{Healthy, Missing, Unhealthy};
use super::{Kind, assert_each_checked_once, fanout_env, mapping, seed, verify_queue};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn leaf_sees_at_most_leaf_max_rps_per_process() {
    const RATE: usize = 50;
    const PROCESSES: usize = 2;
    let bed = Bed::start().await;
    bed.standin.set_latency(Duration::from_millis(5));
    let verify_queue = verify_queue().await;
    let connect_queue = connect_queue("rate").await;
    let mut env = fanout_env(&verify_queue, &connect_queue);
    let rate = RATE.to_string();
    env.push(("LEAF_MAX_RPS", &rate));
    let fleet = bed.run_fleet("verify", PROCESSES, &env).await;
    // Two check messages, one per process, two Leaf requests a check.
    let growers = seed(&bed, &[(Healthy, 180), (Unhealthy, 20)]).await;
    bed.invoke(&fleet[0], load_event("verify-schedule-rule.json"))
        .await
        .expect_ok();
    let drained = mapping(PROCESSES, 1).drain(&bed, &fleet[0], &verify_queue).await;
    assert!(!drained.timed_out && drained.failed().is_empty(), "{drained:?}");

    let times = bed.standin.leaf_request_times();
    let peak = peak_in_window(&times, SECOND);
    let bound = (RATE + 1 + RATE.div_ceil(20)) * PROCESSES;
    eprintln!(
        "{} Leaf requests in {:?}, peak {peak} in 1 s, bound {bound}",
        times.len(),
        drained.elapsed
    );
    // Unpaced, these requests would all fit in well under a second.
    assert!(
        times.len() > 2 * bound,
        "too few requests to test the bound: {}",
        times.len()
    );
    assert!(peak <= bound, "{peak} Leaf requests within 1 s, over {bound}");
    assert_each_checked_once(&bed, &growers.of(Kind::checked));
}

#[tokio::test]
async fn a_429_storm_slows_the_fleet_down_and_the_run_still_completes() {
    const PROCESSES: usize = 2;
    let bed = Bed::start().await;
    bed.standin.set_latency(Duration::from_millis(5));
    let verify_queue = verify_queue().await;
    let connect_queue = connect_queue("storm").await;
    let mut env = fanout_env(&verify_queue, &connect_queue);
    // One attempt a request: a refused lookup fails its check, and its message with it. (With
    // retries, the pause after each 429 lets one request through per process and second, and
    // which one is refused again is chance.)
    env.extend([("LEAF_MAX_RPS", "100"), ("RETRY_MAX_ATTEMPTS", "1")]);
    let fleet = bed.run_fleet("verify", PROCESSES, &env).await;
    let growers = seed(&bed, &[(Healthy, 170), (Unhealthy, 20), (Missing, 10)]).await;
    // After 100 lookups, Leaf refuses every lookup for 1.5 s, asking for a second's pause.
    let lookups = [Route::LeafGetCredentials, Route::LeafEvents, Route::LeafUser];
    let lasting = Duration::from_millis(1500);
    bed.standin.storm_429(&lookups, 100, lasting, 1);
    bed.invoke(&fleet[0], load_event("verify-schedule-rule.json"))
        .await
        .expect_ok();
    let drained = mapping(PROCESSES, 1).drain(&bed, &fleet[0], &verify_queue).await;
    assert!(!drained.timed_out && drained.errors.is_empty(), "{drained:?}");

    // Slower in the storm than just before it.
    let storm = bed.standin.storm().expect("the storm began");
    let times = bed.standin.leaf_request_times();
    let before = count_between(&times, storm.began - lasting / 3, storm.began) as f64 * 3.0;
    let during = count_between(&times, storm.began, storm.ended) as f64;
    let per_second = |count: f64| count / lasting.as_secs_f64();
    eprintln!(
        "Leaf requests/s: {:.0} just before the storm, {:.1} in it ({} refused); run {:?}",
        per_second(before),
        per_second(during),
        storm.refused,
        drained.elapsed
    );
    assert!(storm.refused > 0);
    assert!(
        during <= before / 4.0,
        "{during} requests in the {lasting:?} storm against {before:.0} in as long before it"
    );

    // Failed check messages came back and went through.
    let failed: HashSet<&str> = drained.failed().iter().map(|d| d.message_id.as_str()).collect();
    assert!(
        !failed.is_empty(),
        "no check message outlasted its retries: {drained:?}"
    );
    for id in &failed {
        let last = drained
            .deliveries
            .iter()
            .rfind(|d| d.message_id == *id)
            .expect("delivered");
        assert!(!last.failed && last.receive_count > 1, "{last:?}");
    }
    assert!(!drained.redelivered().is_empty());

    // Every grower was looked up at least once outside the storm (answered, not refused).
    let answered: HashSet<String> = bed
        .standin
        .requests(Route::LeafGetCredentials)
        .into_iter()
        .filter(|r| r.at < storm.began || r.at >= storm.ended)
        .filter_map(|r| r.path.split('/').nth(5).map(str::to_owned))
        .collect();
    let checked = growers.of(Kind::checked);
    let missed: Vec<&String> = checked.iter().filter(|id| !answered.contains(*id)).collect();
    assert!(missed.is_empty(), "never answered: {missed:?}");
    // Every broken one repaired once (a repeated check repeats the deduplicated repair).
    let broken = growers.of(Kind::broken);
    let mut repaired = users_of(&queued(&connect_queue, broken.len()).await);
    repaired.sort();
    assert_eq!(repaired, broken);
}
