//! The fan-out bench's rows and its section of docs/BENCHMARKS.md: the measured run, then the
//! model (`model`) checked against it and applied to 1,000,000 growers at 200 ms.

use std::fmt::Write;

use super::model::{self, Params, duration};
use super::{FLEET_MAX_RPS, Kind, Measured, PROCESSES, REQUESTS_PER_CHECK, TARGET_RATIO, VERIFY_CONCURRENCY};
use crate::machine::Machine;
use crate::report::{Report, mb, pass_text, thousands};
use crate::world::World;

/// Seconds per ListSecrets page assumed for Secrets Manager in the model (not measured here).
const AWS_PAGE_S: f64 = 0.1;

pub fn write(world: &World, m: &Measured, report: &mut Report) {
    let n = m.growers;
    let floor = (n * REQUESTS_PER_CHECK) as f64 / FLEET_MAX_RPS as f64;
    let run = m.run.as_secs_f64();
    let ratio = run / floor;
    let checks = m.drained.of_type("check");
    let lists = m.drained.of_type("list");
    let unique_checks = {
        let mut ids: Vec<&str> = checks.iter().map(|d| d.message_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let redelivered = m.drained.redelivered().len();
    let failed = m.drained.failed().len();
    let broken: usize = m.kinds.iter().filter(|(k, _)| k.broken()).map(|(_, n)| n).sum();
    let count = |kind: Kind| m.kinds.get(&kind).copied().unwrap_or(0);
    let pages = m.list_pages.max(1);
    let page_s = m.listing.as_secs_f64() / pages as f64;
    // The limiter spaces a process's requests exactly 1/LEAF_MAX_RPS apart (GCRA, no burst), so a
    // 1 s window holds at most one more a process as they are sent.
    let cap_edge = FLEET_MAX_RPS + PROCESSES;
    let highest_second = m.per_second.iter().max().copied().unwrap_or(0);
    let rss = |f: fn(&[u64]) -> Option<&u64>| {
        let all: Vec<u64> = m.processes.iter().map(|p| p.peak_rss_kb).collect();
        mb(f(&all).copied().unwrap_or(0))
    };
    let cpu: Vec<String> = m.processes.iter().map(|p| format!("{:.1}", p.cpu_s)).collect();

    let mut rows: Vec<(String, String, String, Option<bool>)> = Vec::new();
    rows.push((
        format!("fan-out of {} growers, listing excluded", thousands(n as u64)),
        format!("{run:.1} s = {ratio:.2} × the floor ({floor:.0} s)"),
        format!("≤ {TARGET_RATIO:.2} × floor"),
        Some(ratio <= TARGET_RATIO),
    ));
    rows.push((
        format!("fan-out of {} growers: the listing", thousands(n as u64)),
        format!(
            "{:.1} s ({} ListSecrets pages, {} check messages)",
            m.listing.as_secs_f64(),
            thousands(pages as u64),
            thousands(m.listing_report["messages"].as_u64().unwrap_or(0))
        ),
        "(informational)".into(),
        None,
    ));
    rows.push((
        "fan-out: Leaf requests in the busiest second".into(),
        format!(
            "{} (cap {})",
            thousands(highest_second as u64),
            thousands(FLEET_MAX_RPS as u64)
        ),
        format!("≤ cap + 1 a process ({})", thousands(cap_edge as u64)),
        Some(highest_second <= cap_edge),
    ));
    rows.push((
        "fan-out: peak Leaf requests in any sliding 1 s".into(),
        thousands(m.peak_1s as u64),
        "(informational: with the stand-in's timing jitter)".into(),
        None,
    ));
    rows.push((
        "fan-out: per verify process, peak RSS; CPU time".into(),
        format!(
            "{} to {}; {} s",
            rss(|a| a.iter().min()),
            rss(|a| a.iter().max()),
            cpu.join(" / ")
        ),
        "(informational)".into(),
        None,
    ));
    rows.push((
        "fan-out: messages (check, continuation, redelivered); repairs".into(),
        format!(
            "{}, {}, {}; {} repairs for {} broken",
            thousands(checks.len() as u64),
            lists.len(),
            redelivered,
            thousands(m.repairs as u64),
            thousands(broken as u64)
        ),
        "repairs = broken".into(),
        Some(m.repairs == broken),
    ));
    for (measure, figure, target, pass) in &rows {
        report.row(measure.clone(), figure.clone(), target.clone(), *pass);
    }

    let machine = Machine::describe();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{} growers, listed by one scheduled invocation of `verify` \
         (`events/verify-schedule-scheduler.json`) into a standard queue (`VERIFY_QUEUE_URL`), then checked \
         by **{PROCESSES} release `verify` processes** polling one Runtime API emulator, fed by the test \
         bed's event source mapping (`testbed::event_source::Mapping`: {PROCESSES} pollers, one batch each \
         at a time = `MaximumConcurrency` {PROCESSES}; `BatchSize` 10, `ReportBatchItemFailures`; it \
         deletes what a batch handled). Fleet-wide Leaf cap {} requests/s → `LEAF_MAX_RPS` {} a process; \
         `VERIFY_CONCURRENCY` {VERIFY_CONCURRENCY}, so the cap binds, not concurrency (unpaced, \
         {VERIFY_CONCURRENCY} checks × 2 requests ÷ {} ms = {} requests/s a process); verify's timeout \
         300 s as in template.yaml; the production HTTP settings; the stand-in's calls take {} ms on \
         average. The mix: {} healthy, {} unhealthy (`INVALID` credentials) and {} missing (no \
         credentials: three Leaf requests), all three checked and the broken ones repaired through a FIFO \
         connect queue; {} tagged disconnected and {} with a rejected login, counted and not checked. \
         Every message of 100 holds one broken grower. Four processes of 500 requests/s rather than the \
         template's `LeafRates` row for 2,000 (40 × 50): two cores cannot run forty; the model below \
         shows what the split changes (the cost, not the time).\n\n\
         Measured on {}: {} × {}, {}, {}; load average (1 min) {:.2} as the fan-out began, {:.2} as it \
         ended.\n",
        thousands(n as u64),
        thousands(FLEET_MAX_RPS as u64),
        FLEET_MAX_RPS / PROCESSES,
        world.latency.as_millis(),
        thousands((VERIFY_CONCURRENCY as f64 * 2.0 / world.latency.as_secs_f64().max(0.001)) as u64),
        world.latency.as_millis(),
        thousands(count(Kind::Healthy) as u64),
        count(Kind::Unhealthy),
        count(Kind::Missing),
        count(Kind::Disconnected),
        count(Kind::LoginRejected),
        machine.date,
        machine.cpus,
        machine.cpu_model,
        machine.memory,
        machine.kernel,
        m.load.0,
        m.load.1,
    );
    let _ = writeln!(
        md,
        "**Stand-ins for moto, in the AWS proxy.** moto's cost per call grows with what it holds: its \
         `ListSecrets` filters and serialises every secret for every page (~70 ms a page at 10,000 \
         secrets), and with 1,000 check messages of 11 KB waiting, a `ReceiveMessage` took 0.5–1 s and a \
         `GetQueueAttributes` 0.2–0.3 s (it reads every message's clock for every call); with several \
         receives at once it handed one message out twice. Measured through moto, the mapping's receives \
         and deletes left each process idle about 0.9 s a batch (1.27 × the floor). So here the AWS proxy \
         (tests/src/aws_proxy.rs) answers `ListSecrets` itself from the bench's list of the {} secrets \
         (`AwsProxy::list_secrets_from`: Secrets Manager's wire format, names, tags and \
         `SecretVersionsToStages`, pages of 100 with a `NextToken`), and keeps the verify queue and the \
         connect queue in memory (`AwsProxy::serve_queue`: send, receive with long polling, visibility, \
         delete, attributes, FIFO deduplication); the functions and the mapping reach both through the \
         proxy (`Mapping::drain_via`). The Leaf owner's secret is moto's. The listing runs first, alone; \
         *the run* is timed from the mapping's start to the last batch settled (deleted), so it excludes \
         the listing, as the target does. In AWS the mapping starts on the first messages while the \
         listing goes on.\n",
        thousands(n as u64)
    );
    let _ = writeln!(md, "| measure | figure | target | pass |\n|---|---|---|---|");
    for (measure, figure, target, pass) in &rows {
        let _ = writeln!(md, "| {measure} | {figure} | {target} | {} |", pass_text(*pass));
    }
    let leaf_checks = m.leaf_requests.saturating_sub(m.leaf_auth);
    let checked = m.totals["checked"].as_u64().unwrap_or(0).max(1);
    let exact_floor = m.leaf_requests as f64 / FLEET_MAX_RPS as f64;
    let mut seconds = m.per_second.clone();
    seconds.sort_unstable();
    let steady = if seconds.len() > 2 {
        &seconds[1..seconds.len() - 1]
    } else {
        &seconds[..]
    };
    let median = steady.get(steady.len() / 2).copied().unwrap_or(0);
    let _ = writeln!(
        md,
        "\n**Leaf's load.** {} Leaf requests in all: {} for the checks ({:.3} a checked grower) and {} \
         `/api/authenticate` (one a process). The floor of the target is the issue's, growers × 2 ÷ cap = \
         {floor:.0} s; with the requests this mix really makes, requests ÷ cap = {exact_floor:.1} s. Over \
         the {} whole seconds of the run (fixed windows from the first request; the first and last left \
         out): median {} requests/s, lowest {} and highest {}; mean {:.0}/s over the run. The target is \
         judged on these whole seconds: each process's requests are spaced exactly 1/`LEAF_MAX_RPS` apart \
         (GCRA without burst), so a second holds at most one more a process as they are sent \
         ({cap_edge}). Over *sliding* 1 s windows, each opening on a request, the peak is {}: the \
         stand-in counts a request when its handler runs, and on two cores shared by the four processes, \
         the stand-in and the bench, a request sent or stamped a few milliseconds late bunches with the \
         next ones ({} more than {cap_edge} is {:.1} ms of such delay). A Leaf that enforced its limit \
         over exact sliding windows would see about that much over it: set `LeafFleetMaxRps` a few \
         percent under a hard Leaf limit.\n",
        thousands(m.leaf_requests as u64),
        thousands(leaf_checks as u64),
        leaf_checks as f64 / checked as f64,
        m.leaf_auth,
        m.per_second.len(),
        thousands(median as u64),
        thousands(steady.first().copied().unwrap_or(0) as u64),
        thousands(steady.last().copied().unwrap_or(0) as u64),
        m.leaf_requests as f64 / run.max(0.001),
        thousands(m.peak_1s as u64),
        m.peak_1s.saturating_sub(cap_edge),
        m.peak_1s.saturating_sub(cap_edge) as f64 * 1000.0 / FLEET_MAX_RPS as f64,
    );
    let _ = writeln!(
        md,
        "| process | batches | busy (Σ batch elapsedMs) | peak RSS | CPU time (all threads, init and any \
         listing included) | vCPU over the run |\n|---|---|---|---|---|---|"
    );
    for (i, p) in m.processes.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} s | {} | {:.2} s | {:.3} |",
            i + 1,
            p.batches,
            p.busy_s,
            mb(p.peak_rss_kb),
            p.cpu_s,
            p.cpu_s / (run + m.listing.as_secs_f64())
        );
    }
    let busy: f64 = m.processes.iter().map(|p| p.busy_s).sum();
    let _ = writeln!(
        md,
        "\nAt 500 Leaf requests/s a process uses about {:.2} vCPU here (x86, plain HTTP: no TLS); the \
         template's rows run 50 a process, and 256 MB gives 0.145 vCPU.",
        m.processes.iter().map(|p| p.cpu_s).sum::<f64>()
            / (m.processes.len().max(1) as f64 * (run + m.listing.as_secs_f64()))
    );
    let _ = writeln!(
        md,
        "\n**Messages.** {} check messages delivered ({} distinct), {} continuation (`list`) messages (the \
         listing ended well inside its 300 s), {redelivered} redelivered, {failed} batch item failures, in \
         {} invocations; one check message's body is {:.1} KB on average. Growers whose check failed for a \
         transient reason (the message then comes back), by code: {}. {} repair messages reached the \
         connect queue for the {} broken growers ({} `connection needs repair` lines: a check repeated by a \
         redelivery repeats its repair, which the queue deduplicates per run). The batches' summary lines \
         add up to: `{}`. SQS calls: the listing {} `SendMessageBatch` and {} `SendMessage`; during the \
         checks, the mapping's {} `ReceiveMessage` (its last, empty long polls included), {} \
         `DeleteMessageBatch` and {} `ChangeMessageVisibilityBatch`, and the repairs' {} \
         `SendMessageBatch` (one a repair: the broken growers come one at a time; the emulator's watcher \
         asked `GetQueueAttributes` {} times: not a Lambda call).\n",
        thousands(checks.len() as u64),
        thousands(unique_checks as u64),
        lists.len(),
        m.drained.invocations,
        m.message_bytes / 1000.0,
        if m.transient.is_empty() {
            "none".to_owned()
        } else {
            format!("{:?}", m.transient)
        },
        thousands(m.repairs as u64),
        thousands(broken as u64),
        thousands(m.found_broken as u64),
        m.totals,
        m.sqs_listing.send_batch,
        m.sqs_listing.send,
        m.sqs_drain.receive,
        m.sqs_drain.delete_batch,
        m.sqs_drain.visibility_batch,
        m.sqs_drain.send_batch,
        m.sqs_drain.attributes,
    );

    // The model, checked against this run.
    let here = Params {
        growers: n as f64,
        latency_s: world.latency.as_secs_f64(),
        requests_per_check: m.leaf_requests as f64 / n as f64,
        verify_concurrency: VERIFY_CONCURRENCY as f64,
        max_concurrency: PROCESSES as f64,
        leaf_max_rps: (FLEET_MAX_RPS / PROCESSES) as f64,
        growers_per_message: 100.0,
        batch_size: 10.0,
        page_s,
        timeout_s: 300.0,
        memory_gb: 0.25,
        message_bytes: m.message_bytes,
    };
    let e = here.estimate();
    let _ = writeln!(
        md,
        "### A model, and 1,000,000 growers at 200 ms\n\nWith N growers, q Leaf requests a check, Leaf \
         latency L, `VERIFY_CONCURRENCY` c, `LEAF_MAX_RPS` r, `MaximumConcurrency` m, p seconds a \
         ListSecrets page (with its share of the `SendMessageBatch` calls), 100 growers a message and 10 \
         messages a batch:\n\n- Leaf requests/s of a busy process r' = min(r, c × q ÷ L); of the fleet R = \
         m × r' (the template's `LeafRates` row for `LeafFleetMaxRps` gives m and r, m × r ≤ \
         LeafFleetMaxRps);\n- checks: N × q ÷ R; listing: ⌈N ÷ 100⌉ × p, one invocation per 297 s (the \
         rest are continuations);\n- run time ≈ max(N × q ÷ R + 10 p, ⌈N ÷ 100⌉ × p + 100 q ÷ r'): the \
         checks wait for the first batch to be listed, and the last message listed still has to be \
         checked;\n- GB-seconds = 0.25 GB × (N × q ÷ r' + ⌈N ÷ 100⌉ × p): a process is billed while its \
         batch's requests go out at r', so **the cost depends on the per-process rate, not on m** (m only \
         sets the time); one batch lasts 1,000 q ÷ r';\n- Lambda requests: ⌈N ÷ 1,000⌉ check invocations + \
         the listing's; SQS: ⌈N ÷ 1,000⌉ `SendMessageBatch` (+ one `SendMessage` a continuation), at least \
         as many receives (Lambda's pollers) and `DeleteMessageBatch` calls; a batch of 10 messages of \
         ~{:.0} KB is 2 billed requests (64 KiB each) to send and to receive. Not modelled: the pollers' \
         empty receives on an idle queue, the repairs (one message a broken grower, on the connect queue) \
         and connect's own work.\n\n*Checked against this run:* with L = {:.1} ms (a stand-in call, on \
         average), q = {:.3}, c = {VERIFY_CONCURRENCY}, r = {}, m = \
         {PROCESSES} and p = {:.1} ms (this listing, measured), the model gives a run of {} (checks {:.1} \
         s; measured {run:.1} s, listing excluded) and {:.0} process-seconds busy (measured: {busy:.0} s, \
         Σ of the batches' elapsedMs).\n",
        m.message_bytes / 1000.0,
        here.latency_s * 1000.0,
        here.requests_per_check,
        FLEET_MAX_RPS / PROCESSES,
        page_s * 1000.0,
        duration(e.check_s + 10.0 * page_s),
        e.check_s,
        e.gb_s / 0.25 - e.listing_s,
    );
    let million = Params {
        growers: 1_000_000.0,
        latency_s: 0.2,
        requests_per_check: 2.0,
        verify_concurrency: 16.0,
        page_s: AWS_PAGE_S,
        message_bytes: m.message_bytes,
        ..here
    };
    let _ = writeln!(
        md,
        "*1,000,000 growers at 200 ms*, `VERIFY_CONCURRENCY` 16 (the default: 16 × 2 ÷ 0.2 s = 160 \
         requests/s a process, so the 50 of every `LeafRates` row binds up to a latency of 0.64 s), q = 2, \
         256 MB arm64, timeout 300 s, and p = {:.0} ms a page *assumed* for Secrets Manager (not measured; \
         the real figure is `elapsedMs ÷ pages` of the `verify listing finished` line). 10,000 check \
         messages of ~{:.0} KB, 1,000 check invocations of 40 s, 2,000,000 Leaf requests:\n",
        AWS_PAGE_S * 1000.0,
        m.message_bytes / 1000.0
    );
    md.push_str(&model::table(million));
    let _ = writeln!(
        md,
        "\nWhat changes the figures: `LeafFleetMaxRps` (through its `LeafRates` row, m × r: the time, and \
         Leaf's requests/s); `LEAF_MAX_RPS` r alone (the GB-seconds: halving r doubles them); \
         `VERIFY_CONCURRENCY` only when c × q ÷ L < r (a slower Leaf, or a lower c); L itself only then \
         too; q (a fleet with many missing connections makes up to 3 requests a check); the listing's page \
         time p, which binds once ⌈N ÷ 100⌉ × p exceeds N × q ÷ R (here from about {:.0} requests/s of \
         fleet rate on); `BatchSize` 10 and 100 growers a message (the SQS request counts, and a batch's \
         length, 1,000 q ÷ r' = 40 s, which must stay within the 297 s an invocation has). At the default \
         `LeafFleetMaxRps` of 100 a million growers take 5.6 hours: an hourly schedule then starts runs \
         that overlap (each a new run id); choose a rate that fits the schedule, or a longer \
         schedule.\n\n{}",
        2.0 / AWS_PAGE_S * 100.0,
        model::PRICES
    );
    report.section("Verify fan-out (issue 12)", md);
}
