//! A model of a fanned-out verify run (issue 12): time, Lambda GB-seconds and cost, SQS requests
//! and Leaf's request rate, from the parameters that set them. The bench checks it against its
//! own measured run, then applies it to 1,000,000 growers at 200 ms.

use std::fmt::Write;

use crate::report::thousands;

/// Lambda arm64, us-east-1, first tier: dollars per GB-second, and per request.
pub const LAMBDA_GB_S: f64 = 0.000_013_333_4;
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// SQS standard queue, per request (each 64 KiB of payload counts as one).
pub const SQS_REQUEST: f64 = 0.40 / 1e6;
/// What the price figures assume (they are not fetched).
pub const PRICES: &str = "Prices: AWS Lambda arm64 in us-east-1, first tier, $0.0000133334 per GB-second \
    and $0.20 per million requests; SQS standard $0.40 per million requests (64 KiB of payload = one \
    request). These are the public list prices assumed at the time of writing (late 2026, as given for \
    issue 12); the bench does not fetch them: check aws.amazon.com/lambda/pricing and \
    aws.amazon.com/sqs/pricing. Free tiers are ignored.";

/// What a run depends on.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub growers: f64,
    /// Leaf's latency per request, seconds.
    pub latency_s: f64,
    /// Leaf requests per check: the credentials and their events, at once (a missing
    /// connection costs a third, the user lookup).
    pub requests_per_check: f64,
    /// `VERIFY_CONCURRENCY`: checks in flight per process.
    pub verify_concurrency: f64,
    /// The event source mapping's `MaximumConcurrency`: processes at once.
    pub max_concurrency: f64,
    /// `LEAF_MAX_RPS`, per process.
    pub leaf_max_rps: f64,
    pub growers_per_message: f64,
    /// The mapping's `BatchSize`.
    pub batch_size: f64,
    /// Seconds per ListSecrets page of 100, with its share of the `SendMessageBatch` calls.
    pub page_s: f64,
    /// Verify's timeout (the listing hands on 3 s before it).
    pub timeout_s: f64,
    pub memory_gb: f64,
    /// Size of one check message's body.
    pub message_bytes: f64,
}

/// What the model gives.
#[derive(Clone, Copy, Debug, Default)]
pub struct Estimate {
    /// Leaf requests/s of one busy process, and of the fleet.
    pub process_rps: f64,
    pub fleet_rps: f64,
    /// Check invocations (full batches).
    pub batches: f64,
    /// One full batch, seconds.
    pub batch_s: f64,
    /// All checks at the fleet's rate, seconds.
    pub check_s: f64,
    pub listing_s: f64,
    pub listing_invocations: f64,
    /// The run, first page to last check, seconds.
    pub time_s: f64,
    pub gb_s: f64,
    pub lambda_cost: f64,
    pub sqs_sends: f64,
    pub sqs_receives: f64,
    pub sqs_deletes: f64,
    /// Billed SQS requests (64 KiB chunks).
    pub sqs_billed: f64,
    pub sqs_cost: f64,
}

impl Params {
    pub fn estimate(&self) -> Estimate {
        let p = self;
        // A check holds one slot for one latency and sends its requests at once.
        let by_concurrency = p.verify_concurrency * p.requests_per_check / p.latency_s;
        let process_rps = p.leaf_max_rps.min(by_concurrency);
        let fleet_rps = p.max_concurrency * process_rps;
        let leaf_requests = p.growers * p.requests_per_check;
        let messages = (p.growers / p.growers_per_message).ceil();
        let batches = (messages / p.batch_size).ceil();
        let batch_s = p.batch_size * p.growers_per_message * p.requests_per_check / process_rps;
        let check_s = leaf_requests / fleet_rps;
        let listing_s = (p.growers / 100.0).ceil() * p.page_s;
        let listing_invocations = (listing_s / (p.timeout_s - 3.0)).ceil().max(1.0);
        // The checks wait for the first batch to be listed; the last message listed still
        // has to be checked.
        let lead = p.batch_size * p.page_s;
        let tail = p.growers_per_message * p.requests_per_check / process_rps;
        let time_s = (check_s + lead).max(listing_s + tail);
        // Each process is busy (billed) while its batch's requests go out at its rate.
        let busy_s = leaf_requests / process_rps + listing_s;
        let gb_s = busy_s * p.memory_gb;
        let lambda_cost = gb_s * LAMBDA_GB_S + (batches + listing_invocations) * LAMBDA_REQUEST;
        let sends = batches + listing_invocations - 1.0;
        let chunks = (p.batch_size * p.message_bytes / 65_536.0).ceil();
        let sqs_billed = batches * chunks * 2.0 + (listing_invocations - 1.0) + batches;
        Estimate {
            process_rps,
            fleet_rps,
            batches,
            batch_s,
            check_s,
            listing_s,
            listing_invocations,
            time_s,
            gb_s,
            lambda_cost,
            sqs_sends: sends,
            sqs_receives: batches,
            sqs_deletes: batches,
            sqs_billed,
            sqs_cost: sqs_billed * SQS_REQUEST,
        }
    }
}

