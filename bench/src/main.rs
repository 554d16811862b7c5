//! `make bench` (scripts/bench.sh builds the release binaries, then runs this with
//! `TESTBED_BIN_DIR=target/release`): init and cold starts, warm overhead, secret caching, batch
//! scaling, first and repeat connects beside a hand-written Python handler, verify at scale, load,
//! verify's fan-out over 100,000 growers, artifact size. Writes docs/BENCHMARKS.md and
//! docs/benchmarks-batch.svg.
//!
//! Settings (environment):
//!   BENCH_LATENCY_MS       delay the Stara/Leaf stand-ins add to every request (20)
//!   BENCH_ONLY             a comma-separated subset of: init,warm,batch,python,verify,load,fanout,size
//!                          (a partial run writes to target/bench/, not docs/)
//!   BENCH_INIT_RUNS        starts of each binary for the init time (20)
//!   BENCH_WARM_RUNS        measured warm connects (50)
//!   BENCH_BATCH_SIZES      batch sizes of the batch scaling (1,2,5,10,20,50,100)
//!   BENCH_BATCH_REPS       repetitions of every batch size (9 up to 10 messages, 5 up to 50, 3 above)
//!   BENCH_VERIFY_GROWERS   fleets for verify at scale (1000,10000)
//!   BENCH_LOAD_GROWERS     connects in the load scenario (1000)
//!   BENCH_FANOUT_GROWERS   growers of the fan-out scenario (100000)
//!   BENCH_OUT              where to write the report (docs/ for a full run)

mod chart;
mod connect;
mod fanout;
mod init;
mod load;
mod machine;
mod python;
mod report;
mod size;
mod stats;
mod upstream;
mod verify;
mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testbed::Function;

use crate::machine::Machine;
use crate::report::{Report, RunFacts, pass_text};
use crate::world::World;

const SCENARIOS: [&str; 8] = [
    "init", "warm", "batch", "python", "verify", "load", "fanout", "size",
];
const BATCH_SIZES: [usize; 7] = [1, 2, 5, 10, 20, 50, 100];
/// Method, harness distortion, profiling and sizing: prose kept next to the code that measures.
const NOTES: &str = include_str!("../NOTES.md");

fn number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

fn list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: {n:?} is not a number"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

