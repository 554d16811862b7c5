//! Bytes in, the connect function's dispatcher out: JSON → `trigger::classify` → for an API
//! Gateway request `api::route`, `api::body_bytes` and `request::parse_connect_body`; for an SQS
//! batch each record's body through `parse_connect_body`. The raw bytes go to
//! `parse_connect_body` too. Besides "no panic", it checks the cheap invariants the property
//! tests check: refusals carry a non-empty reason.

use serde_json::Value;

use crate::lambda::api;
use crate::lambda::request::{MAX_BODY_BYTES, parse_connect_body};
use crate::lambda::trigger::{Trigger, classify};

fn parse(body: &[u8]) {
    match parse_connect_body(body) {
        Ok(_) => assert!(body.len() <= MAX_BODY_BYTES, "a body over the limit was accepted"),
        Err(bad) => assert!(!bad.0.trim().is_empty(), "a refusal without a reason"),
    }
}

/// Runs `data` through the dispatcher's pure parts; panics when an invariant breaks.
pub fn dispatch(data: &[u8]) {
    parse(data);
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match classify(event) {
        Trigger::Api(request) => {
            let _ = api::route(&request);
            match api::body_bytes(&request) {
                Ok(body) => parse(&body),
                Err(bad) => assert!(!bad.0.is_empty()),
            }
        }
        Trigger::Sqs(batch) => {
            for record in &batch.records {
                if let Some(body) = &record.body {
                    parse(body.as_bytes());
                }
            }
        }
        Trigger::Unsupported(what) => assert!(!what.is_empty()),
        Trigger::Schedule(_) => {}
    }
}
