//! The connect function warm: its own overhead on one connect, its Secrets Manager calls, and
//! how the latency of an SQS batch grows with the batch.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};
use testbed::bed::{Bed, Running, api_response, batch_failures, connect_api_event, connect_body, sqs_event};

use crate::chart::{self, Point};
use crate::machine::cpu_time;
use crate::report::{Report, mb};
use crate::stats::{Summary, ms};
use crate::world::{Seed, World, seed_growers, wait_lines};

pub const OVERHEAD_TARGET_MS: f64 = 2.0;
pub const BATCH_TARGET_RATIO: f64 = 1.5;
pub const CPU_PER_CONNECT_TARGET_MS: f64 = 2.0;
pub const CPU_BATCH_OF_10_TARGET_MS: f64 = 4.0;
/// The connect function's default (shared/src/config.rs); the bench does not set it.
pub const BATCH_CONCURRENCY: usize = 10;

fn is_connect_metric(line: &Value) -> bool {
    line["Connects"] == 1 && line["UpstreamLatency"].is_number()
}

fn total_requests(bed: &Bed) -> usize {
    bed.standin.counts().values().sum()
}

/// Warm overhead and secret caching, on one grower connected again and again with `force`.
pub async fn warm(world: &World, runs: usize, report: &mut Report) {
    eprintln!("bench: warm connect, {runs} forced reconnects");
    let bed = world.bed().await;
    let id = seed_growers(&bed, 1, Seed::Connectable).await.remove(0);
    let running = world.run(&bed, "connect", &[]).await;

    // The emulator's floor: an event connect refuses at once (no upstream call, one log line).
    let floor_event = json!({"bench": "an event no trigger matches"});
    let mut floor = Vec::new();
    for i in 0..runs + 10 {
        let invocation = bed.invoke(&running, floor_event.clone()).await;
        assert!(invocation.outcome.is_err(), "an unsupported event is refused");
        if i >= 10 {
            floor.push(ms(invocation.elapsed));
        }
    }
    let floor = Summary::of(&floor).expect("runs > 0");

    // The first connect of the process: Leaf owner login and the grower's login are read.
    let before = world.secret_calls();
    let first = bed.invoke(&running, connect_api_event(&id, false)).await;
    let (status, body) = api_response(&first);
    assert_eq!(
        (status, body["outcome"].as_str()),
        (201, Some("connected")),
        "{body}"
    );
    let first_calls = world.secret_calls() - before;
    let first_ms = ms(first.elapsed);

    // Warm-up: the same path as measured.
    for _ in 0..5 {
        let (status, _) = api_response(&bed.invoke(&running, connect_api_event(&id, true)).await);
        assert_eq!(status, 201);
    }
    let mut emf_seen = wait_lines(&running, 6, is_connect_metric).await.len();

    let (mut elapsed, mut upstream, mut overhead, mut by_calls, mut calls) =
        (vec![], vec![], vec![], vec![], BTreeMap::new());
    let mut secret_calls_per_invocation = Vec::new();
    let cpu_before = cpu_time(running.function.pid());
    for _ in 0..runs {
        let (secrets_before, requests_before) = (world.secret_calls(), total_requests(&bed));
        let invocation = bed.invoke(&running, connect_api_event(&id, true)).await;
        let (status, body) = api_response(&invocation);
        assert_eq!(
            (status, body["outcome"].as_str()),
            (201, Some("reconnected")),
            "{body}"
        );
        let spent = world.secret_calls() - secrets_before;
        secret_calls_per_invocation.push(spent.get_secret_value + spent.list_secrets);
        let n_calls = total_requests(&bed) - requests_before;
        *calls.entry(n_calls).or_insert(0usize) += 1;
        emf_seen += 1;
        let lines = wait_lines(&running, emf_seen, is_connect_metric).await;
        let up = lines
            .get(emf_seen - 1)
            .and_then(|l| l["UpstreamLatency"].as_f64())
            .expect("one metric line per connect");
        let total = ms(invocation.elapsed);
        elapsed.push(total);
        upstream.push(up);
        overhead.push(total - up);
        by_calls.push(total - n_calls as f64 * world.latency.as_secs_f64() * 1000.0);
    }
    let cpu_after = cpu_time(running.function.pid());
    let standin_call = crate::upstream::calls(&bed.standin, runs).await;
    let state_write = state_write_round_trip(world, &bed, &id, runs).await;
    let cpu_per_connect = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(ms(a - b) / runs as f64),
        _ => None,
    };
    let rss = running.function.peak_rss_kb().unwrap_or(0);
    let (elapsed, upstream, overhead, by_calls) = (
        Summary::of(&elapsed).expect("runs > 0"),
        Summary::of(&upstream).expect("runs > 0"),
        Summary::of(&overhead).expect("runs > 0"),
        Summary::of(&by_calls).expect("runs > 0"),
    );
    let warm_secret_calls: usize = secret_calls_per_invocation.iter().sum();
    let calls_text: Vec<String> = calls
        .iter()
        .map(|(n, times)| format!("{n} calls × {times}"))
        .collect();

    let mut body = String::new();
    let _ = writeln!(
        body,
        "One grower, already connected, connected again {runs} times through `POST /connections` with \
         `force: true` (after 5 unmeasured warm-ups), one invocation at a time. Each is the whole write \
         path: Leaf GET credentials (beside it the grower's state, `DescribeSecret`), Stara \
         `/autenticacao` and `/token`, Leaf DELETE, Leaf POST, and, once the answer has gone, the new \
         credentials id on the grower's secret (`TagResource`, `lambda/after_response.rs`; the bench \
         waits for each invocation to end, as Lambda does before the next); the Leaf token and the \
         grower's login are cached. The function \
         measures the time it waits on upstream calls itself and emits it as `UpstreamLatency` (µs \
         precision) in its EMF line; **overhead = the invocation's time as the emulator measures it − \
         that upstream time**.\n"
    );
    let _ = writeln!(body, "| | |\n|---|---|");
    let _ = writeln!(
        body,
        "| invocation (emulator: invoke → response) | {} |",
        elapsed.describe("ms", 2)
    );
    let _ = writeln!(
        body,
        "| upstream time (the function's own measure) | {} |",
        upstream.describe("ms", 2)
    );
    let _ = writeln!(
        body,
        "| **overhead** = invocation − upstream | {} |",
        overhead.describe("ms", 2)
    );
    let _ = writeln!(
        body,
        "| cross-check: invocation − calls × {} ms | {} |",
        world.latency.as_millis(),
        by_calls.describe("ms", 2)
    );
    let _ = writeln!(
        body,
        "| upstream calls per connect (stand-in's count) | {} |",
        calls_text.join(", ")
    );
    let _ = writeln!(
        body,
        "| floor: an unsupported event, refused at once | {} |",
        floor.describe("ms", 2)
    );
    let _ = writeln!(
        body,
        "| one stand-in call from the bench's own HTTP client (Stara `/autenticacao`, refused; \
         *upstream latency* in *Machine and run*) | mean of the middle 80 % {:.2} ms; {} |",
        standin_call.mean,
        standin_call.summary.describe("ms", 2)
    );
    if let Some(cpu) = cpu_per_connect {
        let _ = writeln!(
            body,
            "| CPU time of the function per warm connect | {cpu:.2} ms (on-CPU time of all its threads over the {runs} connects ÷ {runs}) |"
        );
    }
    let _ = writeln!(
        body,
        "| one state write from the bench's own SDK client (`TagResource` through the same proxy \
         to moto: what the answer no longer waits for) | {} |",
        state_write.describe("ms", 2)
    );
    let _ = writeln!(body, "| peak RSS of `connect` after these | {} |", mb(rss));
    let _ = writeln!(
        body,
        "\nThe upstream time counts the Stara and Leaf calls and the Secrets Manager calls the function \
         waits for alone before it answers; the state read runs beside Leaf's GET and counts only when \
         it outlasts it. The credentials-id write after the answer is in neither time (it is in the \
         CPU time). The cross-check counts the state read as the function's own time, hence larger \
         than the overhead. The floor is what the emulator and the \
         runtime loop cost together (a request and a response over loopback HTTP, JSON in and out, one \
         log line)."
    );
    let _ = writeln!(
        body,
        "\n**Secret caching.** The process's first connect made {} `GetSecretValue` call(s) (the Leaf owner's login and the grower's) and took {first_ms:.1} ms. The {runs} warm connects after it made {warm_secret_calls} Secrets Manager calls in all (`SECRET_CACHE_TTL_SECS` 300).",
        first_calls.get_secret_value
    );
    report.section("Warm connect", body);

    report.row(
        "warm connect overhead (median / p95)",
        format!("{:.2} ms / {:.2} ms", overhead.median, overhead.p95),
        format!("≤ {OVERHEAD_TARGET_MS:.0} ms (median)"),
        Some(overhead.median <= OVERHEAD_TARGET_MS),
    );
    if let Some(cpu) = cpu_per_connect {
        report.row(
            "CPU time per warm connect",
            format!("{cpu:.2} ms"),
            format!("≤ {CPU_PER_CONNECT_TARGET_MS:.0} ms"),
            Some(cpu <= CPU_PER_CONNECT_TARGET_MS),
        );
    }
    report.row(
        "Secrets Manager calls per warm invocation",
        format!(
            "{} in {runs} invocations (first, cold: {})",
            warm_secret_calls, first_calls.get_secret_value
        ),
        "0 while cached",
        Some(warm_secret_calls == 0),
    );
}

