//! Side by side: the Rust `connect` function and what a team would write by hand
//! (bench/python/handler.py: Python, boto3, requests, under awslambdaric), measured the same way
//! in the same run, against the same stand-ins. Also the first connect's round trips and the
//! repeat connect, on the Rust side, against their targets.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::bed::{Bed, api_response, batch_failures, connect_api_event, connect_body, sqs_event};
use testbed::{Function, Route, RuntimeApi};

use crate::machine::cpu_time;
use crate::report::{Report, mb};
use crate::stats::{Summary, ms};
use crate::world::{PRODUCTION_HTTP, Seed, World, seed_growers};

pub const FIRST_CONNECT_TARGET_MS: f64 = 85.0;
pub const FIRST_CONNECT_TARGET_TRIPS: usize = 4;
/// Cold starts of each implementation (the Python one takes about half a second each).
const STARTS: usize = 10;
/// First connects of new growers, in one warm process.
const FIRSTS: usize = 10;
/// Forced batches of 10 connected growers.
const BATCHES: usize = 9;

/// One implementation's figures.
#[derive(Default)]
struct Side {
    init: Vec<f64>,
    init_rss: Vec<f64>,
    cold: Vec<f64>,
    first: Vec<f64>,
    /// Upstream round trips of each first connect, as the stand-in saw them arrive.
    first_trips: Vec<usize>,
    first_calls: Vec<usize>,
    repeat_trips: Vec<usize>,
    repeat_stara_calls: usize,
    batch: Vec<f64>,
    batch_cpu: Vec<f64>,
    peak_rss: u64,
}

/// A process of one implementation with its own emulator.
struct Proc {
    runtime: RuntimeApi,
    function: Function,
}

impl Proc {
    async fn start(bed: &Bed, world: &World, path: &Path, extra: &[(&str, &str)]) -> Proc {
        let endpoint = world.proxy.endpoint();
        let mut env: Vec<(&str, &str)> = PRODUCTION_HTTP.to_vec();
        env.push(("AWS_ENDPOINT_URL", endpoint.as_str()));
        env.extend_from_slice(extra);
        let runtime = RuntimeApi::start().await;
        let function = Function::spawn_path(path, &runtime, &bed.env(&env));
        runtime.wait_first_poll(Duration::from_secs(60)).await;
        Proc { runtime, function }
    }

    /// One invocation, timed to its answer; returns once it has ended (the function polled again),
    /// so that the work a function does after its answer is not counted in the next one's time.
    async fn invoke(&self, event: Value) -> (testbed::Invocation, Instant) {
        let started = Instant::now();
        let invocation = self.runtime.invoke_to_end(event, Duration::from_secs(10)).await;
        (invocation, started)
    }
}

/// Upstream requests the stand-in received since `since`: their number, the number of waves
/// (a request more than half a latency after the start of the current wave opens a new one:
/// the round trips on the critical path), and how many went to Stara.
fn upstream_since(bed: &Bed, since: Instant, latency: Duration) -> (usize, usize, usize) {
    let mut times = Vec::new();
    let mut stara = 0;
    for route in Route::ALL {
        for request in bed.standin.requests(route) {
            if request.at >= since {
                times.push(request.at);
                stara += usize::from(matches!(route, Route::StaraAuth | Route::StaraToken));
            }
        }
    }
    times.sort();
    let mut waves = 0;
    let mut wave_start: Option<Instant> = None;
    for at in &times {
        if wave_start.is_none_or(|start| at.duration_since(start) > latency / 2) {
            waves += 1;
            wave_start = Some(*at);
        }
    }
    (times.len(), waves, stara)
}

