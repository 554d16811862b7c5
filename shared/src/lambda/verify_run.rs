//! A scheduled verify run: checked in this invocation, or, with a verify queue, listed into it
//! for the queue's consumers to check (fan-out, docs/VERIFY.md).
//!
//! Either way the invocation ends by its own deadline and says what it did: a run cut short by
//! time is a success with `unchecked` counted, so the schedule's retry does not sweep again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, Diagnostic};
use serde_json::Value;
use tracing::Instrument;

use super::invocation::invocation_deadline;
use super::trigger::Schedule;
use super::verify_handler::VerifyApp;
use crate::adapters::metrics::{LatencySamples, MetricSet};
use crate::domain::error::ConnectorError;
use crate::domain::ports::VerifyQueue;
use crate::domain::time::Deadline;
use crate::domain::verify::{
    Limits, ListingReport, RunSettings, RunSummary, list_into_queue, rotation_start,
};

/// The longest a Lambda function can run; a scheduled run is bounded by its own timeout.
const LONGEST_RUN: Duration = Duration::from_secs(15 * 60);
/// Kept back from the invocation's deadline: no check or page starts in it.
const FINISH_MARGIN: Duration = Duration::from_secs(3);
/// Kept back for the summary: no repair or queue message is sent in it.
const SEND_MARGIN: Duration = Duration::from_secs(1);

/// One log line with a run's (or a batch's) counts, each a top-level field, then `$rest`: more
/// fields and the message. One macro, so the run and the batch lines cannot drift apart.
macro_rules! log_counts {
    ($run_id:expr, $s:expr, $($rest:tt)+) => {
        tracing::info!(
            runId = %$run_id,
            checked = $s.checked,
            healthy = $s.healthy,
            unhealthy = $s.unhealthy,
            missing = $s.missing,
            pending = $s.pending,
            errors = $s.errors,
            unchecked = $s.unchecked,
            repairsQueued = $s.repairs_queued,
            repairsFailed = $s.repairs_failed,
            disconnected = $s.disconnected,
            loginRejected = $s.login_rejected,
            $($rest)+
        )
    };
}
pub(super) use log_counts;

/// The limits of this invocation's checks and sends.
pub(super) fn limits(app: &VerifyApp, context: &Context) -> Limits {
    let lambda = invocation_deadline(context, LONGEST_RUN).remaining();
    Limits {
        concurrency: app.concurrency,
        check_budget: app.budget,
        deadline: Deadline::after(lambda.saturating_sub(FINISH_MARGIN)),
        finish: Deadline::after(lambda.saturating_sub(SEND_MARGIN)),
    }
}

pub(super) async fn handle_schedule(
    app: &VerifyApp,
    schedule: &Schedule,
    context: &Context,
) -> Result<Value, Diagnostic> {
    let run_id = context.request_id.clone();
    let span = tracing::info_span!(
        "verify_run",
        runId = %run_id,
        schedule = schedule.description(),
        eventId = schedule.event_id.as_deref(),
        scheduledTime = schedule.time.as_deref()
    );
    let limits = limits(app, context);
    match app.verify_queue.as_deref() {
        Some(queue) => list(app, queue, &run_id, None, &limits).instrument(span).await,
        None => run_here(app, run_id, limits).instrument(span).await,
    }
}

/// Lists growers into the verify queue from `token`, for the schedule or a `list` message.
pub(super) async fn list(
    app: &VerifyApp,
    queue: &dyn VerifyQueue,
    run_id: &str,
    token: Option<String>,
    limits: &Limits,
) -> Result<Value, Diagnostic> {
    let started = Instant::now();
    match list_into_queue(app.directory.as_ref(), queue, run_id, token, limits).await {
        Ok(report) => {
            log_listing(&report, started.elapsed());
            Ok(serde_json::to_value(&report).expect("a report always serialises"))
        }
        Err(e) => Err(run_failed(&e, run_id)),
    }
}

async fn run_here(app: &VerifyApp, run_id: String, limits: Limits) -> Result<Value, Diagnostic> {
    let started = Instant::now();
    let minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60);
    let settings = RunSettings {
        run_id,
        start: rotation_start(minute),
        limits,
    };
    let report = app
        .verifier
        .run(
            app.directory.as_ref(),
            app.repairs.as_deref(),
            &settings,
            &mut LatencySamples::new("verify"),
        )
        .await;
    let s = &report.summary;
    log_counts!(
        &settings.run_id,
        s,
        listingComplete = report.listing_complete,
        elapsedMs = started.elapsed().as_millis() as u64,
        "verify run finished"
    );
    summary_metrics(s, &settings.run_id)
        .millis("RunDuration", started.elapsed())
        .emit();
    match report.failure {
        None => Ok(serde_json::to_value(s).expect("a summary always serialises")),
        Some(e) => Err(run_failed(&e, &settings.run_id)),
    }
}

/// A run's (or a batch's) counts as EMF metrics; the run id is a property, not a dimension.
pub(super) fn summary_metrics(s: &RunSummary, run_id: &str) -> MetricSet {
    MetricSet::new("verify")
        .count("Checked", s.checked)
        .count("Healthy", s.healthy)
        .count("Unhealthy", s.unhealthy)
        .count("Missing", s.missing)
        .count("Pending", s.pending)
        .count("Errors", s.errors)
        .count("Unchecked", s.unchecked)
        .count("RepairsQueued", s.repairs_queued)
        .count("RepairsFailed", s.repairs_failed)
        .count("Disconnected", s.disconnected)
        .count("LoginRejected", s.login_rejected)
        .property("runId", run_id)
}

fn log_listing(r: &ListingReport, elapsed: Duration) {
    tracing::info!(
        runId = %r.run_id,
        listed = r.listed,
        messages = r.messages,
        pages = r.pages,
        continued = r.continued,
        misnamed = r.misnamed,
        elapsedMs = elapsed.as_millis() as u64,
        "verify listing finished"
    );
    MetricSet::new("verify")
        .count("Listed", r.listed)
        .count("CheckMessages", r.messages)
        .count("Errors", r.misnamed)
        .property("runId", r.run_id.as_str())
        .emit();
}

fn run_failed(e: &ConnectorError, run_id: &str) -> Diagnostic {
    tracing::error!(runId = run_id, code = e.code(), retryable = e.is_retryable(), error = %e,
        "verify run failed: the growers could not be listed");
    MetricSet::new("verify").count("RunsFailed", 1).emit();
    Diagnostic {
        error_type: e.code().into(),
        error_message: format!("verify run failed: {}", e.public_message()),
    }
}
