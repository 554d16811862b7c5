//! Verify's fan-out at scale (issue 12): one scheduled invocation lists 100,000 growers into the
//! verify queue, then four release `verify` processes check them, consuming the queue through
//! the test bed's event source mapping (`testbed::event_source::Mapping`), each at
//! `LEAF_MAX_RPS` = the fleet's cap ÷ 4. The AWS proxy answers `ListSecrets` from the bench's
//! own list and keeps the verify and connect queues in memory: moto's cost per call grows with
//! the secrets or messages it holds. The Leaf owner's secret is moto's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::aws_proxy::ListedSecret;
use testbed::bed::{Bed, Running};
use testbed::event_source::{Drained, Mapping};
use testbed::load_event;
use testbed::secret_state::{DISCONNECTED_TAG, LOGIN_REJECTED_TAG};
use testbed::standin::peak_in_window;

pub use figures::{ProcessFigures, SqsCalls};
use figures::{batch_totals, failures, lines, per_second, process_figures, sqs_calls};

use crate::report::Report;
use crate::world::{LIST_SECRETS, PRODUCTION_HTTP, World};

mod figures;
mod model;
mod section;

pub const GROWERS: usize = 100_000;
pub const PROCESSES: usize = 4;
/// The fleet's Leaf cap, requests/s; each process gets an equal share.
pub const FLEET_MAX_RPS: usize = 2_000;
/// High enough that the cap binds: 50 checks × 2 requests ÷ 20 ms = 5,000 requests/s a process.
pub const VERIFY_CONCURRENCY: usize = 50;
pub const REQUESTS_PER_CHECK: usize = 2;
/// The run (listing excluded) within 25 % of the floor.
pub const TARGET_RATIO: f64 = 1.25;
const BATCH_SIZE: i32 = 10;
/// Verify's timeout in template.yaml: every invocation's deadline.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(300);
const SECOND: Duration = Duration::from_secs(1);

/// How a grower stands at Leaf and in its secret's tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Healthy,
    /// `INVALID` credentials: repaired.
    Unhealthy,
    /// A Leaf user without credentials: repaired (three Leaf requests).
    Missing,
    /// Tagged disconnected: counted, not checked.
    Disconnected,
    /// Its current version tagged rejected: counted, not checked.
    LoginRejected,
}

impl Kind {
    pub fn broken(self) -> bool {
        matches!(self, Kind::Unhealthy | Kind::Missing)
    }
}

/// In every 1,000 growers: 5 unhealthy, 5 missing (one broken grower in each message of 100),
/// 1 disconnected, 1 login rejected; the rest healthy.
fn kind_of(index: usize) -> Kind {
    match index % 1000 {
        0 | 200 | 400 | 600 | 800 => Kind::Unhealthy,
        100 | 300 | 500 | 700 | 900 => Kind::Missing,
        50 => Kind::Disconnected,
        550 => Kind::LoginRejected,
        _ => Kind::Healthy,
    }
}

/// What a fan-out run measured.
pub struct Measured {
    pub growers: usize,
    pub kinds: BTreeMap<Kind, usize>,
    pub listing: Duration,
    /// The machine's 1-minute load average as the run began and as it ended.
    pub load: (f64, f64),
    pub listing_report: Value,
    pub list_pages: usize,
    /// First delivery handed to the mapping → the last batch settled.
    pub run: Duration,
    pub drained: Drained,
    pub leaf_requests: usize,
    pub leaf_auth: usize,
    pub peak_1s: usize,
    /// Requests in each whole second of the run (fixed windows from the first request).
    pub per_second: Vec<usize>,
    pub totals: Value,
    /// Per process: batch lines, peak RSS kB, CPU seconds, busy seconds (sum of batch elapsedMs).
    pub processes: Vec<ProcessFigures>,
    /// Repair messages in the connect queue.
    pub repairs: usize,
    /// "connection needs repair" lines: a repeated check repeats them.
    pub found_broken: usize,
    /// Growers whose check failed for a transient reason, by error code.
    pub transient: BTreeMap<String, usize>,
    /// SQS calls of the listing, and of the checks (the functions' repairs, the mapping's
    /// receives and deletes, its watcher's `GetQueueAttributes`).
    pub sqs_listing: SqsCalls,
    pub sqs_drain: SqsCalls,
    pub message_bytes: f64,
}

pub async fn run(world: &World, growers: usize, report: &mut Report) {
    let measured = measure(world, growers).await;
    section::write(world, &measured, report);
}

