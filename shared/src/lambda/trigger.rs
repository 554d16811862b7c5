//! Which AWS service sent an event: each function serves several triggers from one binary.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;

/// An incoming event, by the service that sent it.
#[derive(Debug)]
pub(crate) enum Trigger {
    /// API Gateway HTTP API, payload format 2.0.
    Api(Box<ApiGatewayV2httpRequest>),
    /// A batch of SQS messages.
    Sqs(SqsEvent),
    /// A timer: an EventBridge rule or an EventBridge Scheduler schedule.
    Schedule(Schedule),
    /// A CloudFormation custom resource request (`Custom::LeafWebhook`).
    CustomResource(Box<CustomResourceRequest>),
    /// A Secrets Manager API call, from CloudTrail through an EventBridge rule.
    SecretChange(SecretChange),
    /// Anything else; the text says what was seen, without quoting values.
    Unsupported(String),
}

/// What CloudFormation sends a custom resource's function (its documented request fields;
/// anything else is ignored).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CustomResourceRequest {
    /// `Create`, `Update` or `Delete`.
    pub(crate) request_type: String,
    /// The pre-signed S3 URL the answer is PUT to.
    #[serde(rename = "ResponseURL")]
    pub(crate) response_url: String,
    pub(crate) stack_id: String,
    pub(crate) request_id: String,
    pub(crate) logical_resource_id: String,
    /// Absent on Create.
    #[serde(default)]
    pub(crate) physical_resource_id: Option<String>,
    #[serde(default)]
    pub(crate) resource_properties: serde_json::Map<String, Value>,
    #[serde(default)]
    pub(crate) old_resource_properties: serde_json::Map<String, Value>,
}

/// The Secrets Manager calls that create or change a secret's value.
pub(crate) const SECRET_CHANGES: &[&str] =
    &["CreateSecret", "PutSecretValue", "UpdateSecret", "RestoreSecret"];

/// A Secrets Manager API call, as CloudTrail recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretChange {
    /// The EventBridge event's `id`: one per call, the same on a redelivery.
    pub(crate) event_id: Option<String>,
    /// `detail.eventName`, e.g. `PutSecretValue`.
    pub(crate) event_name: String,
    /// The secret's name or ARN, as the call named it (`name` for CreateSecret, else `secretId`).
    pub(crate) secret: Option<String>,
}

fn secret_change(event: &Value) -> Option<SecretChange> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    if text("/source") != Some("aws.secretsmanager")
        || text("/detail-type") != Some("AWS API Call via CloudTrail")
    {
        return None;
    }
    let event_name = text("/detail/eventName").unwrap_or_default().to_owned();
    let secret = match event_name.as_str() {
        "CreateSecret" => text("/detail/requestParameters/name"),
        _ => text("/detail/requestParameters/secretId"),
    };
    Some(SecretChange {
        event_id: text("/id").map(str::to_owned),
        event_name,
        secret: secret.map(str::to_owned),
    })
}

fn custom_resource(event: &Value) -> Option<Trigger> {
    let request_type = event.get("RequestType").and_then(Value::as_str)?;
    if !matches!(request_type, "Create" | "Update" | "Delete") || event.get("ResponseURL").is_none() {
        return None;
    }
    Some(match serde_json::from_value(event.clone()) {
        Ok(request) => Trigger::CustomResource(Box::new(request)),
        Err(_) => Trigger::Unsupported("a CloudFormation custom resource request without its fields".into()),
    })
}

/// The source and action the verify schedule (EventBridge Scheduler, `ScheduleV2`) sends as its input.
pub(crate) const SCHEDULER_SOURCE: &str = "stara-connect.scheduler";
pub(crate) const SCHEDULER_ACTION: &str = "verify-all";

/// Which kind of timer fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScheduleKind {
    /// An EventBridge rule: `"source": "aws.events"`, `"detail-type": "Scheduled Event"`.
    Rule,
    /// EventBridge Scheduler with our fixed input
    /// `{"source":"stara-connect.scheduler","action":"verify-all"}`.
    Scheduler,
}

