//! The mechanics of an SQS batch, as in the runtime's partial-batch example: a pure plan (parse,
//! de-duplicate, reject) and a runner (bounded concurrency, outcomes → `batchItemFailures`).

use std::collections::HashMap;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use futures_util::StreamExt;
use uuid::Uuid;

use super::request::{BadRequest, parse_connect_body};
use crate::domain::error::{ConnectorError, Fault};
use crate::domain::model::ConnectRequest;

/// One grower's work: the merged request and every message that asked for it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Work {
    pub(crate) request: ConnectRequest,
    pub(crate) message_ids: Vec<String>,
}

/// What a batch asks for, decided before anything is called.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// One entry per grower, in order of first appearance.
    pub(crate) work: Vec<Work>,
    /// Messages folded into an earlier one for the same grower: (message id, grower).
    pub(crate) duplicates: Vec<(String, Uuid)>,
    /// Messages that cannot be parsed, and never will be: (message id, why).
    pub(crate) rejected: Vec<(String, BadRequest)>,
}

/// Parses every record, folds requests for the same grower into one, and sets aside the
/// records that cannot be parsed.
pub(crate) fn plan(records: Vec<SqsMessage>) -> Plan {
    let mut plan = Plan::default();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for record in records {
        let message_id = record.message_id.unwrap_or_default();
        let parsed = match record.body.as_deref() {
            Some(body) => parse_connect_body(body.as_bytes()),
            None => Err(BadRequest("the message has no body".into())),
        };
        match parsed {
            Ok(request) => match index.get(&request.leaf_user_id) {
                Some(&at) => {
                    plan.duplicates.push((message_id.clone(), request.leaf_user_id));
                    let held = &mut plan.work[at];
                    held.request.merge(request);
                    held.message_ids.push(message_id);
                }
                None => {
                    index.insert(request.leaf_user_id, plan.work.len());
                    plan.work.push(Work {
                        request,
                        message_ids: vec![message_id],
                    });
                }
            },
            Err(bad) => plan.rejected.push((message_id, bad)),
        }
    }
    plan
}

/// Whether a failed connect goes back to the queue: when trying again can help, and when the
/// deployment is wrong, so that the message ends in the dead-letter queue and its alarm fires
/// instead of being dropped unseen. A caller's or a grower's mistake is not sent back.
pub(crate) fn goes_back_to_queue(error: &ConnectorError) -> bool {
    error.is_retryable() || error.fault() == Fault::Configuration
}

/// Runs `connect` for each piece of work, `concurrency` at a time, and names every message of
/// a failure that [`goes_back_to_queue`] in `batchItemFailures`.
pub(crate) async fn run<T, F, Fut>(work: Vec<Work>, concurrency: usize, connect: F) -> SqsBatchResponse
where
    F: Fn(ConnectRequest) -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>>,
{
    let connect = &connect;
    let results: Vec<(Vec<String>, bool)> = futures_util::stream::iter(work)
        .map(|w| async move {
            let retry = matches!(connect(w.request).await, Err(e) if goes_back_to_queue(&e));
            (w.message_ids, retry)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for id in results
        .into_iter()
        .filter(|(_, retry)| *retry)
        .flat_map(|(ids, _)| ids)
    {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::domain::error::{Service, UpstreamError, UpstreamKind};

    fn record(id: &str, body: Option<String>) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.into());
        message.body = body;
        message
    }

    fn body(user: Uuid, force: bool, reason: Option<&str>) -> Option<String> {
        let request = ConnectRequest {
            leaf_user_id: user,
            force,
            reason: reason.map(str::to_owned),
        };
        Some(serde_json::to_string(&request).unwrap())
    }

    #[test]
    fn the_plan_folds_duplicates_and_sets_aside_bad_messages() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let plan = plan(vec![
            record("1", body(a, false, Some("missing"))),
            record("2", Some("not json".into())),
            record("3", body(b, false, None)),
            record("4", body(a, true, None)),
            record("5", None),
        ]);
        assert_eq!(plan.work.len(), 2);
        assert_eq!(
            plan.work[0].request,
            ConnectRequest {
                leaf_user_id: a,
                force: true,
                reason: None
            }
        );
        assert_eq!(plan.work[0].message_ids, vec!["1", "4"]);
        assert_eq!(
            (plan.work[1].request.leaf_user_id, &plan.work[1].message_ids),
            (b, &vec!["3".to_owned()])
        );
        assert_eq!(plan.duplicates, vec![("4".to_owned(), a)]);
        let rejected: Vec<&str> = plan.rejected.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(rejected, vec!["2", "5"]);
        assert!(plan.rejected.iter().all(|(_, why)| !why.0.is_empty()));
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_and_configuration_failures_go_back_with_every_message_of_the_grower() {
        let (ok, flaky, refused, misconfigured) =
            (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let plan = plan(vec![
            record("ok", body(ok, false, None)),
            record("flaky-1", body(flaky, false, None)),
            record("refused", body(refused, false, None)),
            record("flaky-2", body(flaky, true, None)),
            record("misconfigured", body(misconfigured, false, None)),
        ]);
        let response = run(plan.work, 2, |request| async move {
            if request.leaf_user_id == flaky {
                Err(UpstreamError::new(Service::Leaf, "GET", UpstreamKind::Unavailable, "HTTP 503").into())
            } else if request.leaf_user_id == refused {
                Err(ConnectorError::StaraLoginRejected { status: 401 })
            } else if request.leaf_user_id == misconfigured {
                Err(ConnectorError::Configuration(
                    "Leaf rejected the API owner's login".into(),
                ))
            } else {
                Ok(())
            }
        })
        .await;
        let mut failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        failed.sort();
        assert_eq!(failed, vec!["flaky-1", "flaky-2", "misconfigured"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_runner_bounds_concurrency() {
        let work: Vec<Work> = (0..10)
            .map(|i| Work {
                request: ConnectRequest {
                    leaf_user_id: Uuid::new_v4(),
                    force: false,
                    reason: None,
                },
                message_ids: vec![i.to_string()],
            })
            .collect();
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let response = run(work, 3, |_| async {
            most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok::<(), ConnectorError>(())
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
