//! Load (issue 5): 1,000 connects through SQS-shaped batches of 10 while about 5 % of them meet
//! a transient upstream fault; two warm instances share the batches. The scenario of
//! tests/tests/e2e/load.rs, on the release binaries, with the upstream latency and production retries.

use std::fmt::Write;
use std::time::Instant;

use testbed::Route;

use crate::machine::cpu_time;
use crate::report::{Report, mb, thousands};
use crate::world::{Seed, World, seed_growers};

/// Batches in flight at once (SQS event source mapping concurrency), as in the test.
const IN_FLIGHT: usize = 4;

pub async fn run(world: &World, growers: usize, report: &mut Report) {
    eprintln!("bench: load, {growers} connects with transient faults");
    let bed = world.bed().await;
    let ids = seed_growers(&bed, growers, Seed::Connectable).await;
    let running = world.run(&bed, "connect", &[]).await;
    // A second warm instance polling the same emulator, its AWS calls also through the proxy.
    let endpoint = world.proxy.endpoint();
    let mut env = crate::world::PRODUCTION_HTTP.to_vec();
    env.push(("AWS_ENDPOINT_URL", endpoint.as_str()));
    let second = bed.run_beside(&running, &env);
    // About 5 % of connects meet a transient fault somewhere on their path.
    bed.inject_transient_faults(0.01);
    let secrets_before = world.secret_calls();

    let started = Instant::now();
    let done = bed.deliver_until_done(&running, ids.clone(), IN_FLIGHT).await;
    let (deliveries, redelivered) = (done.deliveries, done.redelivered);
    let elapsed = started.elapsed();
    let secret_calls = world.secret_calls() - secrets_before;

    let connected = ids
        .iter()
        .filter(|id| bed.standin.credential(id).is_some_and(|c| c.status == "OK"))
        .count();
    assert_eq!(connected, growers, "every grower ends connected");
    assert_eq!(bed.standin.conflicts(), 0, "no duplicate POST");
    let faults: usize = Route::ALL.iter().map(|&r| bed.standin.faults_served(r)).sum();
    let rss = [
        running.function.peak_rss_kb().unwrap_or(0),
        second.peak_rss_kb().unwrap_or(0),
    ];
    let cpu: Vec<f64> = [running.function.pid(), second.pid()]
        .iter()
        .filter_map(|&pid| cpu_time(pid))
        .map(|d| d.as_secs_f64())
        .collect();
    let requests: usize = bed.standin.counts().values().sum();

    let mut body = String::new();
    let _ = writeln!(
        body,
        "{} growers, never connected, each named in one SQS-shaped message; batches of 10, {IN_FLIGHT} batches in \
         flight, shared by two warm `connect` processes on one emulator. 1 % of the requests to each of six \
         routes fail (Stara 503 and reset, Leaf GET 502, user lookup 429, POST 503 and a POST processed but \
         answered by a reset). Messages reported in `batchItemFailures` are delivered again, as SQS would.\n",
        thousands(growers as u64)
    );
    let _ = writeln!(body, "| | |\n|---|---|");
    let _ = writeln!(
        body,
        "| time, all connected | {:.1} s ({:.0} connects/s) |",
        elapsed.as_secs_f64(),
        growers as f64 / elapsed.as_secs_f64()
    );
    let _ = writeln!(
        body,
        "| injected faults | {faults} (on {} upstream requests) |",
        thousands(requests as u64)
    );
    let _ = writeln!(
        body,
        "| deliveries | {deliveries} ({redelivered} messages delivered again) |"
    );
    let _ = writeln!(
        body,
        "| result | {connected} connected, 0 duplicate POSTs (409) |"
    );
    let _ = writeln!(
        body,
        "| `GetSecretValue` calls | {} (one per grower, plus the Leaf owner per process) |",
        secret_calls.get_secret_value
    );
    let _ = writeln!(
        body,
        "| peak RSS of the two `connect` processes | {} and {} |",
        mb(rss[0]),
        mb(rss[1])
    );
    if cpu.len() == 2 {
        let _ = writeln!(
            body,
            "| CPU time of the two processes (init included) | {:.2} s and {:.2} s |",
            cpu[0], cpu[1]
        );
    }
    report.section("Load: 1,000 connects with transient faults", body);
    report.row(
        format!(
            "load: {} connects, ~5 % transient faults",
            thousands(growers as u64)
        ),
        format!(
            "{:.1} s, peak RSS {} / {}",
            elapsed.as_secs_f64(),
            mb(rss[0]),
            mb(rss[1])
        ),
        "(informational: all connected, no duplicate)",
        None,
    );
}
