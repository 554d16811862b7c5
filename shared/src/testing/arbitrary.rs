//! Property-test strategies for what the functions receive: arbitrary bytes and JSON, and
//! connect bodies that are valid, near valid (the right keys with wrong, random or right values,
//! plus stray keys) or anything at all.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::model::ConnectRequest;

/// Names that steer the classifier and the parser, mixed into keys and string values.
pub(crate) const NAMES: &[&str] = &[
    "leafUserId",
    "force",
    "reason",
    "version",
    "2.0",
    "requestContext",
    "http",
    "method",
    "POST",
    "DELETE",
    "GET",
    "path",
    "rawPath",
    "/connections",
    "/connections/",
    "routeKey",
    "POST /connections",
    "DELETE /connections/{leafUserId}",
    "GET /connections/{leafUserId}",
    "$default",
    "pathParameters",
    "body",
    "isBase64Encoded",
    "headers",
    "Records",
    "eventSource",
    "aws:sqs",
    "messageId",
    "source",
    "aws.events",
    "detail-type",
    "Scheduled Event",
    "action",
    "stara-connect.scheduler",
    "verify-all",
];

pub(crate) fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// A UUID spelled the accepted way, with each letter's case chosen by a bit of `mask`.
pub(crate) fn hyphenated(id: Uuid, mask: u64) -> String {
    id.hyphenated()
        .to_string()
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Strings: arbitrary Unicode (control characters included), short ASCII words, the names above,
/// and UUIDs in accepted and refused spellings.
pub(crate) fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[a-zA-Z0-9 _-]{0,12}",
        2 => prop::sample::select(NAMES).prop_map(str::to_owned),
        2 => uuid_text(),
    ]
}

/// UUID-like strings: most accepted, the rest in the spellings `Uuid::try_parse` also knows
/// (simple, braced, urn) or slightly broken.
pub(crate) fn uuid_text() -> impl Strategy<Value = String> {
    (arb_uuid(), any::<u64>(), 0..9u8, any::<prop::sample::Index>()).prop_map(|(id, mask, form, at)| {
        let text = hyphenated(id, mask);
        match form {
            0..=3 => text,
            4 => id.simple().to_string(),
            5 => id.braced().to_string(),
            6 => id.urn().to_string(),
            7 => format!(" {text}"),
            _ => {
                // One character replaced: a hyphen by a digit, anything else by a non-hex character.
                let mut chars: Vec<char> = text.chars().collect();
                let i = at.index(chars.len());
                chars[i] = if chars[i] == '-' {
                    '0'
                } else {
                    ['g', '-', 'é', ' '][i % 4]
                };
                chars.into_iter().collect()
            }
        }
    })
}

pub(crate) fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => "[a-zA-Z]{1,10}",
        1 => any::<String>(),
    ]
}

pub(crate) fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// Any JSON value, nested up to four levels.
pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON text, compact or pretty, sometimes with whitespace around it.
pub(crate) fn render(value: &Value, style: u8) -> String {
    match style % 4 {
        0 | 1 => value.to_string(),
        2 => serde_json::to_string_pretty(value).unwrap(),
        _ => format!("\n\t {value} \r\n"),
    }
}

/// A valid body and the request it means.
pub(crate) fn valid_body() -> impl Strategy<Value = (String, ConnectRequest)> {
    valid_body_for(arb_uuid().boxed())
}

pub(crate) fn valid_body_for(ids: BoxedStrategy<Uuid>) -> impl Strategy<Value = (String, ConnectRequest)> {
    (
        ids,
        any::<u64>(),
        prop::option::of(prop::option::of(any::<bool>())),
        prop::option::of(prop::option::of(arb_text())),
        any::<u8>(),
    )
        .prop_map(|(id, mask, force, reason, style)| {
            let mut object = Map::new();
            object.insert("leafUserId".into(), Value::String(hyphenated(id, mask)));
            if let Some(force) = force {
                object.insert("force".into(), force.map_or(Value::Null, Value::Bool));
            }
            if let Some(reason) = reason.clone() {
                object.insert("reason".into(), reason.map_or(Value::Null, Value::String));
            }
            let request = ConnectRequest {
                leaf_user_id: id,
                force: force.flatten().unwrap_or(false),
                reason: reason.flatten(),
            };
            (render(&Value::Object(object), style), request)
        })
}

/// Objects built from the body's own keys with values that are sometimes right, sometimes of the
/// wrong type or spelling, sometimes missing, and now and then a stray key.
pub(crate) fn near_valid_object() -> impl Strategy<Value = Value> {
    let leaf_user_id = prop_oneof![
        4 => uuid_text().prop_map(Value::String),
        2 => arb_text().prop_map(Value::String),
        1 => arb_number(),
        1 => Just(Value::Null),
        1 => arb_json(),
    ];
    let force =
        prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => Just(Value::Null), 2 => arb_json()];
    let reason =
        prop_oneof![3 => arb_text().prop_map(Value::String), 1 => Just(Value::Null), 2 => arb_json()];
    let extra = prop_oneof![
        4 => Just(BTreeMap::new()),
        1 => prop::collection::btree_map(arb_key(), arb_json(), 1..3),
    ];
    (
        prop::option::weighted(0.9, leaf_user_id),
        prop::option::of(force),
        prop::option::of(reason),
        extra,
    )
        .prop_map(|(id, force, reason, extra)| {
            let mut object = Map::new();
            for (key, value) in extra {
                object.insert(key, value);
            }
            // The body's own keys last, so a stray key of the same name never hides them.
            for (key, value) in [("leafUserId", id), ("force", force), ("reason", reason)] {
                if let Some(value) = value {
                    object.insert(key.into(), value);
                }
            }
            Value::Object(object)
        })
}

pub(crate) fn near_valid_body() -> impl Strategy<Value = String> {
    (near_valid_object(), any::<u8>()).prop_map(|(v, style)| render(&v, style))
}

/// Any kind of body text, valid or not.
pub(crate) fn any_body() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => valid_body().prop_map(|(b, _)| b),
        3 => near_valid_body(),
        2 => arb_json().prop_map(|v| v.to_string()),
        2 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => Just(String::new()),
    ]
}
