//! Property-test strategies for whole events: the sample events of `events/` with parts
//! replaced by arbitrary JSON or removed, and schedule-shaped objects.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::arbitrary::{any_body, arb_json, arb_key, arb_text};
use crate::lambda::trigger;

pub(crate) const API_EVENT: &str = include_str!("../../../events/connect-api.json");
pub(crate) const SQS_EVENT: &str = include_str!("../../../events/connect-sqs.json");

/// Sets the field at `path` (a JSON pointer of object keys) to `value`, creating objects on the
/// way and replacing whatever non-object stood there.
pub(crate) fn set_path(target: &mut Value, path: &str, value: Value) {
    let mut at = target;
    let keys: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, key) in keys.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let map = at.as_object_mut().unwrap();
        if i + 1 == keys.len() {
            map.insert((*key).to_owned(), value);
            return;
        }
        at = map.entry((*key).to_owned()).or_insert(Value::Null);
    }
}

pub(crate) fn remove_path(target: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('/').unwrap();
    if let Some(Value::Object(map)) = target.pointer_mut(parent) {
        map.remove(key);
    }
}

/// What a field holds in a well-formed event, so that most edits keep the event readable and
/// reach the code behind the classifier; the rest put arbitrary JSON there.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Text,
    Body,
    Flag,
    TextMap,
    Any,
}

/// Fields of an API Gateway 2.0 event that an edit may replace or remove.
pub(crate) const API_PATHS: &[(&str, Kind)] = &[
    ("/version", Kind::Text),
    ("/routeKey", Kind::Text),
    ("/rawPath", Kind::Text),
    ("/rawQueryString", Kind::Text),
    ("/body", Kind::Body),
    ("/isBase64Encoded", Kind::Flag),
    ("/headers", Kind::TextMap),
    ("/headers/content-type", Kind::Text),
    ("/cookies", Kind::Any),
    ("/queryStringParameters", Kind::TextMap),
    ("/pathParameters", Kind::TextMap),
    ("/pathParameters/leafUserId", Kind::Text),
    ("/stageVariables", Kind::TextMap),
    ("/requestContext", Kind::Any),
    ("/requestContext/http", Kind::Any),
    ("/requestContext/http/method", Kind::Text),
    ("/requestContext/http/path", Kind::Text),
    ("/requestContext/http/sourceIp", Kind::Text),
    ("/requestContext/routeKey", Kind::Text),
    ("/requestContext/authorizer", Kind::Any),
    ("/requestContext/authorizer/iam", Kind::Any),
    ("/requestContext/timeEpoch", Kind::Any),
    ("/requestContext/requestId", Kind::Text),
];

/// Fields of one SQS record that an edit may replace or remove.
pub(crate) const SQS_PATHS: &[(&str, Kind)] = &[
    ("/messageId", Kind::Text),
    ("/receiptHandle", Kind::Text),
    ("/body", Kind::Body),
    ("/attributes", Kind::TextMap),
    ("/attributes/ApproximateReceiveCount", Kind::Text),
    ("/attributes/SentTimestamp", Kind::Text),
    ("/messageAttributes", Kind::Any),
    ("/md5OfBody", Kind::Text),
    ("/eventSource", Kind::Text),
    ("/eventSourceARN", Kind::Text),
    ("/awsRegion", Kind::Text),
];

/// A value for a field of that kind: usually of the right type, now and then arbitrary JSON.
pub(crate) fn field_value(kind: Kind) -> BoxedStrategy<Value> {
    let typed = match kind {
        Kind::Text => arb_text().prop_map(Value::String).boxed(),
        Kind::Body => any_body().prop_map(Value::String).boxed(),
        Kind::Flag => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::TextMap => prop::collection::btree_map(arb_key(), arb_text(), 0..4)
            .prop_map(|m| json!(m))
            .boxed(),
        Kind::Any => return arb_json().boxed(),
    };
    prop_oneof![4 => typed, 1 => arb_json()].boxed()
}

/// A list of edits: `Some(value)` sets the field, `None` removes it.
pub(crate) fn edits(
    paths: &'static [(&'static str, Kind)],
    max: usize,
) -> impl Strategy<Value = Vec<(&'static str, Option<Value>)>> {
    let edit = prop::sample::select(paths)
        .prop_flat_map(|(path, kind)| (Just(path), prop::option::weighted(0.85, field_value(kind))));
    prop::collection::vec(edit, 0..max)
}

pub(crate) fn apply(target: &mut Value, edits: Vec<(&str, Option<Value>)>) {
    for (path, value) in edits {
        match value {
            Some(value) => set_path(target, path, value),
            None => remove_path(target, path),
        }
    }
}

/// The sample API event with some fields replaced by arbitrary JSON or removed, or a minimal
/// 2.0-shaped object around arbitrary JSON.
pub(crate) fn api_envelope() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => edits(API_PATHS, 5).prop_map(|edits| {
            let mut event: Value = serde_json::from_str(API_EVENT).unwrap();
            apply(&mut event, edits);
            event
        }),
        1 => (arb_json(), prop::collection::btree_map(arb_key(), arb_json(), 0..4)).prop_map(|(http, rest)| {
            let mut event: Map<String, Value> = rest.into_iter().collect();
            event.insert("version".into(), json!("2.0"));
            event.insert("requestContext".into(), json!({"http": http}));
            Value::Object(event)
        }),
    ]
}

/// An SQS batch of 1–5 records, each the sample record with edits, `eventSource` mostly kept.
pub(crate) fn sqs_envelope() -> impl Strategy<Value = Value> {
    let record = edits(SQS_PATHS, 4).prop_map(|edits| {
        let mut record = serde_json::from_str::<Value>(SQS_EVENT).unwrap()["Records"][0].clone();
        apply(&mut record, edits);
        record
    });
    let records = prop_oneof![
        4 => prop::collection::vec(record, 1..6).prop_map(Value::Array),
        1 => arb_json(),
    ];
    (records, prop::collection::btree_map(arb_key(), arb_json(), 0..2)).prop_map(|(records, rest)| {
        let mut event: Map<String, Value> = rest.into_iter().collect();
        event.insert("Records".into(), records);
        Value::Object(event)
    })
}

/// A schedule-shaped object with random extra fields.
pub(crate) fn schedule_envelope() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        prop::collection::btree_map(arb_key(), arb_json(), 0..4),
    )
        .prop_map(|(rule, rest)| {
            let mut event: Map<String, Value> = rest.into_iter().collect();
            if rule {
                event.insert("source".into(), json!("aws.events"));
                event.insert("detail-type".into(), json!("Scheduled Event"));
            } else {
                event.insert("source".into(), json!(trigger::SCHEDULER_SOURCE));
                event.insert("action".into(), json!(trigger::SCHEDULER_ACTION));
            }
            Value::Object(event)
        })
}

/// Any event at all.
pub(crate) fn any_event() -> impl Strategy<Value = Value> {
    prop_oneof![2 => arb_json(), 2 => api_envelope(), 2 => sqs_envelope(), 1 => schedule_envelope()]
}