/// A scheduled event; only its kind matters, the rest is kept for the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub(crate) kind: ScheduleKind,
    /// The rule event's `id`, when there is one.
    pub(crate) event_id: Option<String>,
    /// The rule event's `time`, when there is one.
    pub(crate) time: Option<String>,
}

impl Schedule {
    pub(crate) fn description(&self) -> &'static str {
        match self.kind {
            ScheduleKind::Rule => "a scheduled event (EventBridge rule)",
            ScheduleKind::Scheduler => "a scheduled event (EventBridge Scheduler)",
        }
    }
}

impl Trigger {
    /// What the event is, in words fit for a log line or an error message (no values quoted).
    pub(crate) fn description(&self) -> String {
        match self {
            Trigger::Api(_) => "an API Gateway 2.0 request".to_owned(),
            Trigger::Sqs(_) => "an SQS batch".to_owned(),
            Trigger::Schedule(s) => s.description().to_owned(),
            Trigger::CustomResource(_) => "a CloudFormation custom resource request".to_owned(),
            Trigger::SecretChange(_) => "a Secrets Manager API call (CloudTrail)".to_owned(),
            Trigger::Unsupported(what) => what.clone(),
        }
    }
}

fn schedule(event: &Value) -> Option<Schedule> {
    let text = |name: &str| event.get(name).and_then(Value::as_str);
    let kind = match (text("source"), text("detail-type"), text("action")) {
        (Some("aws.events"), Some("Scheduled Event"), _) => ScheduleKind::Rule,
        (Some(SCHEDULER_SOURCE), _, Some(SCHEDULER_ACTION)) => ScheduleKind::Scheduler,
        _ => return None,
    };
    Some(Schedule {
        kind,
        event_id: text("id").map(str::to_owned),
        time: text("time").map(str::to_owned),
    })
}

