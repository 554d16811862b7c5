//! Init time of each binary: process start to its first poll of the Runtime API, and the
//! resident memory it has then.

use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

use testbed::Function;
use testbed::bed::{Bed, api_response, connect_api_event, verify_api_event};

use crate::machine::cpu_time;
use crate::report::{Report, mb};
use crate::stats::{Summary, ms};
use crate::world::{Seed, World, seed_growers};

pub const TARGET_MS: f64 = 5.0;
pub const TARGET_INSTRUCTIONS: u64 = 8_000_000;

/// A syntactically valid FIFO queue URL; init does not call it.
const QUEUE_URL: &str = "http://127.0.0.1:9/123456789012/bench-init.fifo";

pub async fn run(world: &World, runs: usize, report: &mut Report) {
    let bed = world.bed().await;
    // One new grower per start of connect (its first answer connects it); one healthy one for verify.
    let mut new_growers = seed_growers(&bed, runs, Seed::Connectable).await;
    let healthy = seed_growers(&bed, 1, Seed::Healthy).await.remove(0);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Each binary started {runs} times, each time as a new process with a new emulator. Init is \
         the time from just before `spawn` (fork + exec) to the moment the emulator receives the \
         process's first `GET /runtime/invocation/next`: loading the binary, logging, reading and \
         checking the configuration, the AWS SDK configuration and clients, the HTTP client (rustls, \
         with the roots `TLS_ROOTS` selects: compiled in by default). RSS is VmHWM (peak resident \
         set) read while the process waits in that first poll; CPU is the process's on-CPU time \
         then. Instructions are counted by callgrind over one start of the same binary whose Runtime \
         API address refuses connections (init, one failed poll, exit): unlike time, the count does \
         not move with the machine's load. The target is judged on the median; the p95 of wall time \
         moves with whatever else runs on the two cores (init is CPU-bound: compare the CPU column). \
         *Cold start, end to end* is spawn → the first answer: init, then the first invocation with \
         every cache cold (the Leaf owner's secret and token, the grower's login). For `connect` \
         that is a first connect of a new grower (`POST /connections`), for `verify` a `GET \
         /connections/{{id}}` of a healthy one.\n"
    );
    let _ = writeln!(
        body,
        "| binary | init (wall) | CPU time of init | instructions | peak RSS after init \
         | cold start, end to end | size on disk |\n|---|---|---|---|---|---|---|"
    );
    for bin in ["connect", "verify"] {
        eprintln!("bench: init of {bin}, {runs} starts");
        let extra: &[(&str, &str)] = if bin == "verify" {
            &[("CONNECT_QUEUE_URL", QUEUE_URL)]
        } else {
            &[]
        };
        let (mut times, mut rss, mut cpu, mut cold) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            // `World::run` waits for the first poll; the emulator recorded when it came.
            let running = world.run(&bed, bin, extra).await;
            let polled = running.runtime.first_poll_at().expect("the function polled");
            times.push(ms(polled.duration_since(running.function.spawned_at())));
            rss.push(running.function.peak_rss_kb().unwrap_or(0) as f64);
            cpu.push(cpu_time(running.function.pid()).map_or(0.0, ms));
            let (event, expected) = match bin {
                "connect" => (
                    connect_api_event(&new_growers.pop().expect("a grower per start"), false),
                    201,
                ),
                _ => (verify_api_event(&healthy), 200),
            };
            let (status, answer) = api_response(&bed.invoke(&running, event).await);
            assert_eq!(status, expected, "{bin}'s first answer: {answer}");
            cold.push(ms(running.function.spawned_at().elapsed()));
            drop(running);
            // Let the killed process go before the next one starts.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let time = Summary::of(&times).expect("runs > 0");
        let rss = Summary::of(&rss).expect("runs > 0");
        let cpu = Summary::of(&cpu).expect("runs > 0");
        let cold = Summary::of(&cold).expect("runs > 0");
        let instructions = callgrind_init(&bed, world, bin, extra);
        let size = std::fs::metadata(Function::binary_path(bin))
            .map(|m| m.len())
            .unwrap_or(0);
        let _ = writeln!(
            body,
            "| `{bin}` | {} | median {:.2} ms | {} | {} (max {}) | {} | {} (x86_64) |",
            time.describe("ms", 2),
            cpu.median,
            instructions.map_or_else(
                || "(valgrind not found)".to_owned(),
                |n| format!("{:.1} M", n as f64 / 1e6)
            ),
            mb(rss.median as u64),
            mb(rss.max as u64),
            cold.describe("ms", 1),
            mb(size / 1024)
        );
        report.row(
            format!("init of `{bin}` (median; p95)"),
            format!(
                "{:.1} ms; {:.1} ms (CPU {:.1} ms)",
                time.median, time.p95, cpu.median
            ),
            format!("≤ {TARGET_MS:.0} ms (median)"),
            Some(time.median <= TARGET_MS),
        );
        report.row(
            format!("init of `{bin}`: instructions (callgrind)"),
            instructions.map_or_else(
                || "not measured".to_owned(),
                |n| format!("{:.1} M", n as f64 / 1e6),
            ),
            format!("≤ {} M", TARGET_INSTRUCTIONS / 1_000_000),
            instructions.map(|n| n <= TARGET_INSTRUCTIONS),
        );
        report.row(
            format!("cold start of `{bin}`, end to end (spawn → first answer)"),
            format!("median {:.1} ms; p95 {:.1} ms", cold.median, cold.p95),
            "(informational)",
            None,
        );
        report.row(
            format!("peak RSS of `{bin}` after init"),
            mb(rss.max as u64),
            "(informational)",
            None,
        );
    }
    report.section("Init", body);
}

/// Instructions one start of `bin` executes up to its first poll, counted by callgrind (a
/// Runtime API address that refuses connections ends the process there). None without valgrind.
fn callgrind_init(bed: &Bed, world: &World, bin: &str, extra: &[(&str, &str)]) -> Option<u64> {
    let endpoint = world.proxy.endpoint();
    let mut env: Vec<(&str, &str)> = crate::world::PRODUCTION_HTTP.to_vec();
    env.push(("AWS_ENDPOINT_URL", endpoint.as_str()));
    env.extend_from_slice(extra);
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(Function::binary_path(bin))
        .env_clear()
        .envs(bed.env(&env))
        .envs([
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1".to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", bin.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ])
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // "==123== Collected : 39356622"
    stderr.lines().find_map(|l| {
        l.split_once("Collected :")
            .and_then(|(_, n)| n.trim().parse().ok())
    })
}
