//! The verify function's handler: dispatches each event, and answers
//! `GET /connections/{leafUserId}`. Scheduled runs are in `verify_run`, the verify queue's
//! batches in `verify_batch`.
//!
//! Responses carry Leaf's status, ids and dates, never a token, and never an event's `body`
//! or `headers`: those are raw provider HTTP logs with the grower's tokens in them.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tracing::Instrument;

use super::alerts::{self, AlertsApp};
use super::api::{self, Response, Route};
use super::failure::{log_failure, unsupported_event};
use super::invocation::invocation_deadline;
use super::request;
use super::trigger::{self, Trigger};
use super::{custom_resource, secret_events, verify_batch, verify_run};
use crate::adapters::http::HttpClient;
use crate::adapters::leaf_webhooks::LeafWebhooks;
use crate::adapters::metrics::MetricSet;
use crate::adapters::secrets::WebhookSecret;
use crate::domain::ports::{GrowerDirectory, GrowerLookup, RepairQueue, VerifyQueue};
use crate::domain::time::{Deadline, measure_upstream};
use crate::domain::verify::{ConnectionCheck, Verifier};

/// What the verify function needs for every invocation, built once in `main`.
pub struct VerifyApp {
    pub(crate) verifier: Verifier,
    pub(crate) directory: Arc<dyn GrowerDirectory>,
    /// `None` when repairing is off or there is no queue.
    pub(crate) repairs: Option<Arc<dyn RepairQueue>>,
    /// The verify queue (`VERIFY_QUEUE_URL`): with it, a scheduled run is fanned out.
    pub(crate) verify_queue: Option<Arc<dyn VerifyQueue>>,
    /// Upstream budget of one grower's check.
    pub(crate) budget: Duration,
    /// Growers checked at the same time in a run.
    pub(crate) concurrency: usize,
    /// Finds the grower a Leaf alert is about.
    pub(crate) growers: Arc<dyn GrowerLookup>,
    /// The alerts webhook's signing secret.
    pub(crate) webhook_secret: Arc<dyn WebhookSecret>,
    /// `STARA_SECRET_PREFIX`: which changed secrets are growers' logins.
    pub(crate) grower_prefix: String,
    /// Leaf's alerts webhooks, for `Custom::LeafWebhook`.
    pub(crate) webhooks: Arc<dyn LeafWebhooks>,
    /// Answers custom resource requests (a PUT to their `ResponseURL`).
    pub(crate) answers: HttpClient,
}

/// The Lambda handler: dispatches on the event's shape.
pub async fn handle(app: &VerifyApp, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    match trigger::classify(payload) {
        Trigger::Api(request) => {
            let deadline = invocation_deadline(&context, app.budget);
            Ok(api::to_value(
                handle_api(app, &request, deadline, &context.request_id).await,
            ))
        }
        Trigger::Schedule(schedule) => verify_run::handle_schedule(app, &schedule, &context).await,
        Trigger::Sqs(batch) => Ok(
            serde_json::to_value(verify_batch::handle_sqs(app, batch, &context).await)
                .expect("a batch response always serialises"),
        ),
        Trigger::SecretChange(change) => {
            let repairs = app.repairs.as_deref();
            secret_events::handle(&change, &app.grower_prefix, repairs)
                .await
                .map_err(|e| Diagnostic {
                    error_type: e.code().into(),
                    error_message: format!("login change not queued: {}", e.public_message()),
                })
        }
        Trigger::CustomResource(request) => {
            let deadline = invocation_deadline(&context, custom_resource::BUDGET);
            let webhooks = custom_resource::WebhookApp {
                webhooks: app.webhooks.clone(),
                secret: app.webhook_secret.clone(),
                http: app.answers.clone(),
            };
            Ok(custom_resource::handle(&webhooks, *request, deadline).await)
        }
        other @ Trigger::Unsupported(_) => Err(unsupported_event(
            "verify",
            "API Gateway HTTP API (2.0), scheduled, SQS, custom resource and Secrets Manager events",
            &other,
        )),
    }
}

