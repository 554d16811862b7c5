//! Load: 1,000 growers connected through SQS-shaped batches while 5 % of upstream calls fail
//! transiently. Everyone ends connected, with no duplicate credential and no extra POST.
//! (`make bench` runs the same scenario on release binaries and reports time and peak RSS.)

use std::time::Instant;

use testbed::Route;
use testbed::bed::Bed;

const GROWERS: usize = 1_000;

#[tokio::test]
async fn a_thousand_connects_with_five_percent_transient_faults() {
    let bed = Bed::start().await;
    let running = bed.run("connect", &[]).await;
    let second = bed.run_beside(&running, &[]);
    let mut ids = Vec::with_capacity(GROWERS);
    for _ in 0..GROWERS {
        ids.push(bed.add_grower().await.leaf_user_id);
    }
    // About 5 % of connects meet a transient fault somewhere on their path.
    bed.inject_transient_faults(0.01);

    let started = Instant::now();
    let done = bed.deliver_until_done(&running, ids.clone(), 4).await;
    let elapsed = started.elapsed();

    let connected = ids
        .iter()
        .filter(|id| bed.standin.credential(id).is_some_and(|c| c.status == "OK"))
        .count();
    assert_eq!(connected, GROWERS);
    assert_eq!(bed.standin.conflicts(), 0, "no duplicate POST");
    let posts = bed.standin.count(Route::LeafPostCredentials);
    let post_faults = bed.standin.faults_served(Route::LeafPostCredentials);
    assert!(
        posts <= GROWERS + post_faults,
        "{posts} POSTs, {post_faults} injected POST faults"
    );
    let faults: usize = Route::ALL.iter().map(|&r| bed.standin.faults_served(r)).sum();
    assert!(
        faults >= GROWERS / 50,
        "about 5 % of connects met a fault ({faults})"
    );
    eprintln!(
        "load: {GROWERS} connects, {faults} injected faults, {} deliveries, {elapsed:?}, peak RSS {} / {} kB",
        done.deliveries,
        running.function.peak_rss_kb().unwrap_or(0),
        second.peak_rss_kb().unwrap_or(0)
    );
    bed.assert_no_leaks(&[&running.function, &second]);
}