async fn measure(world: &World, path: &Path, extra: &[(&str, &str)]) -> Side {
    let bed = world.bed().await;
    let mut growers = seed_growers(&bed, STARTS + 1 + FIRSTS + 10, Seed::Connectable).await;
    let mut side = Side::default();
    for _ in 0..STARTS {
        let proc = Proc::start(&bed, world, path, extra).await;
        let spawned = proc.function.spawned_at();
        let polled = proc.runtime.first_poll_at().expect("polled");
        side.init.push(ms(polled.duration_since(spawned)));
        side.init_rss
            .push(proc.function.peak_rss_kb().unwrap_or(0) as f64);
        let id = growers.pop().expect("a grower per start");
        let (invocation, _) = proc.invoke(connect_api_event(&id, false)).await;
        let (status, body) = api_response(&invocation);
        assert_eq!(status, 201, "a cold first connect: {body}");
        side.cold.push(ms(spawned.elapsed()));
        drop(proc);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    let proc = Proc::start(&bed, world, path, extra).await;
    // Warm-up: the Leaf owner's secret and token, the connections to the stand-in.
    let (warm_up, _) = proc
        .invoke(connect_api_event(&growers.pop().expect("grower"), false))
        .await;
    assert_eq!(api_response(&warm_up).0, 201);
    let batch_growers = growers.split_off(growers.len() - 10);
    for id in &growers {
        let (invocation, started) = proc.invoke(connect_api_event(id, false)).await;
        let (status, body) = api_response(&invocation);
        assert_eq!(
            (status, body["outcome"].as_str()),
            (201, Some("connected")),
            "{body}"
        );
        side.first.push(ms(invocation.elapsed));
        let (calls, trips, _) = upstream_since(&bed, started, world.latency);
        side.first_calls.push(calls);
        side.first_trips.push(trips);
    }
    for id in &growers {
        let (invocation, started) = proc.invoke(connect_api_event(id, false)).await;
        let (status, body) = api_response(&invocation);
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("already_connected")),
            "{body}"
        );
        let (_, trips, stara) = upstream_since(&bed, started, world.latency);
        side.repeat_trips.push(trips);
        side.repeat_stara_calls += stara;
    }
    let bodies = |force| {
        batch_growers
            .iter()
            .map(|id| connect_body(id, force))
            .collect::<Vec<_>>()
    };
    let (connected, _) = proc.invoke(sqs_event(&bodies(false))).await;
    assert!(batch_failures(&connected).is_empty());
    for _ in 0..BATCHES {
        let cpu_before = cpu_time(proc.function.pid()).unwrap_or_default();
        let (invocation, _) = proc.invoke(sqs_event(&bodies(true))).await;
        let cpu = cpu_time(proc.function.pid())
            .unwrap_or_default()
            .saturating_sub(cpu_before);
        assert!(batch_failures(&invocation).is_empty(), "a batch had failures");
        side.batch.push(ms(invocation.elapsed));
        side.batch_cpu.push(ms(cpu));
    }
    side.peak_rss = proc.function.peak_rss_kb().unwrap_or(0);
    side
}

fn median(samples: &[f64]) -> f64 {
    Summary::of(samples).map_or(f64::NAN, |s| s.median)
}

