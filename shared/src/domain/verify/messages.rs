//! The messages of a fanned-out verify run, on the verify queue (`VERIFY_QUEUE_URL`): a page of
//! growers to check, or where the listing goes on. Both carry the run's id, so every repair of
//! the run shares one deduplication scope however many invocations the run takes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::model::GrowerState;
use crate::domain::ports::ListedGrower;

/// The most growers one check message holds: one ListSecrets page.
pub(crate) const GROWERS_PER_MESSAGE: usize = 100;

/// One message on the verify queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum VerifyMessage {
    /// Growers to check, with the state the listing read for each.
    #[serde(rename_all = "camelCase")]
    Check {
        run_id: String,
        growers: Vec<CheckedGrower>,
    },
    /// The listing ran out of time: list on from `next_token`.
    #[serde(rename_all = "camelCase")]
    List { run_id: String, next_token: String },
}

impl VerifyMessage {
    pub(crate) fn run_id(&self) -> &str {
        match self {
            Self::Check { run_id, .. } | Self::List { run_id, .. } => run_id,
        }
    }
}

/// A grower in a check message: what the listing knew, so the check needs no read of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CheckedGrower {
    pub(crate) leaf_user_id: Uuid,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) disconnected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rejected_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) current_version: Option<String>,
}

impl From<&ListedGrower> for CheckedGrower {
    fn from(listed: &ListedGrower) -> Self {
        Self {
            leaf_user_id: listed.id,
            disconnected: listed.state.disconnected,
            rejected_version: listed.state.rejected_version.clone(),
            current_version: listed.state.current_version.clone(),
        }
    }
}

impl CheckedGrower {
    /// The grower's state as far as a check needs it (the credentials id is not carried).
    pub(crate) fn state(&self) -> GrowerState {
        GrowerState {
            disconnected: self.disconnected,
            rejected_version: self.rejected_version.clone(),
            current_version: self.current_version.clone(),
            credentials_id: None,
        }
    }
}

/// Why a message body is not a verify message; the text never quotes the body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a verify message: {0}")]
pub(crate) struct BadMessage(pub(crate) String);

/// Parses a message body, checking what serde cannot: a run id, a page's size, a token.
pub(crate) fn parse_verify_message(body: &str) -> Result<VerifyMessage, BadMessage> {
    let message: VerifyMessage = serde_json::from_str(body).map_err(|e| {
        // serde's messages can quote values; its category and position are enough.
        BadMessage(format!(
            "{:?} error at line {} column {} (expected {{\"type\":\"check\"|\"list\",\"runId\",..}})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if message.run_id().is_empty() || message.run_id().len() > 128 {
        return Err(BadMessage("`runId` must hold 1 to 128 characters".into()));
    }
    match &message {
        VerifyMessage::Check { growers, .. } if growers.len() > GROWERS_PER_MESSAGE => Err(BadMessage(
            format!("a check message holds at most {GROWERS_PER_MESSAGE} growers"),
        )),
        VerifyMessage::List { next_token, .. } if next_token.is_empty() => {
            Err(BadMessage("`nextToken` is empty".into()))
        }
        _ => Ok(message),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_round_trip_in_the_documented_shape() {
        let id = Uuid::new_v4();
        let check = VerifyMessage::Check {
            run_id: "run-1".into(),
            growers: vec![CheckedGrower {
                leaf_user_id: id,
                disconnected: false,
                rejected_version: None,
                current_version: Some("v1".into()),
            }],
        };
        let wire = serde_json::to_value(&check).unwrap();
        assert_eq!(
            wire,
            json!({"type": "check", "runId": "run-1",
                "growers": [{"leafUserId": id.to_string(), "currentVersion": "v1"}]})
        );
        assert_eq!(parse_verify_message(&wire.to_string()).unwrap(), check);
        let list = VerifyMessage::List {
            run_id: "run-1".into(),
            next_token: "abc".into(),
        };
        let wire = serde_json::to_string(&list).unwrap();
        assert_eq!(wire, r#"{"type":"list","runId":"run-1","nextToken":"abc"}"#);
        assert_eq!(parse_verify_message(&wire).unwrap(), list);
    }

    #[test]
    fn bad_bodies_are_refused_without_quoting_them() {
        let id = Uuid::new_v4();
        let too_many: Vec<_> = (0..101).map(|_| json!({"leafUserId": id})).collect();
        for body in [
            "".to_owned(),
            "secret-looking-text".to_owned(),
            json!({"type": "check", "runId": "r"}).to_string(),
            json!({"type": "check", "runId": "", "growers": []}).to_string(),
            json!({"type": "check", "runId": "r", "growers": too_many}).to_string(),
            json!({"type": "list", "runId": "r", "nextToken": ""}).to_string(),
            json!({"type": "purge", "runId": "r"}).to_string(),
            json!({"type": "check", "runId": "r", "growers": [{"leafUserId": "secret-looking-text"}]})
                .to_string(),
        ] {
            let err = parse_verify_message(&body).unwrap_err();
            assert!(!err.to_string().contains("secret-looking-text"), "{err}");
        }
    }
}
