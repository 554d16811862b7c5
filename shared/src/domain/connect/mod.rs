//! The connect workflow: link a grower's Stara account to a Leaf user, idempotently, and
//! without undoing what people did.
//!
//! Order matters. We look at Leaf first, so a repeat costs one GET and nothing at Stara. We get
//! fresh Stara tokens *before* deleting anything, and delete only when a POST still fits in the
//! deadline, so a wrong password, a Stara outage or a slow day never leaves the grower with less
//! than they had. A repair (a request with a `reason`) respects a disconnect and a rejected login;
//! only an explicit request clears them (docs/HEALTH.md).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use super::health::{self, Health};
use super::model::{ConnectRequest, Created, GrowerState, LeafCredentials, Mark, StaraLogin};
use super::ports::{GrowerLogins, GrowerStates, LeafApi, StaraApi};
use super::time::{Deadline, record_upstream, within_deadline};

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
    /// Leaf is still checking the credentials it holds; nothing was changed.
    Pending,
    /// A repair for a grower an operator disconnected: nothing was changed.
    SkippedDisconnected,
    /// A repair for a grower whose current login Stara rejected: nothing was tried.
    SkippedLoginRejected,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Reconnected => "reconnected",
            Outcome::AlreadyConnected => "already_connected",
            Outcome::Pending => "pending",
            Outcome::SkippedDisconnected => "skipped_disconnected",
            Outcome::SkippedLoginRejected => "skipped_login_rejected",
        }
    }

    /// Whether Leaf now holds credentials this connect attached.
    pub(crate) fn attached(self) -> bool {
        matches!(self, Outcome::Connected | Outcome::Reconnected)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnectReport {
    pub(crate) outcome: Outcome,
    /// What Leaf holds now; `None` when the request was skipped without asking.
    pub(crate) credentials: Option<LeafCredentials>,
    /// The status of the credentials that were replaced, if any.
    pub(crate) replaced_status: Option<String>,
}

impl ConnectReport {
    fn kept(outcome: Outcome, credentials: Option<LeafCredentials>) -> Self {
        Self {
            outcome,
            credentials,
            replaced_status: None,
        }
    }
}

/// What a disconnect did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disconnected {
    Removed,
    /// The user exists but had no Stara credentials.
    NothingToRemove,
}

/// Kept free after the DELETE beyond one POST attempt's timeout: the POST's GET-before-retry
/// and the answer.
const REPLACE_MARGIN: Duration = Duration::from_secs(1);

pub(crate) struct Connector {
    logins: Arc<dyn GrowerLogins>,
    states: Arc<dyn GrowerStates>,
    stara: Arc<dyn StaraApi>,
    leaf: Arc<dyn LeafApi>,
    /// What must be left of the deadline before credentials are deleted: a POST attempt's
    /// timeout plus a margin.
    replace_budget: Duration,
}