pub async fn run(world: &World, report: &mut Report) {
    let root = testbed::workspace_root();
    let python = root.join(".venv/bin/python");
    let wrapper = root.join("bench/python/connect-python");
    eprintln!("bench: side by side, the Rust connect function");
    let rust = measure(world, &Function::binary_path("connect"), &[]).await;
    let versions = python_version(&python);
    let python_side = if versions.is_some() {
        eprintln!("bench: side by side, the hand-written Python handler (awslambdaric)");
        let interpreter = python.display().to_string();
        Some(measure(world, &wrapper, &[("BENCH_PYTHON", interpreter.as_str())]).await)
    } else {
        report.warn(
            "no awslambdaric, boto3 or requests in .venv: the Python baseline was not measured (make tools)",
        );
        None
    };

    let first = Summary::of(&rust.first).expect("first connects");
    let most_trips = rust.first_trips.iter().copied().max().unwrap_or(0);
    let calls = rust.first_calls.iter().copied().max().unwrap_or(0);
    report.row(
        "first connect (no credentials at Leaf, login not cached): median; round trips",
        format!(
            "{:.1} ms (p95 {:.1}); {most_trips} round trips, {calls} upstream calls",
            first.median, first.p95
        ),
        format!("≤ {FIRST_CONNECT_TARGET_MS:.0} ms; ≤ {FIRST_CONNECT_TARGET_TRIPS} round trips"),
        Some(first.median <= FIRST_CONNECT_TARGET_MS && most_trips <= FIRST_CONNECT_TARGET_TRIPS),
    );
    let repeat_trips = rust.repeat_trips.iter().copied().max().unwrap_or(0);
    report.row(
        "repeat connect (already connected)",
        format!(
            "{repeat_trips} round trip, {} Stara calls in {FIRSTS}",
            rust.repeat_stara_calls
        ),
        "1 round trip, no Stara call",
        Some(repeat_trips == 1 && rust.repeat_stara_calls == 0),
    );

    let mut body = String::new();
    let _ = writeln!(
        body,
        "The Rust `connect` function and [`bench/python/handler.py`](../bench/python/handler.py), \
         the same connector as a team would write it by hand (Python, boto3 and requests, the same \
         Stara and Leaf calls, clients and the Leaf token made once per process, everything in \
         sequence, nothing retried or cached), run by `awslambdaric` from the pinned venv ({}). Both \
         go through the same emulator, the same stand-ins ({} ms a call) and the same counting proxy \
         to moto, measured by the same code (`bench/src/python.rs`): {STARTS} cold starts (spawn → \
         first poll is *init*; spawn → the answer to a first connect of a new grower is *cold start, \
         end to end*), then one warm process: {FIRSTS} first connects of new growers (no credentials \
         at Leaf, login not in any cache), the same {FIRSTS} again (repeats), and {BATCHES} SQS \
         batches of 10 forced reconnects. *Round trips* are counted where the stand-in sees the \
         requests arrive: a request that arrives more than half a latency after the first of its \
         wave opens a new one, so calls made at the same time count once.\n",
        versions.as_deref().unwrap_or("not installed"),
        world.latency.as_millis()
    );
    let _ = writeln!(
        body,
        "| | Rust `connect` | Python baseline | Python ÷ Rust |\n|---|---|---|---|"
    );
    let row = |body: &mut String, name: &str, rust_v: f64, py: Option<f64>, unit: &str| {
        let (py_text, ratio) = match py {
            Some(p) => (format!("{p:.1} {unit}"), format!("{:.1} ×", p / rust_v)),
            None => ("—".to_owned(), "—".to_owned()),
        };
        let _ = writeln!(body, "| {name} | {rust_v:.1} {unit} | {py_text} | {ratio} |");
    };
    let py = python_side.as_ref();
    row(
        &mut body,
        "init (median)",
        median(&rust.init),
        py.map(|p| median(&p.init)),
        "ms",
    );
    row(
        &mut body,
        "cold start, end to end (median)",
        median(&rust.cold),
        py.map(|p| median(&p.cold)),
        "ms",
    );
    row(
        &mut body,
        "first connect (median)",
        first.median,
        py.map(|p| median(&p.first)),
        "ms",
    );
    let trips = |s: &Side| s.first_trips.iter().copied().max().unwrap_or(0) as f64;
    row(
        &mut body,
        "first connect: round trips (most)",
        trips(&rust),
        py.map(trips),
        "",
    );
    row(
        &mut body,
        "batch of 10 (median)",
        median(&rust.batch),
        py.map(|p| median(&p.batch)),
        "ms",
    );
    row(
        &mut body,
        "CPU time of a batch of 10 (median)",
        median(&rust.batch_cpu),
        py.map(|p| median(&p.batch_cpu)),
        "ms",
    );
    let rss_mb = |kb: f64| kb / 1024.0;
    row(
        &mut body,
        "peak RSS after init",
        rss_mb(median(&rust.init_rss)),
        py.map(|p| rss_mb(median(&p.init_rss))),
        "MB",
    );
    row(
        &mut body,
        "peak RSS at the end",
        rss_mb(rust.peak_rss as f64),
        py.map(|p| rss_mb(p.peak_rss as f64)),
        "MB",
    );
    let _ = writeln!(
        body,
        "\nDetail (Rust): first connect {}; init {}; batch of 10 {}. Peak RSS {}.",
        first.describe("ms", 1),
        Summary::of(&rust.init).map_or(String::new(), |s| s.describe("ms", 2)),
        Summary::of(&rust.batch).map_or(String::new(), |s| s.describe("ms", 1)),
        mb(rust.peak_rss)
    );
    if let Some(p) = py {
        let _ = writeln!(
            body,
            "\nDetail (Python): first connect {}; init {}; batch of 10 {}. Peak RSS {}.",
            Summary::of(&p.first).map_or(String::new(), |s| s.describe("ms", 1)),
            Summary::of(&p.init).map_or(String::new(), |s| s.describe("ms", 1)),
            Summary::of(&p.batch).map_or(String::new(), |s| s.describe("ms", 1)),
            mb(p.peak_rss)
        );
        for (name, r, p) in [
            ("init", median(&rust.init), median(&p.init)),
            ("first connect", first.median, median(&p.first)),
            ("batch of 10", median(&rust.batch), median(&p.batch)),
            ("peak RSS", rust.peak_rss as f64, p.peak_rss as f64),
        ] {
            report.row(
                format!("Python baseline ÷ Rust: {name}"),
                format!("{:.1} ×", p / r),
                "(informational)",
                None,
            );
        }
    }
    report.section("Side by side: a hand-written Python handler", body);
}

/// The versions of Python and the baseline's packages; `None` when one of them is missing.
fn python_version(python: &Path) -> Option<String> {
    std::process::Command::new(python)
        .args([
            "-c",
            "import sys; from importlib.metadata import version as v; \
             print(f'Python {sys.version.split()[0]}, awslambdaric {v(\"awslambdaric\")}, \
             boto3 {v(\"boto3\")}, requests {v(\"requests\")}')",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
}
