//! The connect workflow: link a grower's Stara account to a Leaf user, idempotently.
//!
//! Order matters. We look at Leaf first, so a repeat costs one GET and nothing at Stara. We get
//! fresh Stara tokens *before* deleting anything, so a wrong password or a Stara outage never
//! leaves the grower with less than they had.

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use crate::health;
use crate::http::Deadline;
use crate::leaf::{Created, LeafApi, LeafCredentials};
use crate::secrets::GrowerLogins;
use crate::stara::StaraApi;

/// What a caller asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub leaf_user_id: Uuid,
    /// Replace working credentials too.
    pub force: bool,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Leaf had no credentials; it has them now.
    Connected,
    /// Leaf had credentials (not working, or `force`); they were replaced.
    Reconnected,
    /// Leaf already had working credentials; nothing was changed and Stara was not called.
    AlreadyConnected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Reconnected => "reconnected",
            Outcome::AlreadyConnected => "already_connected",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectReport {
    pub outcome: Outcome,
    pub credentials: LeafCredentials,
    /// The status of the credentials that were replaced, if any.
    pub replaced_status: Option<String>,
}

/// What a disconnect did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnected {
    Removed,
    /// The user exists but had no Stara credentials.
    NothingToRemove,
}

pub struct Connector {
    logins: Arc<dyn GrowerLogins>,
    stara: Arc<dyn StaraApi>,
    leaf: Arc<dyn LeafApi>,
}

impl Connector {
    pub fn new(logins: Arc<dyn GrowerLogins>, stara: Arc<dyn StaraApi>, leaf: Arc<dyn LeafApi>) -> Self {
        Self { logins, stara, leaf }
    }

    pub async fn connect(
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

        let login = crate::secrets::within(deadline, self.logins.grower_login(user)).await?;
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

    pub async fn disconnect(&self, user: &Uuid, deadline: &Deadline) -> Result<Disconnected, ConnectorError> {
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
pub(crate) mod fakes {
    //! In-memory stand-ins for the three capabilities, counting their calls.

    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;

    use async_trait::async_trait;
    use secrecy::SecretString;

    use super::*;
    use crate::error::{Service, UpstreamError, UpstreamKind};
    use crate::leaf::CredentialEvent;
    use crate::secrets::StaraLogin;
    use crate::stara::StaraTokens;

    #[derive(Default)]
    pub struct FakeLogins {
        pub logins: Mutex<HashMap<Uuid, String>>,
    }

    #[async_trait]
    impl GrowerLogins for FakeLogins {
        async fn grower_login(&self, user: &Uuid) -> Result<StaraLogin, ConnectorError> {
            let password = self.logins.lock().unwrap().get(user).cloned();
            password
                .map(|p| StaraLogin {
                    login: format!("grower-{user}"),
                    password: SecretString::from(p),
                })
                .ok_or_else(|| ConnectorError::GrowerLoginNotFound {
                    secret_id: format!("prefix/{user}"),
                })
        }
    }

    #[derive(Default)]
    pub struct FakeStara {
        pub calls: Mutex<usize>,
        pub fail: Mutex<Option<ConnectorError>>,
    }

    #[async_trait]
    impl StaraApi for FakeStara {
        async fn issue_tokens(
            &self,
            login: &StaraLogin,
            _: &Deadline,
        ) -> Result<StaraTokens, ConnectorError> {
            *self.calls.lock().unwrap() += 1;
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(e);
            }
            let t = |kind: &str| SecretString::from(format!("{kind}-{}", login.login));
            Ok(StaraTokens {
                api_key: t("key"),
                access_token: t("at"),
                access_token_client: t("atc"),
                refresh_token: t("rt"),
            })
        }
    }

    #[derive(Default)]
    pub struct FakeLeaf {
        pub users: Mutex<HashSet<Uuid>>,
        pub held: Mutex<HashMap<Uuid, LeafCredentials>>,
        pub posts: Mutex<usize>,
        pub deletes: Mutex<usize>,
        /// Make the next POST answer 409 after another writer attached credentials with this status.
        pub race_on_post: Mutex<Option<&'static str>>,
        pub fail_get: Mutex<bool>,
        /// Every user `get_credentials` was asked about, in call order.
        pub gets: Mutex<Vec<Uuid>>,
    }

    impl FakeLeaf {
        pub fn hold(&self, user: Uuid, status: &str) {
            self.held.lock().unwrap().insert(
                user,
                LeafCredentials {
                    id: format!("old-{user}"),
                    status: status.into(),
                    created_time: None,
                },
            );
        }
    }

    #[async_trait]
    impl LeafApi for FakeLeaf {
        async fn get_credentials(
            &self,
            user: &Uuid,
            _: &Deadline,
        ) -> Result<Option<LeafCredentials>, ConnectorError> {
            self.gets.lock().unwrap().push(*user);
            if *self.fail_get.lock().unwrap() {
                return Err(
                    UpstreamError::new(Service::Leaf, "GET", UpstreamKind::Unavailable, "HTTP 503").into(),
                );
            }
            Ok(self.held.lock().unwrap().get(user).cloned())
        }
        async fn user_exists(&self, user: &Uuid, _: &Deadline) -> Result<bool, ConnectorError> {
            Ok(self.users.lock().unwrap().contains(user))
        }
        async fn create_credentials(
            &self,
            user: &Uuid,
            _: &StaraTokens,
            _: &Deadline,
        ) -> Result<Created, ConnectorError> {
            *self.posts.lock().unwrap() += 1;
            let fresh = LeafCredentials {
                id: format!("new-{user}"),
                status: "OK".into(),
                created_time: None,
            };
            if let Some(status) = self.race_on_post.lock().unwrap().take() {
                let theirs = LeafCredentials {
                    id: format!("theirs-{user}"),
                    status: status.into(),
                    created_time: None,
                };
                self.held.lock().unwrap().insert(*user, theirs.clone());
                return Ok(Created::AlreadyPresent(theirs));
            }
            self.held.lock().unwrap().insert(*user, fresh.clone());
            Ok(Created::Stored(fresh))
        }
        async fn delete_credentials(&self, user: &Uuid, _: &Deadline) -> Result<bool, ConnectorError> {
            *self.deletes.lock().unwrap() += 1;
            Ok(self.held.lock().unwrap().remove(user).is_some())
        }
        async fn events(
            &self,
            _: &Uuid,
            _: &Deadline,
        ) -> Result<Option<Vec<CredentialEvent>>, ConnectorError> {
            Ok(Some(vec![]))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::fakes::*;
    use super::*;

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
        *w.leaf.fail_get.lock().unwrap() = true;
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
