//! The connect workflow: link a grower's Stara account to a Leaf user, idempotently.
//!
//! Order matters. We look at Leaf first, so a repeat costs one GET and nothing at Stara. We get
//! fresh Stara tokens *before* deleting anything, so a wrong password or a Stara outage never
//! leaves the grower with less than they had.

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use super::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use super::health;
use super::model::{ConnectRequest, Created, LeafCredentials};
use super::ports::{GrowerLogins, LeafApi, StaraApi};
use super::time::{Deadline, within_deadline};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// Leaf had no credentials; it has them now.
    Connected,
    /// Leaf had credentials (not working, or `force`); they were replaced.
    Reconnected,
    /// Leaf already had working credentials; nothing was changed and Stara was not called.
    AlreadyConnected,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Reconnected => "reconnected",
            Outcome::AlreadyConnected => "already_connected",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnectReport {
    pub(crate) outcome: Outcome,
    pub(crate) credentials: LeafCredentials,
    /// The status of the credentials that were replaced, if any.
    pub(crate) replaced_status: Option<String>,
}

/// What a disconnect did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disconnected {
    Removed,
    /// The user exists but had no Stara credentials.
    NothingToRemove,
}

pub(crate) struct Connector {
    logins: Arc<dyn GrowerLogins>,
    stara: Arc<dyn StaraApi>,
    leaf: Arc<dyn LeafApi>,
}

impl Connector {
    pub(crate) fn new(
        logins: Arc<dyn GrowerLogins>,
        stara: Arc<dyn StaraApi>,
        leaf: Arc<dyn LeafApi>,
    ) -> Self {
        Self { logins, stara, leaf }
    }

    pub(crate) async fn connect(
        &self,
        request: &ConnectRequest,
        deadline: &Deadline,
    ) -> Result<ConnectReport, ConnectorError> {
        let user = &request.leaf_user_id;
        let held = self.leaf.get_credentials(user, deadline).await?;
        if let Some(held) = &held {
            if health::is_working(&held.status) && !request.force {
                return Ok(ConnectReport {
                    outcome: Outcome::AlreadyConnected,
                    credentials: held.clone(),
                    replaced_status: None,
                });
            }
        } else if !self.leaf.user_exists(user, deadline).await? {
            return Err(ConnectorError::LeafUserNotFound);
        }

        let login = within_deadline(deadline, self.logins.grower_login(user)).await?;
        let tokens = self.stara.issue_tokens(&login, deadline).await?;

        let replaced_status = match held {
            Some(old) => {
                self.leaf.delete_credentials(user, deadline).await?;
                Some(old.status)
            }
            None => None,
        };
        let (outcome, credentials) = match self.leaf.create_credentials(user, &tokens, deadline).await? {
            Created::Stored(c) if replaced_status.is_some() => (Outcome::Reconnected, c),
            Created::Stored(c) => (Outcome::Connected, c),
            // Another invocation (a redelivered message, say) attached them first.
            Created::AlreadyPresent(c) if health::is_working(&c.status) => (Outcome::AlreadyConnected, c),
            // Someone else attached credentials that do not work: a later try replaces them.
            Created::AlreadyPresent(c) => {
                let detail = format!(
                    "a concurrent writer attached credentials with status {}",
                    c.status
                );
                return Err(UpstreamError::new(
                    Service::Leaf,
                    "POST /users/{id}/stara-credentials",
                    UpstreamKind::BadGateway,
                    detail,
                )
                .into());
            }
        };
        Ok(ConnectReport {
            outcome,
            credentials,
            replaced_status,
        })
    }

