//! The oracle for the connect request parser: what `parse_connect_body` must accept, written
//! without looking at its code paths, and the rule that refusals quote no value.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::model::ConnectRequest;
use crate::lambda::request::{self, MAX_BODY_BYTES};

/// Cases per property: 256 for the parsers, 64 for the handler (the whole workflow against the
/// fakes). `PROPTEST_CASES=<n>` runs every property `n` times instead, for a longer search.
pub(crate) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A hyphenated UUID in any letter case, read by hand (no `uuid` parser involved).
pub(crate) fn oracle_uuid(text: &str) -> Option<Uuid> {
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
pub(crate) fn oracle(body: &[u8]) -> Option<ConnectRequest> {
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
    let reason = match object.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) => Some(reason.clone()),
        Some(_) => return None,
    };
    Some(ConnectRequest {
        leaf_user_id,
        force,
        reason,
    })
}

/// Every string value (not key) and every key of a JSON document.
pub(crate) fn strings_of(value: &Value, values: &mut Vec<String>, keys: &mut Vec<String>) {
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
pub(crate) fn assert_quotes_no_value(text: &str, doc: &Value) -> Result<(), TestCaseError> {
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
pub(crate) fn check_parse(body: &[u8]) -> Result<(), TestCaseError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