/// The template's `LeafRates` rows: LeafFleetMaxRps → (MaximumConcurrency, LEAF_MAX_RPS).
pub const LEAF_RATES: [(u32, f64, f64); 5] = [
    (100, 2.0, 50.0),
    (500, 10.0, 50.0),
    (1000, 20.0, 50.0),
    (2000, 40.0, 50.0),
    (5000, 100.0, 50.0),
];

/// The model for `growers` at `latency_s`, one row per `LeafRates` row, as markdown.
pub fn table(base: Params) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| LeafFleetMaxRps (MaximumConcurrency × LEAF_MAX_RPS) | Leaf requests/s: fleet (a process) | run \
         time | check invocations (one: s) | listing invocations | GB-s | Lambda $ a run | SQS sends / \
         receives / deletes (billed) | SQS $ a run | $ a month, hourly |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for (rate, processes, per_process) in LEAF_RATES {
        let e = Params {
            max_concurrency: processes,
            leaf_max_rps: per_process,
            ..base
        }
        .estimate();
        let hourly = if e.time_s <= 3600.0 {
            ""
        } else {
            " (longer than the hour)"
        };
        let _ = writeln!(
            md,
            "| {rate} ({processes:.0} × {per_process:.0}) | {:.0} ({:.0}) | {}{hourly} | {} ({:.0} s) | \
             {:.0} | {} | ${:.3} | {} / {} / {} ({}) | ${:.4} | ${:.2} |",
            e.fleet_rps,
            e.process_rps,
            duration(e.time_s),
            thousands(e.batches as u64),
            e.batch_s,
            e.listing_invocations,
            thousands(e.gb_s.round() as u64),
            e.lambda_cost,
            thousands(e.sqs_sends as u64),
            thousands(e.sqs_receives as u64),
            thousands(e.sqs_deletes as u64),
            thousands(e.sqs_billed as u64),
            e.sqs_cost,
            (e.lambda_cost + e.sqs_cost) * 24.0 * 30.0,
        );
    }
    md
}

/// 1234 s → "20 min 34 s"; under a minute, "12.3 s".
pub fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let whole = secs.round() as u64;
    if whole >= 3600 {
        return format!("{} h {:02} min", whole / 3600, whole % 3600 / 60);
    }
    format!("{} min {:02} s", whole / 60, whole % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn million_at_200_ms() -> Params {
        Params {
            growers: 1_000_000.0,
            latency_s: 0.2,
            requests_per_check: 2.0,
            verify_concurrency: 16.0,
            max_concurrency: 40.0,
            leaf_max_rps: 50.0,
            growers_per_message: 100.0,
            batch_size: 10.0,
            page_s: 0.1,
            timeout_s: 300.0,
            memory_gb: 0.25,
            message_bytes: 11_000.0,
        }
    }

    #[test]
    fn the_cap_binds_at_200_ms_and_sets_time_and_cost() {
        let e = million_at_200_ms().estimate();
        assert_eq!(e.process_rps, 50.0, "16 × 2 / 0.2 s = 160 > 50");
        assert_eq!(e.fleet_rps, 2_000.0);
        assert_eq!(e.batches, 1_000.0, "10,000 messages");
        assert_eq!(e.check_s, 1_000.0);
        assert_eq!(e.batch_s, 40.0);
        // 10,000 pages at 0.1 s: 1,000 s, four invocations of 297 s.
        assert_eq!((e.listing_s, e.listing_invocations), (1_000.0, 4.0));
        // 2,000,000 requests at 50/s = 40,000 s busy, plus the listing, at 0.25 GB.
        assert_eq!(e.gb_s, 10_250.0);
        assert!((e.lambda_cost - 0.1369).abs() < 0.001, "{}", e.lambda_cost);
        // 110 KB a batch: two 64 KiB chunks to send and to receive, one delete.
        assert_eq!(
            (e.sqs_sends, e.sqs_receives, e.sqs_deletes),
            (1_003.0, 1_000.0, 1_000.0)
        );
        assert_eq!(e.sqs_billed, 5_003.0);
    }

    #[test]
    fn concurrency_binds_when_leaf_is_slow() {
        let slow = Params {
            latency_s: 1.0,
            ..million_at_200_ms()
        };
        assert_eq!(slow.estimate().process_rps, 32.0, "16 × 2 / 1 s");
        assert_eq!(duration(59.94), "59.9 s");
        assert_eq!(duration(1_000.0), "16 min 40 s");
        assert_eq!(duration(20_000.0), "5 h 33 min");
        assert!(table(million_at_200_ms()).contains("| 2000 (40 × 50) | 2000 (50) |"));
    }
}