/// Looks at the event's shape: API Gateway 2.0 has `version: "2.0"` and `requestContext.http`;
/// SQS has `Records` whose `eventSource` is `aws:sqs`; a schedule is one of the two [`ScheduleKind`]s.
pub(crate) fn classify(event: Value) -> Trigger {
    if let Some(schedule) = schedule(&event) {
        return Trigger::Schedule(schedule);
    }
    if let Some(change) = secret_change(&event) {
        return Trigger::SecretChange(change);
    }
    if let Some(request) = custom_resource(&event) {
        return request;
    }
    if event.get("version").and_then(Value::as_str) == Some("2.0")
        && event.pointer("/requestContext/http").is_some()
    {
        return match serde_json::from_value(event) {
            Ok(request) => Trigger::Api(Box::new(request)),
            Err(_) => Trigger::Unsupported(
                "an API Gateway 2.0 event that does not follow the payload format".into(),
            ),
        };
    }
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let all_sqs = !records.is_empty()
            && records
                .iter()
                .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"));
        if all_sqs {
            return match serde_json::from_value(event) {
                Ok(batch) => Trigger::Sqs(batch),
                Err(_) => {
                    Trigger::Unsupported("an SQS event whose records do not follow the SQS format".into())
                }
            };
        }
        return Trigger::Unsupported("a `Records` event that is not from SQS".into());
    }
    let kind = match &event {
        Value::Object(map) => {
            let keys: Vec<String> = map
                .keys()
                .take(5)
                .map(|k| super::request::field_name_for_humans(k))
                .collect();
            format!("an object with keys [{}]", keys.join(", "))
        }
        Value::Array(_) => "an array".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Null => "null".to_owned(),
    };
    Trigger::Unsupported(kind)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    use super::*;
    use crate::lambda::{api, request};
    use crate::testing::arbitrary::arb_json;
    use crate::testing::events::{api_envelope, sqs_envelope};
    use crate::testing::fixture;
    use crate::testing::oracle::{assert_quotes_no_value, cases, check_parse};

    #[test]
    fn sample_events_are_recognised() {
        assert!(matches!(classify(fixture("connect-api.json")), Trigger::Api(_)));
        assert!(matches!(classify(fixture("connect-sqs.json")), Trigger::Sqs(_)));
        for name in ["verify-sqs-check.json", "verify-sqs-list.json"] {
            assert!(matches!(classify(fixture(name)), Trigger::Sqs(_)), "{name}");
        }
        assert!(matches!(classify(fixture("verify-api.json")), Trigger::Api(_)));
        for name in ["verify-leaf-alert.json", "verify-leaf-alert-confirmation.json"] {
            match classify(fixture(name)) {
                Trigger::Api(request) => assert_eq!(api::route(&request), api::Route::LeafAlert, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        match classify(fixture("verify-secret-created.json")) {
            Trigger::SecretChange(change) => {
                assert_eq!(change.event_name, "CreateSecret");
                assert!(change.secret.unwrap().starts_with("stara-connect/growers/"));
                assert!(change.event_id.is_some());
            }
            other => panic!("{other:?}"),
        }
        match classify(fixture("verify-secret-changed.json")) {
            Trigger::SecretChange(change) => {
                assert_eq!(change.event_name, "PutSecretValue");
                assert!(change.secret.unwrap().starts_with("arn:aws:secretsmanager:"));
            }
            other => panic!("{other:?}"),
        }
        match classify(fixture("verify-schedule-rule.json")) {
            Trigger::Schedule(s) => {
                assert_eq!(s.kind, ScheduleKind::Rule);
                assert!(s.event_id.is_some() && s.time.is_some());
            }
            other => panic!("{other:?}"),
        }
        match classify(fixture("verify-schedule-scheduler.json")) {
            Trigger::Schedule(s) => assert_eq!(
                s,
                Schedule {
                    kind: ScheduleKind::Scheduler,
                    event_id: None,
                    time: None
                }
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_our_schedules_are_schedules() {
        for event in [
            serde_json::json!({"source": "aws.events", "detail-type": "EC2 Instance State-change"}),
            serde_json::json!({"source": "stara-connect.scheduler", "action": "delete-all"}),
            serde_json::json!({"source": "someone-else", "action": "verify-all"}),
            serde_json::json!({"detail-type": "Scheduled Event"}),
        ] {
            assert!(
                matches!(classify(event.clone()), Trigger::Unsupported(_)),
                "{event}"
            );
        }
    }

    #[test]
    fn other_shapes_are_unsupported() {
        for event in [
            serde_json::json!({}),
            serde_json::json!(null),
            serde_json::json!([1]),
            serde_json::json!({"Records": []}),
            serde_json::json!({"Records": [{"eventSource": "aws:s3"}]}),
            serde_json::json!({"version": "2.0", "requestContext": {"http": 5}}),
            serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": 5}]}),
        ] {
            assert!(
                matches!(classify(event.clone()), Trigger::Unsupported(_)),
                "{event}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(256)))]

        #[test]
        fn classify_arbitrary_json(event in arb_json()) {
            check_classify(event)?;
        }

        #[test]
        fn classify_api_shaped_events(event in api_envelope()) {
            check_classify(event)?;
        }

        #[test]
        fn classify_sqs_shaped_events(event in sqs_envelope()) {
            check_classify(event)?;
        }
    }

    /// Classifies, checks the kind against the shape, and runs what the dispatcher runs next.
    fn check_classify(event: Value) -> Result<(), TestCaseError> {
        let looks_api = event.get("version").and_then(Value::as_str) == Some("2.0")
            && event.pointer("/requestContext/http").is_some();
        let records = event.get("Records").and_then(Value::as_array);
        let looks_sqs = records.is_some_and(|r| {
            !r.is_empty()
                && r.iter()
                    .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        });
        match classify(event.clone()) {
            Trigger::Api(request) => {
                prop_assert!(looks_api);
                let _ = api::route(&request);
                if let Ok(body) = api::body_bytes(&request) {
                    let _ = request::parse_connect_body(&body);
                }
            }
            Trigger::Sqs(batch) => {
                prop_assert!(looks_sqs && !looks_api);
                prop_assert_eq!(batch.records.len(), records.unwrap().len());
                for record in &batch.records {
                    if let Some(body) = &record.body {
                        check_parse(body.as_bytes())?;
                    }
                }
            }
            Trigger::Schedule(_) | Trigger::CustomResource(_) | Trigger::SecretChange(_) => {}
            Trigger::Unsupported(what) => {
                prop_assert!(!what.is_empty());
                assert_quotes_no_value(&what, &event)?;
            }
        }
        Ok(())
    }
}
