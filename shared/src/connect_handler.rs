//! The connect function's handler: API Gateway and SQS events in, the connect workflow, responses out.
//!
//! Kept out of the binary so tests can call it with the sample events in `events/`.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures_util::StreamExt;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::api::{self, Route};
use crate::connect::{ConnectReport, ConnectRequest, Connector, Disconnected, Outcome};
use crate::error::{ConnectorError, Fault};
use crate::http::{Deadline, measure_upstream};
use crate::invocation::invocation_deadline;
use crate::metrics;
use crate::request::{self, BadRequest};
use crate::trigger::{self, Trigger};

pub struct ConnectApp {
    pub connector: Connector,
    /// Upstream budget of one connect.
    pub budget: Duration,
    /// Distinct growers of one batch connected at the same time.
    pub batch_concurrency: usize,
}

/// The Lambda handler: dispatches on the event's shape.
pub async fn handle(app: &ConnectApp, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    let deadline = invocation_deadline(&context, app.budget);
    match trigger::classify(payload) {
        Trigger::Api(request) => Ok(handle_api(app, &request, deadline).await),
        Trigger::Sqs(batch) => Ok(serde_json::to_value(handle_sqs(app, batch, deadline).await)
            .expect("a batch response always serialises")),
        // Schedules drive verify; connect never runs on one.
        other @ (Trigger::Schedule(_) | Trigger::Unsupported(_)) => {
            let what = other.description();
            tracing::warn!(code = "unsupported_event", event = %what, "event refused");
            Err(Diagnostic {
                error_type: "UnsupportedEvent".into(),
                error_message: format!(
                    "connect handles API Gateway HTTP API (2.0) and SQS events; got {what}"
                ),
            })
        }
    }
}

async fn handle_api(app: &ConnectApp, request: &ApiGatewayV2httpRequest, deadline: Deadline) -> Value {
    match api::route(request) {
        Route::Connect => {
            let parsed = api::body_bytes(request).and_then(|body| request::parse_connect_body(&body));
            let connect = match parsed {
                Ok(connect) => connect,
                Err(bad) => return bad_request(None, &bad),
            };
            let id = connect.leaf_user_id.to_string();
            match run_connect(app, &connect, deadline, "api").await {
                Ok(report) => {
                    let status = if report.outcome == Outcome::AlreadyConnected {
                        200
                    } else {
                        201
                    };
                    api::json_response(status, &report_body(&id, &report))
                }
                Err(e) => api::error_response(Some(&id), &e),
            }
        }
        Route::Disconnect(raw_id) => {
            let user = match request::parse_leaf_user_id(&raw_id) {
                Ok(user) => user,
                Err(bad) => return bad_request(None, &bad),
            };
            let id = user.to_string();
            let span = tracing::info_span!("disconnect", leafUserId = %id);
            async {
                let (result, upstream) = measure_upstream(app.connector.disconnect(&user, &deadline)).await;
                let upstream_ms = upstream.as_millis() as u64;
                match result {
                    Ok(Disconnected::Removed) => {
                        tracing::info!(
                            trigger = "api",
                            outcome = "disconnected",
                            upstreamMs = upstream_ms,
                            "disconnect finished"
                        );
                        api::empty_response(204)
                    }
                    Ok(Disconnected::NothingToRemove) => {
                        tracing::info!(
                            trigger = "api",
                            outcome = "not_connected",
                            upstreamMs = upstream_ms,
                            "disconnect finished"
                        );
                        api::json_response(
                            404,
                            &api::error_body(
                                Some(&id),
                                "not_connected",
                                "this Leaf user has no Stara credentials",
                            ),
                        )
                    }
                    Err(e) => {
                        log_failure("api", &e, upstream_ms);
                        api::error_response(Some(&id), &e)
                    }
                }
            }
            .instrument(span)
            .await
        }
        Route::Status(_) | Route::Unknown(_) => {
            tracing::warn!(code = "route_not_found", "no such route on the connect function");
            api::json_response(
                404,
                &api::error_body(
                    None,
                    "route_not_found",
                    "connect serves POST /connections and DELETE /connections/{leafUserId}",
                ),
            )
        }
    }
}

fn bad_request(leaf_user_id: Option<&str>, bad: &BadRequest) -> Value {
    tracing::warn!(trigger = "api", outcome = "rejected", code = "invalid_request", reason = %bad, "request refused");
    api::json_response(400, &api::error_body(leaf_user_id, "invalid_request", &bad.0))
}

