//! Property tests for bad input: whatever bytes or JSON arrive, nothing panics, the body parser
//! agrees with an independent oracle, error texts quote no values, API callers get a 4xx and
//! SQS messages that cannot be parsed are dropped (permanent failure) without reaching the
//! connector or `batchItemFailures`.
//!
//! Strategies: arbitrary bytes; arbitrary JSON trees; near-valid bodies (the right keys with
//! wrong, random or right values, plus stray keys); valid bodies; and the sample events of
//! `events/` with parts replaced by arbitrary JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::api;
use crate::connect::ConnectRequest;
use crate::connect::Connector;
use crate::connect::fakes::{FakeLeaf, FakeLogins, FakeStara};
use crate::connect_handler::{self, ConnectApp};
use crate::request::{self, MAX_BODY_BYTES};
use crate::trigger::{self, Trigger};

const API_EVENT: &str = include_str!("../../events/connect-api.json");
const SQS_EVENT: &str = include_str!("../../events/connect-sqs.json");

/// Cases per property: 256 for the parsers, 64 for the handler (the whole workflow against the
/// fakes). `PROPTEST_CASES=<n>` runs every property `n` times instead, for a longer search.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The oracle: what `parse_connect_body` must accept, written without looking at its code paths.
// ---------------------------------------------------------------------------------------------

/// A hyphenated UUID in any letter case, read by hand (no `uuid` parser involved).
fn oracle_uuid(text: &str) -> Option<Uuid> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    for (i, b) in bytes.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            *b == b'-'
        } else {
            b.is_ascii_hexdigit()
        };
        if !ok {
            return None;
        }
    }
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    u128::from_str_radix(&hex, 16).ok().map(Uuid::from_u128)
}

/// `Some(request)` exactly when the body is valid: at most 16 KiB of JSON holding an object whose
/// keys are among leafUserId, force and reason; leafUserId a hyphenated UUID string; force absent,
/// null or a boolean; reason absent, null or a string.
fn oracle(body: &[u8]) -> Option<ConnectRequest> {
    if body.len() > MAX_BODY_BYTES {
        return None;
    }
    let json: Value = serde_json::from_slice(body).ok()?;
    let object = json.as_object()?;
    if !object
        .keys()
        .all(|k| matches!(k.as_str(), "leafUserId" | "force" | "reason"))
    {
        return None;
    }
    let leaf_user_id = oracle_uuid(object.get("leafUserId")?.as_str()?)?;
    let force = match object.get("force") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return None,
    };
    match object.get("reason") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return None,
    }
    Some(ConnectRequest { leaf_user_id, force })
}

/// Every string value (not key) and every key of a JSON document.
fn strings_of(value: &Value, values: &mut Vec<String>, keys: &mut Vec<String>) {
    match value {
        Value::String(s) => values.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_of(v, values, keys)),
        Value::Object(map) => {
            for (k, v) in map {
                keys.push(k.clone());
                strings_of(v, values, keys);
            }
        }
        _ => {}
    }
}

/// Fails when `text` quotes a string value of `doc`. Short values (under 8 characters) are
/// skipped, as are values that are part of a key or of a documented field name: those can
/// appear in a fixed message by coincidence.
fn assert_quotes_no_value(text: &str, doc: &Value) -> Result<(), TestCaseError> {
    let (mut values, mut keys) = (Vec::new(), Vec::new());
    strings_of(doc, &mut values, &mut keys);
    for v in values {
        if v.chars().count() < 8
            || keys.iter().any(|k| k.contains(&v))
            || "leafUserId force reason".contains(&v)
        {
            continue;
        }
        prop_assert!(!text.contains(&v), "the text {text:?} quotes the value {v:?}");
    }
    Ok(())
}

