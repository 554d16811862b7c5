//! Bytes in, the connect function's dispatcher out: JSON → `trigger::classify` → for an API
//! Gateway request `api::route`, `api::body_bytes` and `request::parse_connect_body`; for an SQS
//! batch each record's body through `parse_connect_body`. The raw bytes go to
//! `parse_connect_body` too. Besides "no panic", it checks the cheap invariants the property
//! tests (shared/src/proptests.rs) check: refusals carry a non-empty reason.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::request::{self, MAX_BODY_BYTES};
use shared::{api, trigger};

fn parse(body: &[u8]) {
    match request::parse_connect_body(body) {
        Ok(_) => assert!(body.len() <= MAX_BODY_BYTES, "a body over the limit was accepted"),
        Err(bad) => assert!(!bad.0.trim().is_empty(), "a refusal without a reason"),
    }
}

fuzz_target!(|data: &[u8]| {
    parse(data);
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match trigger::classify(event) {
        trigger::Trigger::Api(request) => {
            let _ = api::route(&request);
            match api::body_bytes(&request) {
                Ok(body) => parse(&body),
                Err(bad) => assert!(!bad.0.is_empty()),
            }
        }
        trigger::Trigger::Sqs(batch) => {
            for record in &batch.records {
                if let Some(body) = &record.body {
                    parse(body.as_bytes());
                }
            }
        }
        trigger::Trigger::Unsupported(what) => assert!(!what.is_empty()),
        // Schedules, and whatever kinds are added later, need nothing more from the dispatcher.
        #[allow(unreachable_patterns)]
        _ => {}
    }
});