impl Connector {
    pub(crate) fn new(
        logins: Arc<dyn GrowerLogins>,
        states: Arc<dyn GrowerStates>,
        stara: Arc<dyn StaraApi>,
        leaf: Arc<dyn LeafApi>,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            logins,
            states,
            stara,
            leaf,
            replace_budget: attempt_timeout + REPLACE_MARGIN,
        }
    }

    pub(crate) async fn connect(
        &self,
        request: &ConnectRequest,
        deadline: &Deadline,
    ) -> Result<ConnectReport, ConnectorError> {
        let user = &request.leaf_user_id;
        let repair = request.reason.is_some();
        // Every read at once: what Leaf holds, what people did, and the grower's login. The login
        // is read ahead (cached, so usually no call): a repeat or a skipped repair never uses it.
        // Leaf's GET is sent first: it is the longest wait, and the store's requests are signed
        // while it is on its way.
        let started = Instant::now();
        let (held, (state, login, store_wait)) = tokio::join!(
            biased;
            timed(self.leaf.get_credentials(user, deadline)),
            async {
                let (state, login) = tokio::join!(
                    within_deadline(deadline, self.states.state(user)),
                    within_deadline(deadline, self.logins.grower_login(user)),
                );
                (state, login, started.elapsed())
            },
        );
        let (held, leaf_wait) = held;
        // The store's reads run beside Leaf's GET; only a read that outlasts it adds a wait.
        record_upstream(store_wait.saturating_sub(leaf_wait));
        let state = state?.unwrap_or_default();
        if repair && state.disconnected {
            return Ok(ConnectReport::kept(Outcome::SkippedDisconnected, None));
        }
        if repair && state.login_rejected() {
            return Ok(ConnectReport::kept(Outcome::SkippedLoginRejected, None));
        }
        if !repair && state.is_marked() {
            // A person asked for this connect: their earlier disconnect or rejection no longer holds.
            self.states.mark(user, Mark::Cleared).await;
        }
        let held = held?;
        match &held {
            Some(held) if !request.force => match health::status_health(&held.status) {
                Health::Healthy => {
                    self.record_attached(user, &state, held).await;
                    return Ok(ConnectReport::kept(Outcome::AlreadyConnected, Some(held.clone())));
                }
                // Verify leaves these alone too: Leaf has not decided yet (docs/HEALTH.md).
                Health::Unhealthy => {}
                _ => return Ok(ConnectReport::kept(Outcome::Pending, Some(held.clone()))),
            },
            _ => {}
        }
        // Leaf holds nothing: is there such a user at all? Asked while Stara issues the tokens (one
        // round trip fewer); an unknown user ends the connect there, whatever Stara answers.
        let lookup = async {
            if held.is_none() && !self.leaf.user_exists(user, deadline).await? {
                return Err(ConnectorError::LeafUserNotFound);
            }
            Ok(())
        };
        let login = match self.current_login(user, &state, login, deadline).await {
            Ok(login) => login,
            // An unknown user is the first thing to say, as before the login was read ahead.
            Err(e) => return lookup.await.and(Err(e)),
        };
        let issue = async { Ok::<_, ConnectorError>(self.stara.issue_tokens(&login, deadline).await) };
        let ((), issued) = futures_util::future::try_join(lookup, issue).await?;
        let tokens = match issued {
            Ok(tokens) => tokens,
            Err(e @ ConnectorError::StaraLoginRejected { .. }) => {
                // Tried once per version: the next try waits for a new version of the secret.
                self.logins.forget(user);
                if let Some(version) = login.version {
                    self.states.mark(user, Mark::LoginRejected { version }).await;
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if repair && state.rejected_version.is_some() {
            // A newer version of the login worked: the rejection no longer holds.
            self.states.mark(user, Mark::Cleared).await;
        }

        let replaced_status = match held {
            Some(old) => {
                if deadline.remaining() < self.replace_budget {
                    return Err(ConnectorError::ReplacementDeferred);
                }
                self.leaf.delete_credentials(user, deadline).await?;
                Some(old.status)
            }
            None => None,
        };
        let created = self.leaf.create_credentials(user, &tokens, deadline).await;
        let created = match (created, &replaced_status) {
            (Ok(created), _) => created,
            (Err(e), Some(_)) => return Err(ConnectorError::ReplacementPending(Box::new(e))),
            (Err(e), None) => return Err(e),
        };
        let (outcome, credentials) = match created {
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
                let operation = "POST /users/{id}/stara-credentials";
                return Err(
                    UpstreamError::new(Service::Leaf, operation, UpstreamKind::BadGateway, detail).into(),
                );
            }
        };
        self.record_attached(user, &state, &credentials).await;
        Ok(ConnectReport {
            outcome,
            credentials: Some(credentials),
            replaced_status,
        })
    }

    /// Keeps the way from a Leaf alert (which names only the credentials) back to the grower.
    async fn record_attached(&self, user: &Uuid, state: &GrowerState, credentials: &LeafCredentials) {
        if state.credentials_id.as_deref() != Some(credentials.id.as_str()) {
            self.states
                .mark(
                    user,
                    Mark::Attached {
                        credentials_id: credentials.id.clone(),
                    },
                )
                .await;
        }
    }

    /// The grower's login (`read`, read ahead), as of the secret's current version when that is
    /// known: a copy read before the operator stored a new version is dropped and read again.
    async fn current_login(
        &self,
        user: &Uuid,
        state: &GrowerState,
        read: Result<StaraLogin, ConnectorError>,
        deadline: &Deadline,
    ) -> Result<StaraLogin, ConnectorError> {
        let login = read?;
        let stale = state.current_version.is_some()
            && login.version.is_some()
            && login.version != state.current_version;
        if !stale {
            return Ok(login);
        }
        self.logins.forget(user);
        let (login, waited) = timed(within_deadline(deadline, self.logins.grower_login(user))).await;
        record_upstream(waited);
        login
    }

    /// Removes the grower's credentials at Leaf and marks the grower disconnected, so that no
    /// sweep, alert or late repair connects them again; only an explicit connect does.
    pub(crate) async fn disconnect(
        &self,
        user: &Uuid,
        deadline: &Deadline,
    ) -> Result<Disconnected, ConnectorError> {
        let outcome = if self.leaf.delete_credentials(user, deadline).await? {
            Disconnected::Removed
        } else if self.leaf.user_exists(user, deadline).await? {
            Disconnected::NothingToRemove
        } else {
            return Err(ConnectorError::LeafUserNotFound);
        };
        self.states.mark(user, Mark::Disconnected).await;
        Ok(outcome)
    }
}

/// The output of `work`, and how long it took.
async fn timed<F: Future>(work: F) -> (F::Output, Duration) {
    let started = Instant::now();
    let output = work.await;
    (output, started.elapsed())
}

#[cfg(test)]
mod round_trips;
#[cfg(test)]
mod tests;
