//! Property tests of the connect handler against the fakes: API callers get a 4xx for any bad
//! body, SQS messages that cannot be parsed are dropped (a permanent failure) without reaching
//! the connector or `batchItemFailures`, and any other event is refused, never a panic.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ConnectApp, handle};
use crate::domain::connect::Connector;
use crate::lambda::after_response::DeferredMarks;
use crate::lambda::request::MAX_BODY_BYTES;
use crate::lambda::trigger::{self, Trigger};
use crate::testing::arbitrary::{any_body, valid_body, valid_body_for};
use crate::testing::events::{API_EVENT, SQS_EVENT, any_event};
use crate::testing::oracle::{cases, oracle};
use crate::testing::{FakeLeaf, FakeLogins, FakeStara, FakeStates};

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
    let states = Arc::new(FakeStates::default());
    let deferred = Arc::new(DeferredMarks::new(states.clone()));
    let connector = Connector::new(
        logins,
        states,
        stara.clone(),
        leaf.clone(),
        Duration::from_secs(1),
    );
    let app = ConnectApp {
        connector,
        budget: Duration::from_secs(5),
        batch_concurrency: 3,
        deferred,
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
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
}

fn invoke(world: &World, event: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    RUNTIME.with(|rt| rt.block_on(handle(&world.app, LambdaEvent::new(event, Context::default()))))
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
        1 => (valid_body_for(pool_id()), MAX_BODY_BYTES - 64..MAX_BODY_BYTES + 64)
            .prop_map(|((b, _), len)| format!("{b:<len$}")),
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
        let answer: Value =
            response["body"].as_str().map_or(Value::Null, |b| serde_json::from_str(b).unwrap());
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
    fn sqs_batch_with_any_bodies(
        bodies in prop::collection::vec(sqs_body(), 1..10),
        leaf_down in prop::bool::weighted(0.25),
    ) {
        let world = world();
        *world.leaf.down.lock().unwrap() = leaf_down;
        let template = serde_json::from_str::<Value>(SQS_EVENT).unwrap()["Records"][0].clone();
        let mut records = Vec::new();
        let (mut valid_ids, mut invalid_ids, mut growers) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
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
        let distinct: Vec<Uuid> = growers.iter().copied().collect();
        prop_assert_eq!(asked, distinct, "one connect per distinct valid grower");
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