async fn handle_api(
    app: &VerifyApp,
    request: &ApiGatewayV2httpRequest,
    deadline: Deadline,
    request_id: &str,
) -> Response {
    let raw_id = match api::route(request) {
        Route::Status(raw_id) => raw_id,
        Route::LeafAlert => {
            let alerts = AlertsApp {
                secret: app.webhook_secret.as_ref(),
                growers: app.growers.as_ref(),
                repairs: app.repairs.as_deref(),
            };
            return alerts::handle(&alerts, request, request_id).await;
        }
        Route::Connect | Route::Disconnect(_) | Route::Unknown(_) => {
            let serves = "GET /connections/{leafUserId} and POST /leaf/alerts";
            return api::route_not_found(request_id, "verify", serves);
        }
    };
    let user = match request::parse_leaf_user_id(&raw_id) {
        Ok(user) => user,
        Err(bad) => return api::invalid_request(request_id, &bad),
    };
    let id = user.to_string();
    let span = tracing::info_span!("verify", leafUserId = %id);
    async {
        let (result, upstream) = measure_upstream(app.verifier.status(&user, &deadline)).await;
        let upstream_ms = upstream.as_millis() as u64;
        let outcome = result.as_ref().map_or("failed", |c| c.assessment.health.as_str());
        MetricSet::new("verify")
            .dimension("Health", outcome)
            .count("Lookups", 1)
            .millis("UpstreamLatency", upstream)
            .emit();
        match result {
            Ok(check) => {
                tracing::info!(
                    trigger = "api",
                    health = outcome,
                    leafStatus = check.credentials.as_ref().map(|c| c.status.as_str()),
                    upstreamMs = upstream_ms,
                    "verify finished"
                );
                api::json_response(200, &check_body(&id, &check))
            }
            Err(e) => {
                log_failure("verify failed", "api", &e, upstream_ms);
                api::error_response(request_id, Some(&id), &e)
            }
        }
    }
    .instrument(span)
    .await
}