    pub(crate) async fn disconnect(
        &self,
        user: &Uuid,
        deadline: &Deadline,
    ) -> Result<Disconnected, ConnectorError> {
        if self.leaf.delete_credentials(user, deadline).await? {
            return Ok(Disconnected::Removed);
        }
        if self.leaf.user_exists(user, deadline).await? {
            Ok(Disconnected::NothingToRemove)
        } else {
            Err(ConnectorError::LeafUserNotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{FakeLeaf, FakeLogins, FakeStara};

    struct World {
        logins: Arc<FakeLogins>,
        stara: Arc<FakeStara>,
        leaf: Arc<FakeLeaf>,
        connector: Connector,
        user: Uuid,
    }

    /// A Leaf user with a stored Stara login and no credentials yet.
    fn world() -> World {
        let (logins, stara, leaf) = (
            Arc::new(FakeLogins::default()),
            Arc::new(FakeStara::default()),
            Arc::new(FakeLeaf::default()),
        );
        let user = Uuid::new_v4();
        logins.logins.lock().unwrap().insert(user, "pw".into());
        leaf.users.lock().unwrap().insert(user);
        let connector = Connector::new(logins.clone(), stara.clone(), leaf.clone());
        World {
            logins,
            stara,
            leaf,
            connector,
            user,
        }
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    async fn connect(w: &World, force: bool) -> Result<ConnectReport, ConnectorError> {
        w.connector
            .connect(
                &ConnectRequest {
                    leaf_user_id: w.user,
                    force,
                    reason: None,
                },
                &deadline(),
            )
            .await
    }

    fn calls(w: &World) -> (usize, usize, usize) {
        (
            *w.stara.calls.lock().unwrap(),
            *w.leaf.deletes.lock().unwrap(),
            *w.leaf.posts.lock().unwrap(),
        )
    }

    #[tokio::test]
    async fn a_new_user_gets_connected() {
        let w = world();
        let report = connect(&w, false).await.unwrap();
        assert_eq!(report.outcome, Outcome::Connected);
        assert_eq!(report.credentials.status, "OK");
        assert_eq!(calls(&w), (1, 0, 1));
    }

    #[tokio::test]
    async fn a_repeat_changes_nothing_and_skips_stara() {
        let w = world();
        connect(&w, false).await.unwrap();
        let report = connect(&w, false).await.unwrap();
        assert_eq!(report.outcome, Outcome::AlreadyConnected);
        assert_eq!(calls(&w), (1, 0, 1), "no second Stara call, no second POST");
    }

    #[tokio::test]
    async fn force_replaces_working_credentials() {
        let w = world();
        w.leaf.hold(w.user, "OK");
        let report = connect(&w, true).await.unwrap();
        assert_eq!(report.outcome, Outcome::Reconnected);
        assert_eq!(report.replaced_status.as_deref(), Some("OK"));
        assert_eq!(calls(&w), (1, 1, 1));
    }

    #[tokio::test]
    async fn broken_credentials_are_replaced_without_force() {
        let w = world();
        w.leaf.hold(w.user, "INVALID");
        let report = connect(&w, false).await.unwrap();
        assert_eq!(report.outcome, Outcome::Reconnected);
        assert_eq!(report.replaced_status.as_deref(), Some("INVALID"));
        assert_eq!(report.credentials.id, format!("new-{}", w.user));
    }

    #[tokio::test]
    async fn an_unknown_leaf_user_is_reported_before_touching_stara() {
        let w = world();
        w.leaf.users.lock().unwrap().clear();
        assert_eq!(
            connect(&w, false).await.unwrap_err(),
            ConnectorError::LeafUserNotFound
        );
        assert_eq!(calls(&w), (0, 0, 0));
    }

    #[tokio::test]
    async fn a_missing_login_leaves_the_old_credentials_alone() {
        let w = world();
        w.logins.logins.lock().unwrap().clear();
        w.leaf.hold(w.user, "INVALID");
        let err = connect(&w, false).await.unwrap_err();
        assert_eq!(err.code(), "grower_login_not_found");
        assert_eq!(calls(&w), (0, 0, 0));
        assert!(w.leaf.held.lock().unwrap().contains_key(&w.user));
    }

    #[tokio::test]
    async fn a_rejected_password_deletes_nothing() {
        let w = world();
        w.leaf.hold(w.user, "INVALID");
        *w.stara.fail.lock().unwrap() = Some(ConnectorError::StaraLoginRejected { status: 401 });
        let err = connect(&w, true).await.unwrap_err();
        assert_eq!(err.http_status(), 422);
        assert_eq!(calls(&w), (1, 0, 0));
    }

    #[tokio::test]
    async fn losing_a_race_to_another_writer_is_already_connected() {
        let w = world();
        *w.leaf.race_on_post.lock().unwrap() = Some("OK");
        assert_eq!(
            connect(&w, false).await.unwrap().outcome,
            Outcome::AlreadyConnected
        );
    }

    #[tokio::test]
    async fn losing_a_race_to_broken_credentials_is_a_retryable_error() {
        let w = world();
        *w.leaf.race_on_post.lock().unwrap() = Some("INVALID");
        let err = connect(&w, false).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(err.http_status(), 502);
    }

    #[tokio::test]
    async fn upstream_failures_pass_through_typed() {
        let w = world();
        w.leaf.fail.lock().unwrap().insert(w.user);
        let err = connect(&w, false).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.http_status(), 503);
    }

    #[tokio::test]
    async fn disconnect_tells_removed_from_nothing_and_unknown() {
        let w = world();
        w.leaf.hold(w.user, "OK");
        assert_eq!(
            w.connector.disconnect(&w.user, &deadline()).await.unwrap(),
            Disconnected::Removed
        );
        assert_eq!(
            w.connector.disconnect(&w.user, &deadline()).await.unwrap(),
            Disconnected::NothingToRemove
        );
        let stranger = Uuid::new_v4();
        assert_eq!(
            w.connector.disconnect(&stranger, &deadline()).await.unwrap_err(),
            ConnectorError::LeafUserNotFound
        );
    }
}
