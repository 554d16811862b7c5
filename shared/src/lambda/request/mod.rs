//! Parsing what callers send: the JSON body of `POST /connections` and of a queue message.
//!
//! Messages are fixed texts that name fields, never quote values: a caller who pastes a password
//! into the wrong field must not see it in a log line.

use uuid::Uuid;

use crate::domain::model::{self, ConnectRequest};

/// Largest body accepted, API or queue.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

/// Why a body was refused; the text is safe to return and to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadRequest(pub(crate) String);

/// Parses `{"leafUserId": "<uuid>", "force": <bool, optional>, "reason": <string, optional>}`.
/// `reason` is what verify writes into repair messages; any other field is refused.
pub(crate) fn parse_connect_body(body: &[u8]) -> Result<ConnectRequest, BadRequest> {
    let bad = |m: &str| BadRequest(m.to_owned());
    if body.len() > MAX_BODY_BYTES {
        return Err(BadRequest(format!(
            "the body is larger than {} KiB",
            MAX_BODY_BYTES / 1024
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the body is empty: expected {\"leafUserId\": \"<uuid>\"}"));
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("the body is not valid JSON"))?;
    let object = json
        .as_object()
        .ok_or_else(|| bad("the body must be a JSON object"))?;
    if let Some(unknown) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "leafUserId" | "force" | "reason"))
    {
        return Err(BadRequest(format!(
            "unknown field {}: expected leafUserId, force",
            field_name_for_humans(unknown)
        )));
    }
    let leaf_user_id = match object.get("leafUserId") {
        None | Some(serde_json::Value::Null) => return Err(bad("`leafUserId` is required")),
        Some(serde_json::Value::String(id)) => parse_leaf_user_id(id)?,
        Some(_) => return Err(bad("`leafUserId` must be a string")),
    };
    let force = match object.get("force") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(force)) => *force,
        Some(_) => return Err(bad("`force` must be true or false")),
    };
    let reason = match object.get("reason") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(reason)) => Some(reason.clone()),
        Some(_) => return Err(bad("`reason` must be a string")),
    };
    Ok(ConnectRequest {
        leaf_user_id,
        force,
        reason,
    })
}

/// A field name fit to repeat in a message or a log line: a short identifier is quoted (it
/// helps with typos such as `Force`); anything else could be pasted data, and is not.
pub(crate) fn field_name_for_humans(name: &str) -> String {
    let identifier = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if identifier {
        format!("`{name}`")
    } else {
        "(a name that is not a short identifier)".to_owned()
    }
}

/// A Leaf user id: a UUID in its hyphenated form.
pub(crate) fn parse_leaf_user_id(text: &str) -> Result<Uuid, BadRequest> {
    model::parse_leaf_user_id(text).ok_or_else(|| {
        BadRequest("`leafUserId` must be a UUID such as 1b3c5d7e-0000-4000-8000-000000000000".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8c2f7e1a-4b3d-4e5f-9a6b-7c8d9e0f1a2b";

    #[test]
    fn accepts_the_documented_shapes() {
        let r = parse_connect_body(format!(r#"{{"leafUserId":"{ID}"}}"#).as_bytes()).unwrap();
        assert_eq!(r.leaf_user_id.to_string(), ID);
        assert!(!r.force);
        let r = parse_connect_body(
            format!(r#"{{"leafUserId":"{ID}","force":true,"reason":"INVALID"}}"#).as_bytes(),
        )
        .unwrap();
        assert!(r.force);
        let upper = ID.to_uppercase();
        let r = parse_connect_body(format!(r#"{{"leafUserId":"{upper}","force":null}}"#).as_bytes()).unwrap();
        assert_eq!(r.leaf_user_id.to_string(), ID, "ids are normalised to lower case");
    }

    #[test]
    fn refuses_every_bad_input_with_a_reason() {
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "empty"),
            ("not json".into(), "not valid JSON"),
            ("[1,2]".into(), "JSON object"),
            ("{}".into(), "required"),
            (r#"{"leafUserId":null}"#.into(), "required"),
            (r#"{"leafUserId":42}"#.into(), "must be a string"),
            (r#"{"leafUserId":"not-a-uuid"}"#.into(), "must be a UUID"),
            (
                r#"{"leafUserId":"8c2f7e1a4b3d4e5f9a6b7c8d9e0f1a2b"}"#.into(),
                "must be a UUID",
            ),
            (
                format!(r#"{{"leafUserId":"{ID}","force":"yes"}}"#),
                "true or false",
            ),
            (
                format!(r#"{{"leafUserId":"{ID}","reason":5}}"#),
                "must be a string",
            ),
            (
                format!(r#"{{"leafUserId":"{ID}","password":"hunter2"}}"#),
                "unknown field `password`",
            ),
            (
                format!(
                    r#"{{"leafUserId":"{ID}","pad":"{}"}}"#,
                    "x".repeat(MAX_BODY_BYTES)
                ),
                "larger than 16 KiB",
            ),
            (
                format!(r#"{{"leafUserId":"{ID}","hunter2 pasted here!":1}}"#),
                "not a short identifier",
            ),
        ];
        for (body, expected) in cases {
            let err = parse_connect_body(body.as_bytes()).unwrap_err();
            assert!(err.0.contains(expected), "{body:.60}: got {err}");
            assert!(!err.0.contains("hunter2"));
        }
    }

    #[test]
    fn reads_back_what_the_repair_queue_writes() {
        let id = Uuid::new_v4();
        for request in [
            ConnectRequest {
                leaf_user_id: id,
                force: true,
                reason: Some("event_401".into()),
            },
            ConnectRequest {
                leaf_user_id: id,
                force: false,
                reason: None,
            },
        ] {
            let body = serde_json::to_vec(&request).unwrap();
            assert_eq!(parse_connect_body(&body), Ok(request));
        }
    }
}

#[cfg(test)]
mod properties;