/// The 200 body, built field by field from typed values: nothing Leaf sent passes through whole.
fn check_body(leaf_user_id: &str, check: &ConnectionCheck) -> Value {
    let credentials = check.credentials.as_ref();
    json!({
        "leafUserId": leaf_user_id,
        "health": check.assessment.health.as_str(),
        "leafStatus": credentials.map(|c| &c.status),
        "credentialsId": credentials.map(|c| &c.id),
        "createdTime": credentials.and_then(|c| c.created_time.as_ref()),
        "lastEvent": check.last_event.as_ref()
            .map(|e| json!({"statusCode": e.status_code, "createdDate": e.created_date})),
    })
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Context;
    use uuid::Uuid;

    use super::*;
    use crate::domain::model::CredentialEvent;
    use crate::testing::{FakeDirectory, FakeLeaf, FakeRepairQueue, FakeStates, fixture};

    struct NoWebhookSecret;

    #[async_trait::async_trait]
    impl WebhookSecret for NoWebhookSecret {
        async fn webhook_secret(
            &self,
        ) -> Result<secrecy::SecretString, crate::domain::error::ConnectorError> {
            Err(crate::domain::error::ConnectorError::Configuration(
                "no webhook secret in this test".into(),
            ))
        }
    }

    fn app(leaf: Arc<FakeLeaf>, growers: Vec<Uuid>, queue: Option<Arc<FakeRepairQueue>>) -> VerifyApp {
        VerifyApp {
            verifier: Verifier::new(leaf, Arc::new(FakeStates::default())),
            directory: Arc::new(FakeDirectory::of(growers)),
            growers: Arc::new(FakeDirectory::default()),
            webhook_secret: Arc::new(NoWebhookSecret),
            webhooks: Arc::new(crate::testing::FakeWebhooks::default()),
            answers: HttpClient::new(Default::default()),
            grower_prefix: "stara-connect/growers/".into(),
            repairs: queue.map(|q| q as Arc<dyn RepairQueue>),
            verify_queue: None,
            budget: Duration::from_secs(5),
            concurrency: 4,
        }
    }

    async fn get(app: &VerifyApp, id: &str) -> (u64, Value) {
        let mut event = fixture("verify-api.json");
        event["pathParameters"]["leafUserId"] = json!(id);
        event["rawPath"] = json!(format!("/connections/{id}"));
        let response = handle(app, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        let body = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        (response["statusCode"].as_u64().unwrap(), body)
    }

    #[tokio::test]
    async fn the_api_reports_health_without_anything_else() {
        let leaf = Arc::new(FakeLeaf::default());
        let user = leaf.grower(Some("OK"));
        leaf.events.lock().unwrap().insert(
            user,
            vec![CredentialEvent {
                status_code: Some(200),
                created_date: Some("2026-01-02T00:00:00Z".into()),
            }],
        );
        let app = app(leaf, vec![], None);
        let (status, body) = get(&app, &user.to_string()).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({
                "leafUserId": user.to_string(),
                "health": "healthy",
                "leafStatus": "OK",
                "credentialsId": format!("cred-{user}"),
                "createdTime": "2026-01-01T00:00:00Z",
                "lastEvent": {"statusCode": 200, "createdDate": "2026-01-02T00:00:00Z"},
            })
        );
    }

    #[tokio::test]
    async fn missing_unknown_and_bad_ids_are_told_apart() {
        let leaf = Arc::new(FakeLeaf::default());
        let missing = leaf.grower(None);
        let app = app(leaf, vec![], None);
        let (status, body) = get(&app, &missing.to_string()).await;
        assert_eq!(
            (
                status,
                body["health"].as_str(),
                &body["leafStatus"],
                &body["lastEvent"]
            ),
            (200, Some("missing"), &Value::Null, &Value::Null)
        );

        let stranger = Uuid::new_v4().to_string();
        let (status, body) = get(&app, &stranger).await;
        assert_eq!(
            (
                status,
                body["error"]["code"].as_str(),
                body["leafUserId"].as_str()
            ),
            (404, Some("leaf_user_not_found"), Some(stranger.as_str()))
        );

        let (status, body) = get(&app, "not-a-uuid").await;
        assert_eq!(
            (status, body["error"]["code"].as_str(), &body["leafUserId"]),
            (400, Some("invalid_request"), &Value::Null)
        );
    }

    #[tokio::test]
    async fn other_routes_are_not_found() {
        let app = app(Arc::new(FakeLeaf::default()), vec![], None);
        let event = fixture("connect-api.json");
        let response = handle(&app, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        assert_eq!(response["statusCode"], 404);
    }

    #[tokio::test]
    async fn both_schedule_payloads_run_and_return_the_summary() {
        for name in ["verify-schedule-rule.json", "verify-schedule-scheduler.json"] {
            let leaf = Arc::new(FakeLeaf::default());
            let growers = vec![
                leaf.grower(Some("OK")),
                leaf.grower(Some("INVALID")),
                leaf.grower(None),
            ];
            let queue = Arc::new(FakeRepairQueue::default());
            let app = app(leaf, growers, Some(queue.clone()));
            let mut context = Context::default();
            context.request_id = "req-1".into();
            let summary = handle(&app, LambdaEvent::new(fixture(name), context))
                .await
                .unwrap();
            assert_eq!(
                summary,
                json!({"checked": 3, "healthy": 1, "unhealthy": 1, "missing": 1, "pending": 0, "errors": 0,
                    "unchecked": 0, "repairsQueued": 2, "repairsFailed": 0, "disconnected": 0,
                    "loginRejected": 0}),
                "{name}"
            );
            assert!(queue.sent.lock().unwrap().iter().all(|(run, _)| run == "req-1"));
        }
    }

    #[tokio::test]
    async fn check_messages_are_checked_and_only_transient_failures_come_back() {
        let leaf = Arc::new(FakeLeaf::default());
        let (missing, flaky) = (leaf.grower(None), leaf.grower(Some("OK")));
        leaf.fail.lock().unwrap().insert(flaky);
        let queue = Arc::new(FakeRepairQueue::default());
        let app = app(leaf, vec![], Some(queue.clone()));
        let mut event = fixture("verify-sqs-check.json");
        let record = event["Records"][0].clone();
        let body = |user: Uuid| json!({"type": "check", "runId": "run-9", "growers": [{"leafUserId": user}]});
        let mut records = Vec::new();
        for (id, body) in [
            ("m-missing", body(missing).to_string()),
            ("m-flaky", body(flaky).to_string()),
            ("m-garbage", "{\"type\":\"purge\"}".to_owned()),
            (
                "m-list",
                fixture("verify-sqs-list.json")["Records"][0]["body"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
        ] {
            let mut r = record.clone();
            r["messageId"] = json!(id);
            r["body"] = json!(body);
            records.push(r);
        }
        event["Records"] = json!(records);
        let response = handle(&app, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        let mut failed: Vec<&str> = response["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap())
            .collect();
        failed.sort();
        // Garbage is refused for good; a list message needs a verify queue, which this app lacks.
        assert_eq!(failed, ["m-flaky", "m-list"]);
        let sent = queue.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].0.as_str(), sent[0].1.leaf_user_id), ("run-9", missing));
    }

    #[tokio::test]
    async fn unknown_events_are_refused() {
        let app = app(Arc::new(FakeLeaf::default()), vec![], None);
        let event = json!({"hello": "world"});
        let err = handle(&app, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap_err();
        assert_eq!(err.error_type, "UnsupportedEvent");
    }
}
