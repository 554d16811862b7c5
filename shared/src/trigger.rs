//! Which AWS service sent an event: each function serves several triggers from one binary.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;

/// An incoming event, by the service that sent it.
#[derive(Debug)]
pub enum Trigger {
    /// API Gateway HTTP API, payload format 2.0.
    Api(Box<ApiGatewayV2httpRequest>),
    /// A batch of SQS messages.
    Sqs(SqsEvent),
    /// Anything else; the text says what was seen, without quoting values.
    Unsupported(String),
}

/// Looks at the event's shape: API Gateway 2.0 has `version: "2.0"` and `requestContext.http`;
/// SQS has `Records` whose `eventSource` is `aws:sqs`.
pub fn classify(event: Value) -> Trigger {
    if event.get("version").and_then(Value::as_str) == Some("2.0") && event.pointer("/requestContext/http").is_some() {
        return match serde_json::from_value(event) {
            Ok(request) => Trigger::Api(Box::new(request)),
            Err(_) => Trigger::Unsupported("an API Gateway 2.0 event that does not follow the payload format".into()),
        };
    }
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let all_sqs = !records.is_empty() && records.iter().all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"));
        if all_sqs {
            return match serde_json::from_value(event) {
                Ok(batch) => Trigger::Sqs(batch),
                Err(_) => Trigger::Unsupported("an SQS event whose records do not follow the SQS format".into()),
            };
        }
        return Trigger::Unsupported("a `Records` event that is not from SQS".into());
    }
    let kind = match &event {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(5).map(String::as_str).collect();
            format!("an object with keys {keys:?}")
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
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn sample_events_are_recognised() {
        assert!(matches!(classify(fixture("connect-api.json")), Trigger::Api(_)));
        assert!(matches!(classify(fixture("connect-sqs.json")), Trigger::Sqs(_)));
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
            assert!(matches!(classify(event.clone()), Trigger::Unsupported(_)), "{event}");
        }
    }
}