async fn measure(world: &World, growers: usize) -> Measured {
    eprintln!("bench: fan-out over {growers} growers: seeding the Leaf stand-in and the listing");
    let load_before = crate::machine::load_average();
    let bed = world.bed().await;
    let mut kinds: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    let mut listing = Vec::with_capacity(growers);
    for index in 0..growers {
        let (id, version) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
        let kind = kind_of(index);
        match kind {
            Kind::Healthy => bed.standin.set_credential(&id, "OK"),
            Kind::Unhealthy => bed.standin.set_credential(&id, "INVALID"),
            _ => bed.standin.add_leaf_user(&id),
        }
        let mut secret = ListedSecret::current(bed.secret_id(&id), version.clone());
        match kind {
            Kind::Disconnected => secret.tags.push((DISCONNECTED_TAG.into(), "true".into())),
            Kind::LoginRejected => secret.tags.push((LOGIN_REJECTED_TAG.into(), version)),
            _ => {}
        }
        listing.push(secret);
        kinds.entry(kind).or_default().push(id);
    }
    world.proxy.list_secrets_from(listing);
    let run = uuid::Uuid::new_v4().simple();
    let verify_queue = world
        .proxy
        .serve_queue(&format!("stara-connect-bench-verify-{run}"));
    let repairs_queue = world
        .proxy
        .serve_queue(&format!("stara-connect-bench-repairs-{run}.fifo"));
    // Room for every request of the run in the stand-in's log: growing it mid-run stalls the
    // stand-in, and the requests' arrival times then bunch.
    bed.standin.reserve_requests(growers * 3);
    let fleet = start_fleet(world, &bed, &verify_queue, &repairs_queue).await;

    eprintln!("bench: fan-out: listing");
    let pages_before = world.proxy.calls(LIST_SECRETS);
    let sqs_before_listing = sqs_calls(world);
    let invocation = bed
        .invoke(&fleet[0], load_event("verify-schedule-scheduler.json"))
        .await;
    let listing_time = invocation.elapsed;
    let listing_report = invocation.expect_ok();
    let sqs_listing = sqs_calls(world) - sqs_before_listing;
    let list_pages = world.proxy.calls(LIST_SECRETS) - pages_before;
    world.proxy.list_secrets_from_moto();
    let messages = growers.div_ceil(100) as u64;
    assert_eq!(
        (
            listing_report["listed"].as_u64(),
            listing_report["messages"].as_u64(),
            listing_report["misnamed"].as_u64()
        ),
        (Some(growers as u64), Some(messages), Some(0)),
        "the listing: {listing_report}"
    );
    assert_eq!(
        bed.standin.leaf_request_times().len(),
        0,
        "the listing asks Leaf nothing"
    );

    eprintln!(
        "bench: fan-out: {PROCESSES} processes checking (floor {} s)",
        growers * REQUESTS_PER_CHECK / FLEET_MAX_RPS
    );
    let mapping = Mapping {
        pollers: PROCESSES,
        batch_size: BATCH_SIZE,
        wait_secs: 1,
        in_flight_secs: FUNCTION_TIMEOUT.as_secs() as i32,
        retry_after_secs: 1,
        timeout: Duration::from_secs(240),
    };
    let started = Instant::now();
    let sqs_before = sqs_calls(world);
    let drained = mapping
        .drain_via(&world.proxy.endpoint(), &bed, &fleet[0], &verify_queue)
        .await;
    let sqs_drain = sqs_calls(world) - sqs_before;
    let run = drained
        .deliveries
        .iter()
        .map(|d| d.at)
        .max()
        .map_or(Duration::ZERO, |end| end - started);
    let processes: Vec<ProcessFigures> = fleet.iter().map(process_figures).collect();
    let times = bed.standin.leaf_request_times();
    eprintln!(
        "bench: fan-out: run {:.1} s (listing {:.1} s), {} Leaf requests, peak {} in 1 s, {} invocations",
        run.as_secs_f64(),
        listing_time.as_secs_f64(),
        times.len(),
        peak_in_window(&times, SECOND),
        drained.invocations
    );
    let totals = batch_totals(&fleet);
    let mut expected_repairs: Vec<String> = kinds
        .iter()
        .filter(|(k, _)| k.broken())
        .flat_map(|(_, ids)| ids.iter().cloned())
        .collect();
    expected_repairs.sort();
    // The repairs in the connect queue (a repeated check's repair is deduplicated), and the
    // processes' "connection needs repair" lines (a repeated check repeats its line).
    let (bodies, accepted) = world.proxy.queue_contents(&repairs_queue);
    let mut repaired: Vec<String> = bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter_map(|b| b["leafUserId"].as_str().map(str::to_owned))
        .collect();
    repaired.sort();
    let repairs = repaired.len();
    let found_broken = fleet
        .iter()
        .map(|p| lines(p, "connection needs repair").len())
        .sum::<usize>();
    let mut problems = Vec::new();
    if drained.timed_out {
        problems.push(format!(
            "the verify queue was not drained in {:?}",
            mapping.timeout
        ));
    }
    if repairs != expected_repairs.len() || accepted != repairs {
        problems.push(format!(
            "{repairs} repairs in the queue ({accepted} accepted) for {} broken growers",
            expected_repairs.len()
        ));
    }
    if repaired != expected_repairs {
        let wrong = repaired
            .iter()
            .filter(|id| expected_repairs.binary_search(id).is_err())
            .count();
        let missed = expected_repairs
            .iter()
            .filter(|id| repaired.binary_search(id).is_err())
            .count();
        problems.push(format!(
            "repaired: {wrong} healthy ones, and {missed} broken ones not"
        ));
    }
    if !drained.errors.is_empty() {
        problems.push(format!(
            "{} invocations failed: {:.300}",
            drained.errors.len(),
            drained.errors[0]
        ));
    }
    let transient = failures(&fleet);
    let count = |kind: Kind| kinds.get(&kind).map_or(0, Vec::len) as u64;
    let checked = growers as u64 - count(Kind::Disconnected) - count(Kind::LoginRejected);
    let want = serde_json::json!({
        "messages": messages,
        "checked": checked,
        "healthy": count(Kind::Healthy),
        "unhealthy": count(Kind::Unhealthy),
        "missing": count(Kind::Missing),
        // The fleet has no credentials Leaf is still checking.
        "pending": 0,
        "errors": 0,
        "unchecked": 0,
        "repairsQueued": found_broken,
        "repairsFailed": 0,
        "disconnected": count(Kind::Disconnected),
        "loginRejected": count(Kind::LoginRejected),
    });
    // A redelivered check message is counted again by the batch that checks it again.
    if drained.redelivered().is_empty() && totals != want {
        problems.push(format!("the batches' summaries add up to {totals}, not {want}"));
    }
    if !problems.is_empty() {
        let shown: Vec<String> = fleet
            .iter()
            .flat_map(|p| p.function.log_json())
            .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
            .filter(|l| l["message"] != "connection needs repair")
            .take(5)
            .map(|l| format!("{l:.400}"))
            .collect();
        // The harness aborts on a panic (no unwinding, no capture): keep the processes' logs.
        let dir = testbed::workspace_root().join("target/bench/fanout-logs");
        let _ = std::fs::create_dir_all(&dir);
        for (i, p) in fleet.iter().enumerate() {
            let _ = std::fs::write(dir.join(format!("verify-{i}.log")), p.function.logs().join("\n"));
        }
        panic!(
            "fan-out: {}; failures by code {transient:?}; {} invocations, {} deliveries, {} redelivered, \
             {} failed; first warnings: {shown:#?}; the processes' logs are in {}",
            problems.join("; "),
            drained.invocations,
            drained.deliveries.len(),
            drained.redelivered().len(),
            drained.failed().len(),
            dir.display()
        );
    }
    let checks = drained.of_type("check");
    let message_bytes =
        checks.iter().map(|d| d.body.len()).sum::<usize>() as f64 / checks.len().max(1) as f64;
    let leaf_auth = bed.standin.count(testbed::Route::LeafAuth);
    Measured {
        growers,
        load: (load_before, crate::machine::load_average()),
        kinds: kinds.iter().map(|(k, ids)| (*k, ids.len())).collect(),
        listing: listing_time,
        listing_report,
        list_pages,
        run,
        leaf_requests: times.len(),
        leaf_auth,
        peak_1s: peak_in_window(&times, SECOND),
        per_second: per_second(&times),
        totals,
        processes,
        repairs,
        found_broken,
        transient,
        sqs_listing,
        sqs_drain,
        message_bytes,
        drained,
    }
}