fn epoch_env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::main]
async fn main() {
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    if let Some(only) = &only {
        for name in only {
            assert!(
                SCENARIOS.contains(&name.as_str()),
                "BENCH_ONLY: unknown scenario {name:?}; known: {}",
                SCENARIOS.join(",")
            );
        }
    }
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == name));
    let latency = Duration::from_millis(number("BENCH_LATENCY_MS", 20));
    let init_runs = number("BENCH_INIT_RUNS", 20).max(1) as usize;
    let warm_runs = number("BENCH_WARM_RUNS", 50).max(1) as usize;
    let load_growers = number("BENCH_LOAD_GROWERS", 1000) as usize;
    let fleets = list("BENCH_VERIFY_GROWERS", &[1_000, verify::TARGET_GROWERS]);
    let root = testbed::workspace_root();
    let full = only.is_none();
    let out_dir = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if full {
                root.join("docs")
            } else {
                root.join("target/bench")
            }
        });

    let mut report = Report::default();
    let release = std::env::var_os("TESTBED_BIN_DIR").is_some_and(|d| PathBuf::from(d).ends_with("release"));
    if !release {
        report.warn(format!(
            "TESTBED_BIN_DIR does not point at a release build: these figures are for {}",
            Function::binary_path("connect").display()
        ));
    }
    for bin in ["connect", "verify"] {
        let path = Function::binary_path(bin);
        assert!(
            path.is_file(),
            "{} is missing: run `cargo build --release --bins --bin connect --bin verify` (make bench does)",
            path.display()
        );
    }

    let machine = Machine::describe();
    let load_before = machine::load_average();
    let measuring = Instant::now();
    eprintln!(
        "bench: {} × {}, {}; upstream latency {} ms; binaries in {}",
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        latency.as_millis(),
        Function::binary_path("connect")
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    let world = World::start(latency).await;

    let mut svg = None;
    if wanted("init") {
        init::run(&world, init_runs, &mut report).await;
    }
    if wanted("warm") {
        connect::warm(&world, warm_runs, &mut report).await;
    }
    if wanted("batch") {
        let sizes = list("BENCH_BATCH_SIZES", &BATCH_SIZES);
        let reps = std::env::var("BENCH_BATCH_REPS")
            .is_ok()
            .then(|| number("BENCH_BATCH_REPS", 9).max(1) as usize);
        svg = connect::batches(&world, &sizes, reps, &mut report).await;
    }
    if wanted("python") {
        python::run(&world, &mut report).await;
    }
    if wanted("verify") {
        verify::run(&world, &fleets, &mut report).await;
    }
    if wanted("load") && load_growers > 0 {
        load::run(&world, load_growers, &mut report).await;
    }
    if wanted("fanout") {
        let growers = number("BENCH_FANOUT_GROWERS", fanout::GROWERS as u64) as usize;
        fanout::run(&world, growers, &mut report).await;
    }
    if wanted("size") {
        size::run(&root, &mut report);
    }

    let measured = measuring.elapsed();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let duration = match (epoch_env("BENCH_STARTED"), epoch_env("BENCH_BUILT")) {
        (Some(started), Some(built)) => format!(
            "{} in all: building {} s (sam build if the artifacts were stale, then cargo; seconds when all is current), measuring {} s",
            minutes(now.saturating_sub(started)),
            built.saturating_sub(started),
            measured.as_secs()
        ),
        _ => format!("measuring {} s", measured.as_secs()),
    };
    let facts = RunFacts {
        command: if full {
            "make bench".to_owned()
        } else {
            format!(
                "BENCH_ONLY={} make bench",
                only.as_deref().unwrap_or_default().join(",")
            )
        },
        latency_ms: latency.as_millis() as u64,
        batch_concurrency: connect::BATCH_CONCURRENCY,
        verify_concurrency: verify::VERIFY_CONCURRENCY,
        duration,
        load_before,
        load_after: machine::load_average(),
        harness: if cfg!(debug_assertions) {
            "`target/debug/bench` (dev profile: the test bed's own code unoptimised, its dependencies at opt-level 1); see \"Does the harness distort the figures?\" below".to_owned()
        } else {
            "`target/bench-harness/bench` (profile `bench-harness`, defined by scripts/bench.sh: release \
             without LTO, opt-level 2); see \"Does the harness distort the figures?\" below"
                .to_owned()
        },
        upstream: world.upstream.describe(),
    };
    std::fs::create_dir_all(&out_dir).expect("create the output directory");
    let doc = out_dir.join("BENCHMARKS.md");
    std::fs::write(&doc, report.markdown(&machine, &facts, NOTES)).expect("write BENCHMARKS.md");
    if let Some(svg) = svg {
        std::fs::write(out_dir.join("benchmarks-batch.svg"), svg).expect("write the chart");
    }

    println!(
        "\nbench: results ({}; {} ms per upstream call)",
        facts.duration, facts.latency_ms
    );
    for row in &report.rows {
        println!(
            "  {:<46} {:<52} {:<26} {}",
            row.measure,
            row.figure,
            row.target,
            pass_text(row.pass).trim_matches('*')
        );
    }
    let missed = report.missed();
    if missed.is_empty() {
        println!("bench: every measured target met");
    } else {
        println!(
            "bench: targets missed: {}",
            missed
                .iter()
                .map(|r| r.measure.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    println!("bench: wrote {}", doc.display());
}

fn minutes(secs: u64) -> String {
    format!("{} min {:02} s", secs / 60, secs % 60)
}
