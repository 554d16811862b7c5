//! The connect function's handler: API Gateway and SQS events in, the connect workflow,
//! responses and batch item failures out, one log line per outcome.
//!
//! Kept out of the binary so tests can call it with the sample events in `events/`.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tracing::Instrument;

use super::after_response::{DeferredMarks, FlushAfterResponse};
use super::api::{self, Response, Route};
use super::batch;
use super::failure::{log_failure, unsupported_event};
use super::invocation::invocation_deadline;
use super::request;
use super::trigger::{self, Trigger};
use crate::adapters::metrics;
use crate::domain::connect::{ConnectReport, Connector, Disconnected};
use crate::domain::error::ConnectorError;
use crate::domain::model::ConnectRequest;
use crate::domain::time::{Deadline, measure_upstream};

/// What the connect function needs for every invocation, built once in `main`.
pub struct ConnectApp {
    pub(crate) connector: Connector,
    /// Upstream budget of one connect.
    pub(crate) budget: Duration,
    /// Distinct growers of one batch connected at the same time.
    pub(crate) batch_concurrency: usize,
    /// The credentials-id records the connector leaves until the answer has gone.
    pub(crate) deferred: Arc<DeferredMarks>,
}

impl ConnectApp {
    /// The runtime layer that writes what a connect left until its answer had gone
    /// (`lambda/after_response.rs`).
    pub fn after_response(&self) -> FlushAfterResponse {
        FlushAfterResponse::new(self.deferred.clone())
    }
}

/// The Lambda handler: dispatches on the event's shape.
pub async fn handle(app: &ConnectApp, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    let deadline = invocation_deadline(&context, app.budget);
    match trigger::classify(payload) {
        Trigger::Api(request) => Ok(api::to_value(
            handle_api(app, &request, deadline, &context.request_id).await,
        )),
        Trigger::Sqs(batch) => Ok(serde_json::to_value(handle_sqs(app, batch, deadline).await)
            .expect("a batch response always serialises")),
        // Schedules drive verify; connect never runs on one.
        other @ (Trigger::Schedule(_)
        | Trigger::CustomResource(_)
        | Trigger::SecretChange(_)
        | Trigger::Unsupported(_)) => Err(unsupported_event(
            "connect",
            "API Gateway HTTP API (2.0) and SQS events",
            &other,
        )),
    }
}

async fn handle_api(
    app: &ConnectApp,
    request: &ApiGatewayV2httpRequest,
    deadline: Deadline,
    request_id: &str,
) -> Response {
    match api::route(request) {
        Route::Connect => {
            let parsed = api::body_bytes(request).and_then(|body| request::parse_connect_body(&body));
            let connect = match parsed {
                Ok(connect) => connect,
                Err(bad) => return api::invalid_request(request_id, &bad),
            };
            let id = connect.leaf_user_id.to_string();
            match run_connect(app, &connect, deadline, "api").await {
                Ok(report) => {
                    let status = if report.outcome.attached() { 201 } else { 200 };
                    api::json_response(status, &report_body(&id, &report))
                }
                Err(e) => api::error_response(request_id, Some(&id), &e),
            }
        }
        Route::Disconnect(raw_id) => match request::parse_leaf_user_id(&raw_id) {
            Ok(user) => disconnect(app, &user, deadline, request_id).await,
            Err(bad) => api::invalid_request(request_id, &bad),
        },
        Route::Status(_) | Route::LeafAlert | Route::Unknown(_) => api::route_not_found(
            request_id,
            "connect",
            "POST /connections and DELETE /connections/{leafUserId}",
        ),
    }
}

async fn disconnect(app: &ConnectApp, user: &uuid::Uuid, deadline: Deadline, request_id: &str) -> Response {
    let id = user.to_string();
    let span = tracing::info_span!("disconnect", leafUserId = %id);
    async {
        let (result, upstream) = measure_upstream(app.connector.disconnect(user, &deadline)).await;
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
                let message = "this Leaf user has no Stara credentials";
                api::json_response(
                    404,
                    &api::error_body(request_id, Some(&id), "not_connected", message),
                )
            }
            Err(e) => {
                log_failure("disconnect failed", "api", &e, upstream_ms);
                api::error_response(request_id, Some(&id), &e)
            }
        }
    }
    .instrument(span)
    .await
}

fn report_body(leaf_user_id: &str, report: &ConnectReport) -> Value {
    let mut body = json!({
        "leafUserId": leaf_user_id,
        "outcome": report.outcome.as_str(),
        "credentialsId": report.credentials.as_ref().map(|c| &c.id),
        "leafStatus": report.credentials.as_ref().map(|c| &c.status),
        "createdTime": report.credentials.as_ref().and_then(|c| c.created_time.as_ref()),
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
                leafStatus = report.credentials.as_ref().map(|c| c.status.as_str()),
                credentialsId = report.credentials.as_ref().map(|c| c.id.as_str()),
                upstreamMs = upstream_ms,
                "connect finished"
            ),
            Err(e) => log_failure("connect failed", trigger, e, upstream_ms),
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

/// Connects every grower named in the batch, each at most once, a bounded number at a time.
/// Only retryable failures go back to the queue; permanent ones are logged with their reason.
async fn handle_sqs(app: &ConnectApp, batch: SqsEvent, deadline: Deadline) -> SqsBatchResponse {
    let plan = batch::plan(batch.records);
    for (message_id, user) in &plan.duplicates {
        tracing::info!(messageId = %message_id, leafUserId = %user,
            "duplicate request for a grower in this batch: handled once");
    }
    for (message_id, bad) in &plan.rejected {
        // A message that cannot be parsed never will be: retrying it only fills the DLQ later.
        tracing::warn!(trigger = "sqs", messageId = %message_id, outcome = "rejected",
            code = "invalid_request", retryable = false, reason = %bad, "message dropped: permanent failure");
    }
    batch::run(plan.work, app.batch_concurrency, |request| async move {
        run_connect(app, &request, deadline, "sqs").await
    })
    .await
}

#[cfg(test)]
mod properties;