/// The verify processes, with the production HTTP settings, their AWS calls through the proxy.
async fn start_fleet(world: &World, bed: &Bed, verify_queue: &str, repairs_queue: &str) -> Vec<Running> {
    let endpoint = world.proxy.endpoint();
    let rate = (FLEET_MAX_RPS / PROCESSES).to_string();
    let concurrency = VERIFY_CONCURRENCY.to_string();
    let mut env: Vec<(&str, &str)> = PRODUCTION_HTTP.to_vec();
    env.extend([
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("VERIFY_QUEUE_URL", verify_queue),
        ("CONNECT_QUEUE_URL", repairs_queue),
        ("AUTO_REPAIR", "true"),
        ("VERIFY_CONCURRENCY", concurrency.as_str()),
        ("LEAF_MAX_RPS", rate.as_str()),
    ]);
    let fleet = bed.run_fleet("verify", PROCESSES, &env).await;
    let runtime = &fleet[0].runtime;
    runtime.wait_first_poll(Duration::from_secs(30)).await;
    runtime.set_function_timeout(FUNCTION_TIMEOUT);
    runtime.set_invoke_timeout(FUNCTION_TIMEOUT + Duration::from_secs(30));
    fleet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grower_in_a_hundred_is_broken_and_every_message_has_one() {
        let kinds: Vec<Kind> = (0..100_000).map(kind_of).collect();
        let broken = kinds.iter().filter(|k| k.broken()).count();
        assert_eq!(broken, 1_000);
        for message in kinds.chunks(100) {
            assert_eq!(message.iter().filter(|k| k.broken()).count(), 1);
        }
        assert_eq!(kinds.iter().filter(|k| **k == Kind::LoginRejected).count(), 100);
    }
}
