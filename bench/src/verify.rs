//! A scheduled verify run over a large fleet: time, peak RSS, Secrets Manager calls.

use std::fmt::Write;
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::{Route, load_event, moto};

use crate::machine::cpu_time;
use crate::report::{Report, mb, thousands};
use crate::stats::ms;
use crate::world::{Seed, World, seed_growers};

pub const TARGET_GROWERS: usize = 10_000;
pub const TARGET_SECONDS: f64 = 20.0;
pub const TARGET_RSS_MB: f64 = 64.0;
/// The verify function's default (shared/src/config.rs); the bench does not set it.
pub const VERIFY_CONCURRENCY: usize = 16;

pub struct Run {
    growers: usize,
    seconds: f64,
    list_ms: Option<u64>,
    idle_rss_kb: u64,
    peak_rss_kb: u64,
    cpu_seconds: Option<f64>,
    list_calls: usize,
    get_calls: usize,
    leaf_requests: usize,
    summary: Value,
    seeded_in: Duration,
    /// The same listing from the harness, straight to moto, after the run: what moto costs alone.
    moto_list_seconds: f64,
}

pub async fn run(world: &World, fleets: &[usize], report: &mut Report) {
    let mut runs = Vec::new();
    for &growers in fleets {
        runs.push(one(world, growers).await);
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "A scheduled run (`events/verify-schedule-scheduler.json`) of a fresh `verify` process over a fleet of \
         healthy growers: one login secret each under the grower prefix in moto, `OK` credentials at the Leaf \
         stand-in. `VERIFY_CONCURRENCY` is the default, {VERIFY_CONCURRENCY}; `CONNECT_QUEUE_URL` is a FIFO queue in \
         moto (no repair is needed). Time is from invoke to the run's result, as the emulator measures it. \
         *Listing, in the run* is the time the function logs for its `ListSecrets` pages (`growers listed`, `listMs`): it \
         overlaps the checks, and the listing waits whenever 500 listed growers (`LISTED_AHEAD`, shared/src/verify.rs) are waiting for a check, so it ends \
         shortly before the run does. *Listing alone* is the same listing (name filter, pages of 100) done by the \
         bench straight to moto after the run: what moto's `ListSecrets` costs by itself. CPU time is the \
         function's on-CPU time (all threads, init included).\n"
    );
    let _ = writeln!(
        body,
        "| growers | run | listing, in the run | listing alone | growers/s | peak RSS (idle before) | CPU time (vCPU used) | ListSecrets | GetSecretValue | Leaf requests |"
    );
    let _ = writeln!(body, "|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let _ = writeln!(
            body,
            "| {} | {:.1} s | {} | {:.1} s | {:.0} | {} ({}) | {} | {} | {} | {} |",
            thousands(r.growers as u64),
            r.seconds,
            r.list_ms
                .map_or("?".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
            r.moto_list_seconds,
            r.growers as f64 / r.seconds,
            mb(r.peak_rss_kb),
            mb(r.idle_rss_kb),
            r.cpu_seconds
                .map_or("?".into(), |s| format!("{s:.2} s ({:.3})", s / r.seconds)),
            r.list_calls,
            r.get_calls,
            thousands(r.leaf_requests as u64),
        );
    }
    let _ = writeln!(body, "\nThe run's own summaries:\n");
    for r in &runs {
        let _ = writeln!(
            body,
            "- {} growers (seeded in {:.0} s, not part of the run): `{}`",
            thousands(r.growers as u64),
            r.seeded_in.as_secs_f64(),
            r.summary
        );
    }
    let _ = writeln!(
        body,
        "\nOne check is one round trip: the credentials and their events, asked for at the same time. \
         The floor is therefore growers × {} ms ÷ {VERIFY_CONCURRENCY} = {:.1} s for 10,000 growers. `GetSecretValue` is the Leaf \
         owner's login, read once per process; ListSecrets is one call per page of 100 names.",
        world.latency.as_millis(),
        10_000.0 * world.latency.as_secs_f64() / VERIFY_CONCURRENCY as f64
    );
    report.section("Verify at scale", body);
    for r in &runs {
        let at_target = r.growers == TARGET_GROWERS;
        let peak_mb = r.peak_rss_kb as f64 / 1024.0;
        report.row(
            format!("verify of {} growers: time", thousands(r.growers as u64)),
            format!(
                "{:.1} s (listing {})",
                r.seconds,
                r.list_ms
                    .map_or("?".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
            ),
            if at_target {
                format!("≤ {TARGET_SECONDS:.0} s")
            } else {
                "(informational)".into()
            },
            at_target.then_some(r.seconds <= TARGET_SECONDS),
        );
        report.row(
            format!("verify of {} growers: peak RSS", thousands(r.growers as u64)),
            mb(r.peak_rss_kb),
            if at_target {
                format!("≤ {TARGET_RSS_MB:.0} MB")
            } else {
                "(informational)".into()
            },
            at_target.then_some(peak_mb <= TARGET_RSS_MB),
        );
        if let Some(cpu) = r.cpu_seconds.filter(|_| at_target) {
            report.row(
                format!("CPU of `verify` over {} growers", thousands(r.growers as u64)),
                format!("{cpu:.2} s, {:.3} vCPU over the run", cpu / r.seconds),
                "(informational: sizing)",
                None,
            );
        }
        report.row(
            format!(
                "verify of {} growers: Secrets Manager calls",
                thousands(r.growers as u64)
            ),
            format!("{} ListSecrets, {} GetSecretValue", r.list_calls, r.get_calls),
            "(informational)",
            None,
        );
    }
}

async fn one(world: &World, growers: usize) -> Run {
    eprintln!("bench: verify over {growers} growers: seeding moto");
    let bed = world.bed().await;
    let queue = moto::create_fifo_queue(&format!(
        "stara-connect-bench-{}.fifo",
        uuid::Uuid::new_v4().simple()
    ))
    .await;
    let seeding = Instant::now();
    seed_growers(&bed, growers, Seed::Healthy).await;
    let seeded_in = seeding.elapsed();
    let running = world
        .run(&bed, "verify", &[("CONNECT_QUEUE_URL", queue.as_str())])
        .await;
    running.runtime.set_function_timeout(Duration::from_secs(900));
    running.runtime.set_invoke_timeout(Duration::from_secs(900));
    let idle_rss_kb = running.function.rss_kb().unwrap_or(0);
    let calls_before = world.secret_calls();
    let leaf_before: usize = [
        Route::LeafAuth,
        Route::LeafGetCredentials,
        Route::LeafEvents,
        Route::LeafUser,
    ]
    .iter()
    .map(|&r| bed.standin.count(r))
    .sum();

    eprintln!("bench: verify over {growers} growers: running");
    let invocation = bed
        .invoke(&running, load_event("verify-schedule-scheduler.json"))
        .await;
    let seconds = ms(invocation.elapsed) / 1000.0;
    let peak_rss_kb = running.function.peak_rss_kb().unwrap_or(0);
    let cpu_seconds = cpu_time(running.function.pid()).map(|d| d.as_secs_f64());
    let calls = world.secret_calls() - calls_before;
    let leaf_requests = [
        Route::LeafAuth,
        Route::LeafGetCredentials,
        Route::LeafEvents,
        Route::LeafUser,
    ]
    .iter()
    .map(|&r| bed.standin.count(r))
    .sum::<usize>()
        - leaf_before;
    let summary = invocation.expect_ok();
    let n = growers as u64;
    assert_eq!(
        (
            summary["checked"].as_u64(),
            summary["healthy"].as_u64(),
            summary["errors"].as_u64()
        ),
        (Some(n), Some(n), Some(0)),
        "every grower checked and healthy: {summary}"
    );
    let list_ms = running
        .function
        .log_json()
        .iter()
        .find(|l| l["message"] == "growers listed")
        .and_then(|l| l["listMs"].as_u64());
    let moto_list_seconds = list_alone(&bed.grower_prefix).await;
    eprintln!(
        "bench: verify over {growers} growers: {seconds:.1} s, peak RSS {}; moto lists them in {moto_list_seconds:.1} s",
        mb(peak_rss_kb)
    );
    Run {
        growers,
        seconds,
        list_ms,
        idle_rss_kb,
        peak_rss_kb,
        cpu_seconds,
        list_calls: calls.list_secrets,
        get_calls: calls.get_secret_value,
        leaf_requests,
        summary,
        seeded_in,
        moto_list_seconds,
    }
}

/// Lists every secret under `prefix` the way the function does (name filter, pages of 100),
/// from the harness straight to moto; returns the seconds it took.
async fn list_alone(prefix: &str) -> f64 {
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    let client = moto::secrets_client().await;
    let started = Instant::now();
    let mut token = None;
    loop {
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(prefix)
            .build();
        let page = client
            .list_secrets()
            .filters(filter)
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .expect("moto ListSecrets");
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return started.elapsed().as_secs_f64();
        }
    }
}
