//! Single-invocation mode (no `VERIFY_QUEUE_URL`) when the growers outnumber the time: the run
//! stops starting checks at its deadline, answers before the invocation's deadline, and says how
//! many growers it left unchecked, in its answer, its summary line and its metrics.

use std::time::Duration;

use testbed::Route;
use testbed::bed::Bed;
use testbed::load_event;

use super::Kind::{Disconnected, Healthy, LoginRejected};
use super::seed;

#[tokio::test]
async fn a_sweep_cut_short_by_its_deadline_answers_in_time_and_counts_the_unchecked() {
    let bed = Bed::start().await;
    // Two checks at a time of 50 ms each: about 40 checks a second, for 90 growers.
    bed.standin.set_latency(Duration::from_millis(50));
    let running = bed
        .run(
            "verify",
            &[("VERIFY_CONCURRENCY", "2"), testbed::moto::PATIENT_SDK],
        )
        .await;
    // 4 s: 1 s to start checks, then the 3 s finish margin.
    let timeout = Duration::from_secs(4);
    running.runtime.set_function_timeout(timeout);
    running.runtime.set_invoke_timeout(Duration::from_secs(30));
    seed(&bed, &[(Healthy, 90), (Disconnected, 5), (LoginRejected, 5)]).await;

    let invocation = bed
        .invoke(&running, load_event("verify-schedule-rule.json"))
        .await;
    // The emulator does not stop a function at its deadline; Lambda would have.
    assert!(
        invocation.elapsed < timeout,
        "answered {:?} after the invocation began, past its {timeout:?} timeout",
        invocation.elapsed
    );
    let run_id = invocation.request_id.clone();
    let summary = invocation.expect_ok();
    let count = |name: &str| {
        summary[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {summary}"))
    };
    let (checked, unchecked) = (count("checked"), count("unchecked"));
    assert!(checked > 0 && unchecked > 0, "{summary}");
    assert_eq!(
        checked + unchecked,
        90,
        "every listed grower is checked or unchecked: {summary}"
    );
    assert_eq!(
        [
            count("healthy"),
            count("errors"),
            count("disconnected"),
            count("loginRejected")
        ],
        [checked, 0, 5, 5],
        "time running out is no error: {summary}"
    );
    // Checks in flight when the deadline passes are cut short and counted as unchecked: at
    // most one per concurrent slot asked Leaf without a verdict.
    let asked = bed.standin.count(Route::LeafGetCredentials) as u64;
    assert!(
        (checked..=checked + 2).contains(&asked),
        "Leaf asked {asked} times for {checked} checks: {summary}"
    );

    let logs = running.function.log_json();
    let finished: Vec<_> = logs
        .iter()
        .filter(|l| l["message"] == "verify run finished")
        .collect();
    assert_eq!(finished.len(), 1, "{logs:?}");
    let line = finished[0];
    assert_eq!(
        (
            line["runId"].as_str(),
            line["checked"].as_u64(),
            line["unchecked"].as_u64(),
            line["listingComplete"].as_bool()
        ),
        (Some(run_id.as_str()), Some(checked), Some(unchecked), Some(true)),
        "{line}"
    );
    let emf = logs
        .iter()
        .find(|l| l["Unchecked"].is_number() && l["_aws"].is_object())
        .expect("the run's metrics");
    assert_eq!(emf["Unchecked"].as_u64(), Some(unchecked), "{emf}");
    bed.assert_no_leaks(&[&running.function]);
}
