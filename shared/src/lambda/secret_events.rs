//! A grower's login was created or changed (Secrets Manager, through CloudTrail and an
//! EventBridge rule): connect the grower now instead of at the next sweep.
//!
//! The message has a `reason`, so connect treats it as a repair: it never overrides an
//! operator's disconnect, and it does try a login Stara rejected before (the version changed).
//! Calls on any other secret succeed and do nothing: the rule may be broader than our prefix.

use serde_json::{Value, json};

use super::failure::log_failure;
use super::trigger::{SECRET_CHANGES, SecretChange};
use crate::domain::error::ConnectorError;
use crate::domain::model::{ConnectRequest, parse_leaf_user_id};
use crate::domain::ports::RepairQueue;

/// Why connect is asked, in the message.
pub(crate) const LOGIN_CHANGED: &str = "login_changed";

/// The secret's name: an ARN ends in `:secret:<name>-<6 random characters>`.
fn secret_name(name_or_arn: &str) -> &str {
    match name_or_arn.split_once(":secret:") {
        Some((_, name)) if name.len() > 7 && name.as_bytes()[name.len() - 7] == b'-' => {
            &name[..name.len() - 7]
        }
        Some((_, name)) => name,
        None => name_or_arn,
    }
}

/// The grower a changed secret belongs to, if it is one of ours.
pub(crate) fn grower_of(change: &SecretChange, prefix: &str) -> Option<uuid::Uuid> {
    if !SECRET_CHANGES.contains(&change.event_name.as_str()) {
        return None;
    }
    let suffix = secret_name(change.secret.as_deref()?).strip_prefix(prefix)?;
    parse_leaf_user_id(suffix).filter(|id| id.to_string() == suffix)
}

/// Queues a connect for the grower whose login changed; a success that does nothing otherwise.
pub(crate) async fn handle(
    change: &SecretChange,
    prefix: &str,
    repairs: Option<&dyn RepairQueue>,
) -> Result<Value, ConnectorError> {
    let Some(user) = grower_of(change, prefix) else {
        tracing::debug!(
            event = change.event_name,
            "a secret call about no grower of ours: nothing to do"
        );
        return Ok(json!({"outcome": "ignored"}));
    };
    let Some(repairs) = repairs else {
        tracing::warn!(leafUserId = %user,
            "CONNECT_QUEUE_URL is not set: a changed login waits for the sweep");
        return Ok(json!({"outcome": "not_queued", "leafUserId": user}));
    };
    let request = ConnectRequest {
        leaf_user_id: user,
        force: false,
        reason: Some(LOGIN_CHANGED.into()),
    };
    // The event id makes the deduplication id: a redelivered event queues one connect.
    let run_id = format!(
        "secret-{}",
        change.event_id.as_deref().unwrap_or(&change.event_name)
    );
    match repairs.enqueue(&run_id, std::slice::from_ref(&request)).await {
        Ok(1) => {
            tracing::info!(leafUserId = %user, event = change.event_name, outcome = "connect_queued",
                "the grower's login changed: connect queued");
            Ok(json!({"outcome": "connect_queued", "leafUserId": user}))
        }
        Ok(_) => Err(ConnectorError::Configuration(
            "the connect queue refused the request".into(),
        )),
        Err(e) => {
            log_failure("login change not queued", "secret_event", &e, 0);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "stara-connect/growers/";

    fn change(event: &str, secret: &str) -> SecretChange {
        SecretChange {
            event_id: Some("e1".into()),
            event_name: event.into(),
            secret: Some(secret.into()),
        }
    }

    #[test]
    fn names_and_arns_lead_to_the_grower() {
        let id = uuid::Uuid::new_v4();
        let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{PREFIX}{id}-AbC123");
        assert_eq!(grower_of(&change("PutSecretValue", &arn), PREFIX), Some(id));
        assert_eq!(
            grower_of(&change("CreateSecret", &format!("{PREFIX}{id}")), PREFIX),
            Some(id)
        );
        assert_eq!(
            grower_of(&change("RestoreSecret", &format!("{PREFIX}{id}")), PREFIX),
            Some(id)
        );
        assert_eq!(
            grower_of(&change("DeleteSecret", &format!("{PREFIX}{id}")), PREFIX),
            None
        );
        assert_eq!(
            grower_of(&change("PutSecretValue", &format!("other/{id}")), PREFIX),
            None
        );
        let upper = id.to_string().to_uppercase();
        assert_eq!(
            grower_of(&change("PutSecretValue", &format!("{PREFIX}{upper}")), PREFIX),
            None
        );
    }

    #[tokio::test]
    async fn a_changed_login_queues_one_connect_with_a_reason() {
        let queue = crate::testing::FakeRepairQueue::default();
        let id = uuid::Uuid::new_v4();
        let answer = handle(
            &change("PutSecretValue", &format!("{PREFIX}{id}")),
            PREFIX,
            Some(&queue),
        )
        .await;
        assert_eq!(answer.unwrap()["outcome"], "connect_queued");
        let sent = queue.sent.lock().unwrap().clone();
        assert_eq!(sent[0].0, "secret-e1");
        assert_eq!(
            (sent[0].1.force, sent[0].1.reason.as_deref()),
            (false, Some(LOGIN_CHANGED))
        );
        let other = handle(&change("PutSecretValue", "leaf-owner"), PREFIX, Some(&queue)).await;
        assert_eq!(other.unwrap()["outcome"], "ignored");
    }
}