/// The parser against the oracle, plus the rules for its error texts.
fn check_parse(body: &[u8]) -> Result<(), TestCaseError> {
    let got = request::parse_connect_body(body);
    let want = oracle(body);
    match (&got, &want) {
        (Ok(g), Some(w)) => prop_assert_eq!(g, w),
        (Err(e), None) => {
            prop_assert!(!e.0.trim().is_empty(), "an empty error message");
            if let Ok(doc) = serde_json::from_slice::<Value>(body) {
                assert_quotes_no_value(&e.0, &doc)?;
            }
        }
        _ => prop_assert!(
            false,
            "parser {got:?} but oracle {want:?} for {:?}",
            String::from_utf8_lossy(body)
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

/// Names that steer the classifier and the parser, mixed into keys and string values.
const NAMES: &[&str] = &[
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

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// A UUID spelled the accepted way, with each letter's case chosen by a bit of `mask`.
fn hyphenated(id: Uuid, mask: u64) -> String {
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
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[a-zA-Z0-9 _-]{0,12}",
        2 => prop::sample::select(NAMES).prop_map(str::to_owned),
        2 => uuid_text(),
    ]
}

/// UUID-like strings: most accepted, the rest in the spellings `Uuid::try_parse` also knows
/// (simple, braced, urn) or slightly broken.
fn uuid_text() -> impl Strategy<Value = String> {
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

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => "[a-zA-Z]{1,10}",
        1 => any::<String>(),
    ]
}

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// Any JSON value, nested up to four levels.
fn arb_json() -> impl Strategy<Value = Value> {
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
fn render(value: &Value, style: u8) -> String {
    match style % 4 {
        0 | 1 => value.to_string(),
        2 => serde_json::to_string_pretty(value).unwrap(),
        _ => format!("\n\t {value} \r\n"),
    }
}

/// A valid body and the request it means.
fn valid_body() -> impl Strategy<Value = (String, ConnectRequest)> {
    valid_body_for(arb_uuid().boxed())
}

fn valid_body_for(ids: BoxedStrategy<Uuid>) -> impl Strategy<Value = (String, ConnectRequest)> {
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
            if let Some(reason) = reason {
                object.insert("reason".into(), reason.map_or(Value::Null, Value::String));
            }
            let request = ConnectRequest {
                leaf_user_id: id,
                force: force.flatten().unwrap_or(false),
            };
            (render(&Value::Object(object), style), request)
        })
}

/// Objects built from the body's own keys with values that are sometimes right, sometimes of the
/// wrong type or spelling, sometimes missing, and now and then a stray key.
fn near_valid_object() -> impl Strategy<Value = Value> {
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
    let extra = prop_oneof![4 => Just(BTreeMap::new()), 1 => prop::collection::btree_map(arb_key(), arb_json(), 1..3)];
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

fn near_valid_body() -> impl Strategy<Value = String> {
    (near_valid_object(), any::<u8>()).prop_map(|(v, style)| render(&v, style))
}

/// Any kind of body text, valid or not.
fn any_body() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => valid_body().prop_map(|(b, _)| b),
        3 => near_valid_body(),
        2 => arb_json().prop_map(|v| v.to_string()),
        2 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => Just(String::new()),
    ]
}

/// Sets the field at `path` (a JSON pointer of object keys) to `value`, creating objects on the
/// way and replacing whatever non-object stood there.
fn set_path(target: &mut Value, path: &str, value: Value) {
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

fn remove_path(target: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('/').unwrap();
    if let Some(Value::Object(map)) = target.pointer_mut(parent) {
        map.remove(key);
    }
}

/// What a field holds in a well-formed event, so that most edits keep the event readable and
/// reach the code behind the classifier; the rest put arbitrary JSON there.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    Body,
    Flag,
    TextMap,
    Any,
}

