//! Verify's SQS trigger: the messages of fanned-out runs (docs/VERIFY.md). Check messages are
//! checked together, `list` messages list on; a message is delivered again only when some of
//! its work failed for a reason time can fix.

use std::time::Instant;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::Context;
use tracing::Instrument;

use super::verify_handler::VerifyApp;
use super::verify_run::{limits, list, log_counts, summary_metrics};
use crate::adapters::metrics::{LatencySamples, MetricSet};
use crate::domain::verify::{BadMessage, CheckWork, VerifyMessage, parse_verify_message};

pub(super) async fn handle_sqs(app: &VerifyApp, event: SqsEvent, context: &Context) -> SqsBatchResponse {
    let started = Instant::now();
    let limits = limits(app, context);
    let (mut checks, mut lists, mut refused) = (Vec::new(), Vec::new(), 0u64);
    for record in event.records {
        let message_id = record.message_id.unwrap_or_default();
        let parsed = match record.body.as_deref() {
            Some(body) => parse_verify_message(body),
            None => Err(BadMessage("the message has no body".into())),
        };
        match parsed {
            Ok(VerifyMessage::Check { run_id, growers }) => checks.push(CheckWork {
                message_id,
                run_id,
                growers,
            }),
            Ok(VerifyMessage::List { run_id, next_token }) => lists.push((message_id, run_id, next_token)),
            Err(bad) => {
                // Another delivery would fail the same way: logged, counted, not retried.
                refused += 1;
                tracing::error!(messageId = %message_id, code = "invalid_message", reason = %bad,
                    "verify message refused");
            }
        }
    }
    let span = tracing::info_span!("verify_batch", checks = checks.len(), lists = lists.len());
    let listing = async {
        let mut failed = Vec::new();
        for (message_id, run_id, token) in lists {
            let listed = match app.verify_queue.as_deref() {
                Some(queue) => list(app, queue, &run_id, Some(token), &limits).await.is_ok(),
                None => {
                    tracing::error!(runId = %run_id, code = "configuration",
                        "a list message arrived, but VERIFY_QUEUE_URL is not set: it cannot list on");
                    false
                }
            };
            if !listed {
                failed.push(message_id);
            }
        }
        failed
    };
    let mut latency = LatencySamples::new("verify");
    let checking = app
        .verifier
        .check_messages(checks, app.repairs.as_deref(), &limits, &mut latency);
    let (mut failed, report) = async { tokio::join!(listing, checking) }.instrument(span).await;
    for (run_id, (messages, s)) in &report.runs {
        log_counts!(
            run_id,
            s,
            messages,
            elapsedMs = started.elapsed().as_millis() as u64,
            "verify batch finished"
        );
        summary_metrics(s, run_id).emit();
    }
    if refused > 0 {
        MetricSet::new("verify").count("Errors", refused).emit();
    }
    failed.extend(report.failed);
    let mut response = SqsBatchResponse::default();
    for id in failed {
        // Both types are non-exhaustive: built field by field.
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}
