//! A run spread over the verify queue: one invocation lists the growers into check messages
//! (handing the listing on when its time is up), and any number of invocations check them.
//!
//! Each page is sent before the token of the next one is handed on, so every grower listed
//! goes into exactly one check message; SQS's at-least-once delivery can still repeat a
//! message, and a repeated check only repeats a repair that the connect queue deduplicates
//! per run.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::Verifier;
use super::checks::{Job, Limits, left_alone};
use super::messages::{CheckedGrower, GROWERS_PER_MESSAGE, VerifyMessage};
use super::run::RunSummary;
use super::stages::{send_repairs, warn_misnamed};
use crate::domain::error::ConnectorError;
use crate::domain::ports::{
    GrowerDirectory, LatencyRecorder, REPAIRS_PER_CALL, RepairQueue, VERIFY_MESSAGES_PER_CALL, VerifyQueue,
};

/// What one listing invocation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListingReport {
    pub(crate) run_id: String,
    /// Growers put into check messages.
    pub(crate) listed: u64,
    /// Check messages sent.
    pub(crate) messages: u64,
    pub(crate) pages: u64,
    /// Whether the listing was handed on to another invocation.
    pub(crate) continued: bool,
    /// Secrets under the prefix that name no grower: errors, never checked.
    pub(crate) misnamed: u64,
}

/// Lists growers from `token` (`None`: the first page) into check messages until the last page
/// or `deadline`, then hands the rest on in a `list` message. At least one page is listed, so a
/// run always moves on. A failure before the first page is the caller's to retry; a failure
/// after it hands the listing on from the page that failed.
pub(crate) async fn list_into_queue(
    directory: &dyn GrowerDirectory,
    queue: &dyn VerifyQueue,
    run_id: &str,
    mut token: Option<String>,
    limits: &Limits,
) -> Result<ListingReport, ConnectorError> {
    let mut report = ListingReport {
        run_id: run_id.to_owned(),
        ..ListingReport::default()
    };
    let mut seen = HashSet::new();
    let mut pending = Vec::with_capacity(VERIFY_MESSAGES_PER_CALL);
    loop {
        let first = report.pages == 0;
        let time_left = if first { &limits.finish } else { &limits.deadline };
        let page = match tokio::time::timeout(time_left.remaining(), directory.page(token.clone())).await {
            Ok(Ok(page)) => page,
            Ok(Err(e)) if first => return Err(e),
            Err(_) if first => return Err(listing_timed_out()),
            Ok(Err(e)) => {
                tracing::warn!(code = e.code(), error = %e, pages = report.pages,
                    "a page could not be listed: the listing is handed on from it");
                break;
            }
            Err(_) => break,
        };
        report.pages += 1;
        for name in &page.misnamed {
            report.misnamed += 1;
            warn_misnamed(name);
        }
        let growers: Vec<CheckedGrower> = page
            .growers
            .iter()
            .filter(|g| seen.insert(g.id))
            .map(CheckedGrower::from)
            .collect();
        report.listed += growers.len() as u64;
        for part in growers.chunks(GROWERS_PER_MESSAGE) {
            pending.push(VerifyMessage::Check {
                run_id: run_id.to_owned(),
                growers: part.to_vec(),
            });
        }
        token = page.next;
        if pending.len() >= VERIFY_MESSAGES_PER_CALL || token.is_none() {
            report.messages += flush(queue, &mut pending).await?;
        }
        if token.is_none() || limits.deadline.is_past() {
            break;
        }
    }
    report.messages += flush(queue, &mut pending).await?;
    if let Some(next_token) = token {
        queue
            .send(&[VerifyMessage::List {
                run_id: run_id.to_owned(),
                next_token,
            }])
            .await?;
        report.continued = true;
    }
    Ok(report)
}

async fn flush(queue: &dyn VerifyQueue, pending: &mut Vec<VerifyMessage>) -> Result<u64, ConnectorError> {
    let n = pending.len() as u64;
    for part in pending.chunks(VERIFY_MESSAGES_PER_CALL) {
        queue.send(part).await?;
    }
    pending.clear();
    Ok(n)
}

fn listing_timed_out() -> ConnectorError {
    ConnectorError::SecretsUnavailable {
        secret_id: "(ListSecrets)".into(),
        detail: "no page before the deadline".into(),
    }
}

/// One check message of a batch.
#[derive(Clone, Debug)]
pub(crate) struct CheckWork {
    /// The SQS message id, for `batchItemFailures`.
    pub(crate) message_id: String,
    pub(crate) run_id: String,
    pub(crate) growers: Vec<CheckedGrower>,
}

/// How a batch of check messages went: counts by run, and the messages to deliver again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchReport {
    /// By run id: how many of the batch's messages were of that run, and their counts.
    pub(crate) runs: BTreeMap<String, (u64, RunSummary)>,
    /// Messages with a grower that could not be checked for a reason time may fix.
    pub(crate) failed: Vec<String>,
}

impl Verifier {
    /// Checks the growers of every message, `limits.concurrency` at a time across the batch,
    /// and queues repairs under each message's run id.
    pub(crate) async fn check_messages(
        &self,
        work: Vec<CheckWork>,
        repairs: Option<&dyn RepairQueue>,
        limits: &Limits,
        latency: &mut dyn LatencyRecorder,
    ) -> BatchReport {
        let mut runs: BTreeMap<String, (u64, RunSummary)> = BTreeMap::new();
        let mut jobs = Vec::new();
        for (origin, message) in work.iter().enumerate() {
            let (messages, summary) = runs.entry(message.run_id.clone()).or_default();
            *messages += 1;
            let run_id: Arc<str> = message.run_id.as_str().into();
            for grower in &message.growers {
                match left_alone(&grower.state()) {
                    Some(health) => summary.count(super::checks::Outcome::Settled(health)),
                    None => jobs.push(Job {
                        user: grower.leaf_user_id,
                        run_id: run_id.clone(),
                        origin,
                    }),
                }
            }
        }
        let (to_queue, queued) = mpsc::channel(REPAIRS_PER_CALL * 4);
        let mut retry = vec![false; work.len()];
        let checking = async {
            let jobs = futures_util::stream::iter(jobs);
            self.check_jobs(jobs, &to_queue, limits, latency, |job, outcome| {
                retry[job.origin] |= outcome.wants_retry();
                if let Some((_, summary)) = runs.get_mut(job.run_id.as_ref()) {
                    summary.count(outcome);
                }
            })
            .await;
            drop(to_queue);
        };
        let ((), sent) = tokio::join!(checking, send_repairs(repairs, queued, &limits.finish));
        for (run, (queued, failed)) in sent {
            if let Some((_, summary)) = runs.get_mut(run.as_ref()) {
                summary.repairs_queued += queued;
                summary.repairs_failed += failed;
            }
        }
        let failed = work
            .into_iter()
            .zip(retry)
            .filter_map(|(message, retry)| retry.then_some(message.message_id))
            .collect();
        BatchReport { runs, failed }
    }
}

#[cfg(test)]
mod tests;
