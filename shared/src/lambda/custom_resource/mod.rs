//! `Custom::LeafWebhook`: registers the alerts webhook at Leaf when the stack is deployed,
//! replaces it on an update, and removes it when the stack is deleted, answering CloudFormation
//! on every path.
//!
//! A stack waits up to an hour for an answer that never comes, so one is always sent: the work
//! runs in a task of its own, bounded by the invocation's deadline less the time the answer
//! needs; a timeout or a panic is answered FAILED (`answer` has the panic hook for
//! `panic = "abort"` builds). `webhook` holds what each request asks of Leaf and the Reason
//! texts; `answer` the response object and the PUT.

mod answer;
#[cfg(test)]
mod tests;
mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing::Instrument;

use super::trigger::CustomResourceRequest;
use crate::adapters::http::HttpClient;
use crate::adapters::leaf_webhooks::LeafWebhooks;
use crate::adapters::secrets::WebhookSecret;
use crate::domain::time::Deadline;
use webhook::Outcome;

/// The most a request may take, when Lambda's own deadline is further away (or unknown).
pub(crate) const BUDGET: Duration = Duration::from_secs(120);
/// Kept back from the deadline for the PUT of the answer.
const ANSWER_RESERVE: Duration = Duration::from_secs(5);

const PANICKED: &str = "the verify function failed unexpectedly while handling this request \
     (see its log): check the webhooks at Leaf, then try again";
const TIMED_OUT: &str = "Leaf or Secrets Manager did not answer in time (see the verify \
     function's log): try again, or raise the verify function's timeout";

/// What custom resource requests need.
pub(crate) struct WebhookApp {
    pub(crate) webhooks: Arc<dyn LeafWebhooks>,
    pub(crate) secret: Arc<dyn WebhookSecret>,
    /// Sends the answers.
    pub(crate) http: HttpClient,
}

/// Handles one request and answers CloudFormation before `deadline`. Returns
/// `{"Status", "PhysicalResourceId", "Answered"}` for the invocation's log; never an error,
/// which would make Lambda run the request again.
pub(crate) async fn handle(app: &WebhookApp, request: CustomResourceRequest, deadline: Deadline) -> Value {
    let span = tracing::info_span!(
        "custom_resource",
        requestType = %request.request_type,
        logicalResourceId = %request.logical_resource_id,
        cloudFormationRequestId = %request.request_id,
    );
    answer_request(app, request, deadline).instrument(span).await
}

async fn answer_request(app: &WebhookApp, request: CustomResourceRequest, deadline: Deadline) -> Value {
    let started = Instant::now();
    if let Err(problem) = answer::check_response_url(&request.response_url) {
        tracing::error!(
            problem,
            "ResponseURL refused: nothing done, CloudFormation not answered"
        );
        return json!({"Status": "FAILED", "Answered": false});
    }
    let failure_id = webhook::failure_physical_id(&request);
    let failed = |reason| Outcome::failed(failure_id.clone(), reason);
    let pending = Arc::new(answer::Pending::new(
        request.response_url.clone(),
        answer::body(&request, &failed(PANICKED)),
        deadline,
    ));
    let request = Arc::new(request);
    let work_deadline = Deadline::after(deadline.remaining().saturating_sub(ANSWER_RESERVE));
    let work = {
        let (request, webhooks, secret) = (request.clone(), app.webhooks.clone(), app.secret.clone());
        async move { webhook::run(&request, webhooks.as_ref(), secret.as_ref(), &work_deadline).await }
    };
    let task = tokio::spawn(answer::guarded(pending.clone(), work.in_current_span()));
    let abort = task.abort_handle();
    let outcome = match tokio::time::timeout(work_deadline.remaining(), task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            tracing::error!(
                panicked = e.is_panic(),
                "the custom resource's work did not finish"
            );
            failed(PANICKED)
        }
        Err(_) => {
            abort.abort();
            tracing::error!("the custom resource's work ran out of time");
            failed(TIMED_OUT)
        }
    };
    let answered = match pending.take_url() {
        Some(url) => answer::put(&app.http, &url, &answer::body(&request, &outcome), &deadline).await,
        // The panic hook answered FAILED already.
        None => pending.answered_on_panic().unwrap_or(false),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let status = outcome.status.as_str();
    let physical_id = outcome.physical_id.as_str();
    match outcome.status {
        webhook::Status::Success => tracing::info!(status, physicalResourceId = physical_id,
            reason = %outcome.reason, answered, elapsedMs = elapsed_ms, "custom resource request done"),
        webhook::Status::Failed => tracing::error!(status, physicalResourceId = physical_id,
            reason = %outcome.reason, answered, elapsedMs = elapsed_ms, "custom resource request failed"),
    }
    json!({"Status": status, "PhysicalResourceId": physical_id, "Answered": answered})
}