fn report_body(leaf_user_id: &str, report: &ConnectReport) -> Value {
    let mut body = json!({
        "leafUserId": leaf_user_id,
        "outcome": report.outcome.as_str(),
        "credentialsId": report.credentials.id,
        "leafStatus": report.credentials.status,
        "createdTime": report.credentials.created_time,
    });
    if let Some(replaced) = &report.replaced_status {
        body["replacedStatus"] = json!(replaced);
    }
    body
}

/// Runs one connect inside a span that carries the leafUserId, and logs one line for its outcome.
async fn run_connect(
    app: &ConnectApp,
    request: &ConnectRequest,
    deadline: Deadline,
    trigger: &'static str,
) -> Result<ConnectReport, ConnectorError> {
    let span = tracing::info_span!("connect", leafUserId = %request.leaf_user_id, force = request.force);
    async {
        let (result, upstream) = measure_upstream(app.connector.connect(request, &deadline)).await;
        let upstream_ms = upstream.as_millis() as u64;
        match &result {
            Ok(report) => tracing::info!(
                trigger,
                outcome = report.outcome.as_str(),
                leafStatus = %report.credentials.status,
                upstreamMs = upstream_ms,
                "connect finished"
            ),
            Err(e) => log_failure(trigger, e, upstream_ms),
        }
        metrics::connect(
            result.as_ref().map_or("failed", |r| r.outcome.as_str()),
            result.as_ref().err().map(ConnectorError::code),
            upstream,
        );
        result
    }
    .instrument(span)
    .await
}

fn log_failure(trigger: &'static str, e: &ConnectorError, upstream_ms: u64) {
    let (code, retryable, fault) = (
        e.code(),
        e.is_retryable(),
        format!("{:?}", e.fault()).to_lowercase(),
    );
    if e.fault() == Fault::Configuration {
        tracing::error!(trigger, outcome = "failed", code, retryable, fault, upstreamMs = upstream_ms, error = %e, "connect failed");
    } else {
        tracing::warn!(trigger, outcome = "failed", code, retryable, fault, upstreamMs = upstream_ms, error = %e, "connect failed");
    }
}

/// Connects every grower named in the batch, each at most once, a bounded number at a time.
/// Only retryable failures go back to the queue; permanent ones are logged with their reason.
pub async fn handle_sqs(app: &ConnectApp, batch: SqsEvent, deadline: Deadline) -> SqsBatchResponse {
    // One entry per grower, in order of first appearance, with every message id that asked for it.
    let mut work: Vec<(ConnectRequest, Vec<String>)> = Vec::new();
    let mut index: HashMap<uuid::Uuid, usize> = HashMap::new();
    for record in batch.records {
        let message_id = record.message_id.unwrap_or_default();
        let parsed = match record.body.as_deref() {
            Some(body) => request::parse_connect_body(body.as_bytes()),
            None => Err(BadRequest("the message has no body".into())),
        };
        match parsed {
            Ok(request) => match index.get(&request.leaf_user_id) {
                Some(&at) => {
                    tracing::info!(messageId = %message_id, leafUserId = %request.leaf_user_id, "duplicate request for a grower in this batch: handled once");
                    let (held, ids) = &mut work[at];
                    held.force |= request.force;
                    ids.push(message_id);
                }
                None => {
                    index.insert(request.leaf_user_id, work.len());
                    work.push((request, vec![message_id]));
                }
            },
            Err(bad) => {
                // A message that cannot be parsed never will be: retrying it only fills the DLQ later.
                tracing::warn!(trigger = "sqs", messageId = %message_id, outcome = "rejected", code = "invalid_request", retryable = false, reason = %bad, "message dropped: permanent failure");
            }
        }
    }

    let results: Vec<(Vec<String>, Result<ConnectReport, ConnectorError>)> = futures_util::stream::iter(work)
        .map(|(request, ids)| async move { (ids, run_connect(app, &request, deadline, "sqs").await) })
        .buffer_unordered(app.batch_concurrency)
        .collect()
        .await;

    let mut response = SqsBatchResponse::default();
    for (ids, result) in results {
        if matches!(&result, Err(e) if e.is_retryable()) {
            for id in ids {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}
