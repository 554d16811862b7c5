//! At-least-once delivery: SQS can hand the same message over twice, out of order, to two
//! warm instances of the function at once. Leaf's POST is not idempotent, so the connector must
//! end with exactly one credential per grower and no POST beyond what faults forced.

use testbed::bed::{Bed, Grower};
use testbed::{Fault, Route};

fn shuffled(mut ids: Vec<String>) -> Vec<String> {
    fastrand::shuffle(&mut ids);
    ids
}

async fn growers(bed: &Bed, n: usize) -> Vec<Grower> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(bed.add_grower().await);
    }
    all
}

#[tokio::test]
async fn the_same_100_messages_twice_out_of_order_on_two_instances() {
    let bed = Bed::start().await;
    let running = bed.run("connect", &[]).await;
    let second = bed.run_beside(&running, &[]);
    let growers = growers(&bed, 100).await;
    let ids: Vec<String> = growers.iter().map(|g| g.leaf_user_id.clone()).collect();
    // Transient Leaf failures on the non-idempotent step, including answers lost after the write.
    bed.standin
        .inject_randomly(Route::LeafPostCredentials, Fault::Status(503), 0.05);
    bed.standin
        .inject_randomly(Route::LeafPostCredentials, Fault::ProcessThenReset, 0.05);

    // First delivery in order, the redelivery shuffled; each one all at once on both instances.
    let all_at_once = ids.len();
    bed.deliver_until_done(&running, ids.clone(), all_at_once).await;
    bed.deliver_until_done(&running, shuffled(ids.clone()), all_at_once)
        .await;

    for grower in &growers {
        let held = bed
            .standin
            .credential(&grower.leaf_user_id)
            .expect("every grower is connected");
        assert_eq!(held.status, "OK");
    }
    let posts = bed.standin.count(Route::LeafPostCredentials);
    let faults = bed.standin.faults_served(Route::LeafPostCredentials);
    assert!(
        posts <= ids.len() + faults,
        "{posts} POSTs for {} users and {faults} injected failures",
        ids.len()
    );
    assert_eq!(
        bed.standin.conflicts(),
        0,
        "no POST for a user Leaf had already connected"
    );
    assert!(
        second.logs().iter().any(|l| l.contains("connect finished")),
        "both instances served invocations"
    );
    bed.assert_no_leaks(&[&running.function, &second]);
}

/// Worse than a FIFO queue allows: both copies of each message in flight at the same moment,
/// on two instances. Both may POST; Leaf refuses the second (409), and the loser reports the
/// winner's credentials. One credential per grower, no failure, no retry loop.
#[tokio::test]
async fn simultaneous_copies_on_two_instances_still_end_with_one_credential() {
    let bed = Bed::start().await;
    let running = bed.run("connect", &[]).await;
    let second = bed.run_beside(&running, &[]);
    let growers = growers(&bed, 20).await;
    let ids: Vec<String> = growers.iter().map(|g| g.leaf_user_id.clone()).collect();

    let mut both = ids.clone();
    both.extend(shuffled(ids.clone()));
    let failed = bed.deliver(&running, &both, both.len()).await;

    assert!(failed.is_empty(), "{failed:?}");
    for grower in &growers {
        assert_eq!(
            bed.standin
                .credential(&grower.leaf_user_id)
                .expect("connected")
                .status,
            "OK"
        );
    }
    let posts = bed.standin.count(Route::LeafPostCredentials);
    assert!(posts <= 2 * ids.len(), "{posts}");
    assert_eq!(
        posts - bed.standin.conflicts(),
        ids.len(),
        "every POST beyond the first per user was refused by Leaf"
    );
    bed.assert_no_leaks(&[&running.function, &second]);
}
