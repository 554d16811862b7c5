//! What a Leaf alert means for a grower. A signed `credentialsUnauthenticated` alert about
//! Stara credentials queues a forced repair at once, instead of waiting for the next sweep;
//! the same rules as the sweep apply: a disconnected grower and a rejected login are left alone.

use serde::Deserialize;

use super::error::ConnectorError;
use super::model::ConnectRequest;
use super::ports::{GrowerLookup, RepairQueue};

/// The message Leaf posts when a webhook is registered.
pub(crate) const CONFIRMATION: &str = "confirmation of webhook upon registration";
/// Why a repair was queued, in the repair message.
pub(crate) const ALERT_REASON: &str = "alert_credentials_unauthenticated";

/// The fields of an alert we use; Leaf calls its payloads representative, so any other field
/// is ignored.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) credential_id: Option<String>,
    pub(crate) message: Option<String>,
}

/// What an alert led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AlertOutcome {
    /// Leaf's registration check.
    Confirmation,
    /// A repair of this grower is queued.
    Queued(uuid::Uuid),
    /// The grower is disconnected or its current login was rejected: nothing queued.
    LeftAlone(uuid::Uuid, &'static str),
    /// No grower holds these credentials (replaced since, or not ours).
    UnknownCredentials(String),
    /// The grower must grant a permission at Stara: a password cannot fix it.
    LimitedPermission(Option<String>),
    /// An event this product does not act on.
    Ignored(String),
}

/// Acts on one alert whose signature was checked. `alert_id` makes the repair's deduplication
/// id, so the same alert delivered twice queues one repair.
pub(crate) async fn act_on(
    alert: &Alert,
    alert_id: &str,
    growers: &dyn GrowerLookup,
    repairs: &dyn RepairQueue,
) -> Result<AlertOutcome, ConnectorError> {
    if alert.message.as_deref() == Some(CONFIRMATION) && alert.kind.is_none() {
        return Ok(AlertOutcome::Confirmation);
    }
    let stara = alert
        .provider
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("stara"));
    match alert.kind.as_deref() {
        Some("credentialsUnauthenticated") if stara => {}
        Some("credentialsLimitedPermission") if stara => {
            return Ok(AlertOutcome::LimitedPermission(alert.credential_id.clone()));
        }
        other => return Ok(AlertOutcome::Ignored(other.unwrap_or("(no type)").to_owned())),
    }
    let Some(credential_id) = alert.credential_id.as_deref().filter(|id| !id.is_empty()) else {
        return Ok(AlertOutcome::UnknownCredentials(String::new()));
    };
    let Some(grower) = growers.by_credentials(credential_id).await? else {
        return Ok(AlertOutcome::UnknownCredentials(credential_id.to_owned()));
    };
    if grower.state.disconnected {
        return Ok(AlertOutcome::LeftAlone(grower.id, "disconnected"));
    }
    if grower.state.login_rejected() {
        return Ok(AlertOutcome::LeftAlone(grower.id, "login_rejected"));
    }
    let repair = ConnectRequest {
        leaf_user_id: grower.id,
        force: true,
        reason: Some(ALERT_REASON.into()),
    };
    match repairs.enqueue(alert_id, std::slice::from_ref(&repair)).await? {
        1 => Ok(AlertOutcome::Queued(grower.id)),
        _ => Err(ConnectorError::Configuration(
            "the connect queue refused the repair request".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::model::GrowerState;
    use crate::domain::ports::ListedGrower;
    use crate::testing::{FakeDirectory, FakeRepairQueue};

    fn alert(kind: &str, credential_id: &str) -> Alert {
        Alert {
            kind: Some(kind.into()),
            provider: Some("Stara".into()),
            credential_id: Some(credential_id.into()),
            message: Some("credentials are no longer valid".into()),
        }
    }

    fn directory(state: GrowerState) -> (uuid::Uuid, FakeDirectory) {
        let user = uuid::Uuid::new_v4();
        let mut directory = FakeDirectory::of(vec![user]);
        directory
            .credentials
            .insert("cred-1".into(), ListedGrower { id: user, state });
        (user, directory)
    }

    #[tokio::test]
    async fn an_unauthenticated_stara_credential_queues_a_forced_repair() {
        let (user, growers) = directory(GrowerState::default());
        let queue = Arc::new(FakeRepairQueue::default());
        let outcome = act_on(
            &alert("credentialsUnauthenticated", "cred-1"),
            "alert-1",
            &growers,
            &*queue,
        )
        .await;
        assert_eq!(outcome.unwrap(), AlertOutcome::Queued(user));
        let sent = queue.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "alert-1");
        assert_eq!(
            (sent[0].1.force, sent[0].1.reason.as_deref()),
            (true, Some(ALERT_REASON))
        );
    }

    #[tokio::test]
    async fn what_the_sweep_leaves_alone_an_alert_leaves_alone() {
        let queue = FakeRepairQueue::default();
        let disconnected = GrowerState {
            disconnected: true,
            ..GrowerState::default()
        };
        let rejected = GrowerState {
            rejected_version: Some("v1".into()),
            current_version: Some("v1".into()),
            ..GrowerState::default()
        };
        for (state, why) in [(disconnected, "disconnected"), (rejected, "login_rejected")] {
            let (user, growers) = directory(state);
            let outcome = act_on(
                &alert("credentialsUnauthenticated", "cred-1"),
                "a",
                &growers,
                &queue,
            )
            .await;
            assert_eq!(outcome.unwrap(), AlertOutcome::LeftAlone(user, why));
        }
        assert!(queue.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn other_alerts_queue_nothing() {
        let (_, growers) = directory(GrowerState::default());
        let queue = FakeRepairQueue::default();
        let confirmation = Alert {
            message: Some(CONFIRMATION.into()),
            ..Alert::default()
        };
        let cases = [
            (confirmation, AlertOutcome::Confirmation),
            (
                alert("credentialsUnauthenticated", "cred-9"),
                AlertOutcome::UnknownCredentials("cred-9".into()),
            ),
            (
                alert("credentialsLimitedPermission", "cred-1"),
                AlertOutcome::LimitedPermission(Some("cred-1".into())),
            ),
            (
                alert("fieldCreated", "cred-1"),
                AlertOutcome::Ignored("fieldCreated".into()),
            ),
            (
                Alert {
                    provider: Some("JohnDeere".into()),
                    ..alert("credentialsUnauthenticated", "cred-1")
                },
                AlertOutcome::Ignored("credentialsUnauthenticated".into()),
            ),
        ];
        for (alert, want) in cases {
            assert_eq!(act_on(&alert, "a", &growers, &queue).await.unwrap(), want);
        }
        assert!(queue.sent.lock().unwrap().is_empty());
    }
}