/// Fields of an API Gateway 2.0 event that an edit may replace or remove.
const API_PATHS: &[(&str, Kind)] = &[
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
const SQS_PATHS: &[(&str, Kind)] = &[
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
fn field_value(kind: Kind) -> BoxedStrategy<Value> {
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
fn edits(
    paths: &'static [(&'static str, Kind)],
    max: usize,
) -> impl Strategy<Value = Vec<(&'static str, Option<Value>)>> {
    let edit = prop::sample::select(paths)
        .prop_flat_map(|(path, kind)| (Just(path), prop::option::weighted(0.85, field_value(kind))));
    prop::collection::vec(edit, 0..max)
}

fn apply(target: &mut Value, edits: Vec<(&str, Option<Value>)>) {
    for (path, value) in edits {
        match value {
            Some(value) => set_path(target, path, value),
            None => remove_path(target, path),
        }
    }
}

/// The sample API event with some fields replaced by arbitrary JSON or removed, or a minimal
/// 2.0-shaped object around arbitrary JSON.
fn api_envelope() -> impl Strategy<Value = Value> {
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
fn sqs_envelope() -> impl Strategy<Value = Value> {
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
fn schedule_envelope() -> impl Strategy<Value = Value> {
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
fn any_event() -> impl Strategy<Value = Value> {
    prop_oneof![2 => arb_json(), 2 => api_envelope(), 2 => sqs_envelope(), 1 => schedule_envelope()]
}

// ---------------------------------------------------------------------------------------------
// The handler against the fakes.
// ---------------------------------------------------------------------------------------------

/// Four growers: two ready to connect, one without a stored login, one unknown to Leaf.
struct World {
    app: ConnectApp,
    stara: Arc<FakeStara>,
    leaf: Arc<FakeLeaf>,
    /// Leaf users with a stored Stara login.
    ready: Vec<Uuid>,
    /// Leaf users with no stored login.
    no_login: Uuid,
}

const POOL: [u128; 4] = [
    0x0a1b2c3d_4e5f_4a6b_8c7d_0e1f2a3b4c5d,
    0x1b2c3d4e_5f60_4b7c_9d8e_1f2a3b4c5d6e,
    0x2c3d4e5f_6071_4c8d_ae9f_2a3b4c5d6e7f,
    0x3d4e5f60_7182_4d9e_bfa0_3b4c5d6e7f80,
];

fn world() -> World {
    let (logins, stara, leaf) = (
        Arc::new(FakeLogins::default()),
        Arc::new(FakeStara::default()),
        Arc::new(FakeLeaf::default()),
    );
    let pool: Vec<Uuid> = POOL.iter().map(|n| Uuid::from_u128(*n)).collect();
    for user in &pool[..3] {
        leaf.users.lock().unwrap().insert(*user);
    }
    for user in &pool[..2] {
        logins.logins.lock().unwrap().insert(*user, "pw".into());
    }
    let connector = Connector::new(logins, stara.clone(), leaf.clone());
    let app = ConnectApp {
        connector,
        budget: Duration::from_secs(5),
        batch_concurrency: 3,
    };
    World {
        app,
        stara,
        leaf,
        ready: pool[..2].to_vec(),
        no_login: pool[2],
    }
}

fn pool_id() -> BoxedStrategy<Uuid> {
    prop::sample::select(POOL.to_vec())
        .prop_map(Uuid::from_u128)
        .boxed()
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
}

fn invoke(world: &World, event: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    RUNTIME.with(|rt| {
        rt.block_on(connect_handler::handle(
            &world.app,
            LambdaEvent::new(event, Context::default()),
        ))
    })
}

fn gets(world: &World) -> Vec<Uuid> {
    world.leaf.gets.lock().unwrap().clone()
}

/// An API body: its text, whether to base64-encode it, and the `isBase64Encoded` flag.
#[derive(Debug, Clone)]
struct ApiBody {
    text: Option<String>,
    encode: bool,
    flag: bool,
}

fn api_body() -> impl Strategy<Value = ApiBody> {
    let text = prop_oneof![
        3 => valid_body_for(pool_id()).prop_map(|(b, _)| b),
        1 => valid_body().prop_map(|(b, _)| b),
        6 => any_body(),
        // Around the size limit, raw and (once encoded) in base64.
        1 => (valid_body_for(pool_id()), MAX_BODY_BYTES - 64..MAX_BODY_BYTES + 64).prop_map(|((b, _), len)| format!("{b:<len$}")),
    ];
    (prop::option::weighted(0.95, text), any::<bool>(), any::<bool>())
        .prop_map(|(text, encode, flag)| ApiBody { text, encode, flag })
}

/// What the handler should decode, done independently: `None` when the body cannot be read.
fn api_body_bytes(body: &ApiBody) -> (Option<String>, Option<Vec<u8>>) {
    let sent = body.text.as_ref().map(|t| {
        if body.encode {
            base64::engine::general_purpose::STANDARD.encode(t)
        } else {
            t.clone()
        }
    });
    let decoded = match (&sent, body.flag) {
        (None, _) => Some(Vec::new()),
        (Some(s), false) => Some(s.as_bytes().to_vec()),
        (Some(s), true) => base64::engine::general_purpose::STANDARD.decode(s).ok(),
    };
    (sent, decoded)
}

/// One SQS record body: present or absent.
fn sqs_body() -> impl Strategy<Value = Option<String>> {
    let text = prop_oneof![
        4 => valid_body_for(pool_id()).prop_map(|(b, _)| b),
        1 => valid_body().prop_map(|(b, _)| b),
        5 => any_body(),
    ];
    prop::option::weighted(0.95, text)
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn parse_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_parse(&body)?;
    }

    #[test]
    fn parse_arbitrary_json(value in arb_json(), style in any::<u8>()) {
        check_parse(render(&value, style).as_bytes())?;
    }

    #[test]
    fn parse_near_valid_bodies(body in near_valid_body()) {
        check_parse(body.as_bytes())?;
    }

    #[test]
    fn parse_valid_bodies((body, want) in valid_body()) {
        prop_assert_eq!(request::parse_connect_body(body.as_bytes()), Ok(want));
    }

    #[test]
    fn parse_bodies_around_the_size_limit((body, want) in valid_body(), len in MAX_BODY_BYTES - 16..MAX_BODY_BYTES + 16) {
        let padded = format!("{body:<len$}");
        let got = request::parse_connect_body(padded.as_bytes());
        if padded.len() <= MAX_BODY_BYTES {
            prop_assert_eq!(got, Ok(want));
        } else {
            prop_assert!(got.unwrap_err().0.contains("larger than"));
        }
    }

    /// Secrets pasted anywhere (in leafUserId, force, reason, a stray key's value, nested) never
    /// come back in the error text.
    #[test]
    fn errors_never_quote_a_secret(object in near_valid_object(), secret in "[A-Za-z0-9!#%&*+]{6,24}", at in 0..5u8, style in any::<u8>()) {
        let secret = format!("S3CR3T{secret}");
        let mut object = object;
        let slot = match at {
            0 => "leafUserId",
            1 => "force",
            2 => "reason",
            3 => "password",
            _ => "force",
        };
        // A string is a valid reason: a secret there must be wrapped to make the body invalid.
        let value = match at {
            2 => json!([secret]),
            4 => json!({"nested": [secret]}),
            _ => json!(secret),
        };
        object.as_object_mut().unwrap().insert(slot.into(), value);
        let body = render(&object, style);
        let err = request::parse_connect_body(body.as_bytes()).unwrap_err();
        prop_assert!(!err.0.contains("S3CR3T"), "{err}");
    }

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
    match trigger::classify(event.clone()) {
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
        Trigger::Schedule(_) => {}
        Trigger::Unsupported(what) => {
            prop_assert!(!what.is_empty());
            assert_quotes_no_value(&what, &event)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    /// (a) `POST /connections` with any body: 400 unless the body is valid; a valid one reaches
    /// the fakes and gets their answer (201 for a ready grower, 404 otherwise); never a 5xx.
    #[test]
    fn api_event_with_any_body(body in api_body()) {
        let world = world();
        let (sent, decoded) = api_body_bytes(&body);
        let mut event: Value = serde_json::from_str(API_EVENT).unwrap();
        event["body"] = sent.map_or(Value::Null, Value::String);
        event["isBase64Encoded"] = json!(body.flag);
        let response = invoke(&world, event).expect("an API event is always answered");
        let status = response["statusCode"].as_u64().expect("a statusCode");
        let answer: Value = response["body"].as_str().map_or(Value::Null, |b| serde_json::from_str(b).unwrap());
        match decoded.as_deref().and_then(oracle) {
            Some(want) => {
                let expected = if world.ready.contains(&want.leaf_user_id) { 201 } else { 404 };
                prop_assert_eq!(status, expected, "{}", answer);
                prop_assert_eq!(gets(&world), vec![want.leaf_user_id]);
                prop_assert_eq!(&answer["leafUserId"], &json!(want.leaf_user_id.to_string()));
            }
            None => {
                prop_assert_eq!(status, 400, "{}", answer);
                prop_assert_eq!(answer["error"]["code"].as_str(), Some("invalid_request"));
                prop_assert!(gets(&world).is_empty(), "an invalid body reached the connector");
                prop_assert_eq!(*world.stara.calls.lock().unwrap(), 0);
            }
        }
    }

    /// (b) An SQS batch of valid and invalid bodies: invalid ones are dropped for good (never in
    /// batchItemFailures, never passed to the connector); each distinct valid grower is connected
    /// once; only retryable failures (Leaf down) go back to the queue.
    #[test]
    fn sqs_batch_with_any_bodies(bodies in prop::collection::vec(sqs_body(), 1..10), leaf_down in prop::bool::weighted(0.25)) {
        let world = world();
        *world.leaf.fail_get.lock().unwrap() = leaf_down;
        let template = serde_json::from_str::<Value>(SQS_EVENT).unwrap()["Records"][0].clone();
        let mut records = Vec::new();
        let (mut valid_ids, mut invalid_ids, mut growers) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (i, body) in bodies.iter().enumerate() {
            let id = format!("msg-{i}");
            let mut record = template.clone();
            record["messageId"] = json!(id);
            match body {
                Some(body) => record["body"] = json!(body),
                None => { record.as_object_mut().unwrap().remove("body"); }
            }
            match body.as_deref().and_then(|b| oracle(b.as_bytes())) {
                Some(request) => { valid_ids.insert(id); growers.insert(request.leaf_user_id); }
                None => { invalid_ids.insert(id); }
            }
            records.push(record);
        }
        let response = invoke(&world, json!({"Records": records})).expect("an SQS batch is always answered");
        let failures: BTreeSet<String> = response["batchItemFailures"].as_array().expect("batchItemFailures")
            .iter().map(|f| f["itemIdentifier"].as_str().unwrap().to_owned()).collect();

        for id in &failures {
            prop_assert!(!invalid_ids.contains(id), "invalid message {id} was sent back for a retry");
        }
        let mut asked = gets(&world);
        asked.sort();
        prop_assert_eq!(asked, growers.iter().copied().collect::<Vec<_>>(), "one connect per distinct valid grower");
        if leaf_down {
            prop_assert_eq!(failures, valid_ids, "every valid message is retried while Leaf is down");
            prop_assert_eq!(*world.stara.calls.lock().unwrap(), 0);
        } else {
            prop_assert!(failures.is_empty(), "only permanent outcomes with the fakes up: {failures:?}");
            let ready = growers.iter().filter(|g| world.ready.contains(g)).count();
            prop_assert_eq!(*world.stara.calls.lock().unwrap(), ready);
            prop_assert_eq!(*world.leaf.posts.lock().unwrap(), ready);
            if growers.contains(&world.no_login) {
                prop_assert!(!world.leaf.held.lock().unwrap().contains_key(&world.no_login));
            }
        }
    }

    /// (c) Any event: answered (API or SQS, never a 5xx with the fakes up) or refused as
    /// `UnsupportedEvent`; never a panic.
    #[test]
    fn any_event_is_answered_or_refused(event in any_event()) {
        let world = world();
        let kind = match trigger::classify(event.clone()) {
            Trigger::Api(_) => "api",
            Trigger::Sqs(_) => "sqs",
            _ => "other",
        };
        match invoke(&world, event) {
            Ok(response) => match kind {
                "api" => {
                    let status = response["statusCode"].as_u64().expect("a statusCode");
                    prop_assert!((200..500).contains(&status), "status {status}: {response}");
                }
                "sqs" => prop_assert_eq!(response["batchItemFailures"].as_array().map(Vec::len), Some(0)),
                _ => prop_assert!(false, "{kind} event answered: {response}"),
            },
            Err(diagnostic) => {
                prop_assert_eq!(kind, "other");
                prop_assert_eq!(diagnostic.error_type.as_str(), "UnsupportedEvent");
                prop_assert!(!diagnostic.error_message.is_empty());
            }
        }
    }
}

/// The oracle itself, on the parser's own example cases: a wrong oracle would make every
/// property above meaningless.
#[test]
fn the_oracle_agrees_with_the_documented_examples() {
    let id = "8c2f7e1a-4b3d-4e5f-9a6b-7c8d9e0f1a2b";
    assert!(oracle(format!(r#"{{"leafUserId":"{id}"}}"#).as_bytes()).is_some());
    assert!(
        oracle(
            format!(
                r#"{{"leafUserId":"{}","force":true,"reason":"x"}}"#,
                id.to_uppercase()
            )
            .as_bytes()
        )
        .unwrap()
        .force
    );
    for bad in [
        String::new(),
        "{}".into(),
        format!(r#"{{"leafUserId":"{}"}}"#, id.replace('-', "")),
        format!(r#"{{"leafUserId":"{{{id}}}"}}"#),
        format!(r#"{{"leafUserId":"{id}","force":"yes"}}"#),
        format!(r#"{{"leafUserId":"{id}","reason":5}}"#),
        format!(r#"{{"leafUserId":"{id}","password":"x"}}"#),
    ] {
        assert!(oracle(bad.as_bytes()).is_none(), "{bad}");
    }
}