/// Round trips of the state write a connect makes after its POST (`TagResource` on the grower's
/// secret, the credentials id), from the bench's own SDK client through the same proxy to moto:
/// what that write costs by itself. The answer no longer waits for it (`lambda/after_response.rs`).
async fn state_write_round_trip(world: &World, bed: &Bed, id: &str, runs: usize) -> Summary {
    let config = testbed::moto::sdk_config().await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&config)
        .endpoint_url(world.proxy.endpoint())
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let secret = format!("{}{id}", bed.grower_prefix);
    let mut samples = Vec::new();
    for i in 0..runs + 5 {
        let tag = aws_sdk_secretsmanager::types::Tag::builder()
            .key("bench:probe")
            .value(i.to_string())
            .build();
        let started = std::time::Instant::now();
        client
            .tag_resource()
            .secret_id(&secret)
            .tags(tag)
            .send()
            .await
            .expect("moto tags the secret");
        if i >= 5 {
            samples.push(ms(started.elapsed()));
        }
    }
    Summary::of(&samples).expect("runs > 0")
}

/// One SQS batch of the given growers; returns the invocation's time and the function's CPU
/// time during it, in ms.
async fn batch(bed: &Bed, running: &Running, growers: &[String], force: bool) -> (f64, f64) {
    let bodies: Vec<String> = growers.iter().map(|id| connect_body(id, force)).collect();
    let cpu_before = cpu_time(running.function.pid()).unwrap_or_default();
    let invocation = bed.invoke(running, sqs_event(&bodies)).await;
    let cpu = cpu_time(running.function.pid())
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    let failures = batch_failures(&invocation);
    assert!(
        failures.is_empty(),
        "a batch of {} had failures: {failures:?}",
        growers.len()
    );
    (ms(invocation.elapsed), ms(cpu))
}

/// Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB.
pub fn vcpu_at(memory_mb: f64) -> f64 {
    memory_mb / 1769.0
}

/// Latency of batches of each size (forced reconnects of connected growers, secrets cached).
/// `reps`: repetitions of every size instead of the default (9 up to 10 messages, 5 up to 50, 3 above).
pub async fn batches(
    world: &World,
    sizes: &[usize],
    reps: Option<usize>,
    report: &mut Report,
) -> Option<String> {
    let largest = *sizes.iter().max()?;
    eprintln!("bench: batch scaling, sizes {sizes:?}");
    let bed = world.bed().await;
    let growers = seed_growers(&bed, largest, Seed::Connectable).await;
    let running = world.run(&bed, "connect", &[]).await;
    // Connect everyone (reads every login once), then one forced pass of the largest batch.
    for chunk in growers.chunks(BATCH_CONCURRENCY) {
        batch(&bed, &running, chunk, false).await;
    }
    batch(&bed, &running, &growers, true).await;
    batch(&bed, &running, &growers, true).await;

    let secrets_before = world.secret_calls();
    let reps = |n: usize| {
        if let Some(reps) = reps {
            reps
        } else if n <= 10 {
            9
        } else if n <= 50 {
            5
        } else {
            3
        }
    };
    let mut samples: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    // Sizes interleaved, so a slow moment of the machine does not land on one size only.
    for rep in 0..sizes.iter().map(|&n| reps(n)).max().unwrap_or(0) {
        for &n in sizes.iter().filter(|&&n| rep < reps(n)) {
            let (elapsed, cpu_ms) = batch(&bed, &running, &growers[..n], true).await;
            samples.entry(n).or_default().push(elapsed);
            cpu.entry(n).or_default().push(cpu_ms);
        }
    }
    let secret_calls = world.secret_calls() - secrets_before;
    let rss = running.function.peak_rss_kb().unwrap_or(0);
    let summaries: BTreeMap<usize, Summary> = samples
        .iter()
        .map(|(&n, s)| (n, Summary::of(s).expect("reps > 0")))
        .collect();
    let single = summaries.get(&1).map(|s| s.median);

    let mut body = String::new();
    let _ = writeln!(
        body,
        "SQS events of n messages (`events/connect-sqs.json` records), each a forced reconnect of a different, \
         already connected grower (the same 5-call path as the warm connect; logins cached), one invocation at \
         a time, sizes interleaved. `BATCH_CONCURRENCY` is the default, {BATCH_CONCURRENCY}: a batch runs in \
         ceil(n / {BATCH_CONCURRENCY}) waves. An SQS FIFO queue delivers at most 10 messages per batch; 100 is \
         what a standard queue with a batching window could deliver.\n"
    );
    let _ = writeln!(
        body,
        "| messages | latency | ÷ batch of 1 (median) | ideal (waves × batch of 1) | CPU time of `connect` (median) | vCPU used |\n|---|---|---|---|---|---|"
    );
    let mut demand_at_10 = None;
    for (&n, s) in &summaries {
        let ratio = single.map_or(String::new(), |one| format!("{:.2} ×", s.median / one));
        let ideal = single.map_or(String::new(), |one| {
            format!("{:.0} ms", n.div_ceil(BATCH_CONCURRENCY) as f64 * one)
        });
        let cpu_ms = Summary::of(&cpu[&n]).map_or(0.0, |c| c.median);
        let vcpu = cpu_ms / s.median;
        if n == BATCH_CONCURRENCY {
            demand_at_10 = Some((cpu_ms, vcpu));
        }
        let _ = writeln!(
            body,
            "| {n} | {} | {ratio} | {ideal} | {cpu_ms:.1} ms ({:.2} ms a message) | {vcpu:.3} |",
            s.describe("ms", 1),
            cpu_ms / n as f64
        );
    }
    let _ = writeln!(
        body,
        "\n*vCPU used* is the function's CPU time (all threads, from /proc/<pid>/task/*/schedstat) ÷ the batch's \
         latency: the share of one core the batch needs to run at this speed. Lambda gives {:.3} vCPU at 128 MB, \
         {:.3} at 256 MB and {:.3} at 512 MB; this machine's core is not a Graviton core, so read it as an estimate.",
        vcpu_at(128.0),
        vcpu_at(256.0),
        vcpu_at(512.0)
    );
    let _ = writeln!(
        body,
        "\nSecrets Manager calls during the measured batches: {}. Peak RSS of `connect` after them: {}.",
        secret_calls.get_secret_value + secret_calls.list_secrets,
        mb(rss)
    );
    report.section("Batch scaling", body);

    if let (Some(one), Some(ten)) = (single, summaries.get(&10)) {
        let ratio = ten.median / one;
        report.row(
            "SQS batch of 10 ÷ a single connect",
            format!("{ratio:.2} × ({:.0} ms ÷ {one:.0} ms)", ten.median),
            format!("≤ {BATCH_TARGET_RATIO} ×"),
            Some(ratio <= BATCH_TARGET_RATIO),
        );
    }
    if let (Some(one), Some(hundred)) = (single, summaries.get(&100)) {
        let ratio = hundred.median / one;
        report.row(
            "SQS batch of 100 ÷ a single connect",
            format!("{ratio:.2} × ({:.0} ms)", hundred.median),
            "(informational: 10 waves)",
            None,
        );
    }
    report.row(
        "peak RSS of `connect` (batches up to 100)",
        mb(rss),
        "(informational)",
        None,
    );
    if let Some((cpu_ms, vcpu)) = demand_at_10 {
        report.row(
            "CPU of `connect` in a batch of 10",
            format!("{cpu_ms:.1} ms, {vcpu:.3} vCPU over the batch"),
            format!("≤ {CPU_BATCH_OF_10_TARGET_MS:.0} ms"),
            Some(cpu_ms <= CPU_BATCH_OF_10_TARGET_MS),
        );
    }

    let points: Vec<Point> = summaries
        .iter()
        .map(|(&n, s)| Point {
            batch: n,
            median: s.median,
            min: s.min,
            max: s.max,
        })
        .collect();
    Some(chart::batch_chart(
        &points,
        BATCH_CONCURRENCY,
        world.latency.as_millis() as u64,
    ))
}
