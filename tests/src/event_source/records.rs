//! The records of a batch: the SQS event Lambda builds of received messages, and which of them
//! a `ReportBatchItemFailures` response sends back.

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{Value, json};

/// The SQS event Lambda builds of `messages` received from the queue `arn`.
pub fn sqs_event(messages: &[Message], arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), json!(value)))
                .collect();
            json!({
                "messageId": id_of(m),
                "receiptHandle": m.receipt_handle(),
                "body": m.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": arn.split(':').nth(3).unwrap_or("us-east-1"),
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The ids of the records to deliver again, as Lambda reads a `ReportBatchItemFailures`
/// response: none for an empty or null list, the listed ones, and every record when an entry
/// is malformed or names no record of the batch.
pub(super) fn reported_failures(response: &Value, messages: &[Message]) -> Vec<String> {
    let all = || messages.iter().map(|m| id_of(m).to_owned()).collect();
    let listed = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(listed)) => listed,
        Some(_) => return all(),
    };
    let mut ids = Vec::new();
    for entry in listed {
        match entry["itemIdentifier"].as_str() {
            Some(id) if messages.iter().any(|m| id_of(m) == id) => ids.push(id.to_owned()),
            _ => return all(),
        }
    }
    ids
}

pub(super) fn id_of(message: &Message) -> &str {
    message.message_id().unwrap_or_default()
}

pub(super) fn attribute(message: &Message, name: MessageSystemAttributeName) -> String {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: &str) -> Message {
        Message::builder()
            .message_id(id)
            .receipt_handle(format!("handle-{id}"))
            .body(body)
            .md5_of_body("md5")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .build()
    }

    #[test]
    fn records_have_the_shape_lambda_gives_them() {
        let arn = "arn:aws:sqs:eu-west-1:123456789012:verify";
        let event = sqs_event(&[message("a", "{}"), message("b", "[]")], arn);
        let record = &event["Records"][1];
        assert_eq!(
            (&record["messageId"], &record["receiptHandle"], &record["body"]),
            (&json!("b"), &json!("handle-b"), &json!("[]"))
        );
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(
            (
                &record["eventSource"],
                &record["eventSourceARN"],
                &record["awsRegion"]
            ),
            (&json!("aws:sqs"), &json!(arn), &json!("eu-west-1"))
        );
        assert_eq!(record["md5OfBody"], "md5");
        assert_eq!(record["messageAttributes"], json!({}));
    }

    #[test]
    fn failures_are_read_as_lambda_reads_them() {
        let batch = [message("a", ""), message("b", "")];
        let failed = |response: Value| reported_failures(&response, &batch);
        assert!(failed(json!({})).is_empty());
        assert!(failed(json!({"batchItemFailures": null})).is_empty());
        assert!(failed(json!({"batchItemFailures": []})).is_empty());
        let one = json!({"batchItemFailures": [{"itemIdentifier": "b"}]});
        assert_eq!(failed(one), ["b"]);
        // An entry naming no record of the batch fails the whole batch.
        let stranger = json!({"batchItemFailures": [{"itemIdentifier": "z"}]});
        assert_eq!(failed(stranger), ["a", "b"]);
        assert_eq!(failed(json!({"batchItemFailures": [{}]})), ["a", "b"]);
        assert_eq!(failed(json!({"batchItemFailures": "b"})), ["a", "b"]);
    }
}
