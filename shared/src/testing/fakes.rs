//! In-memory stand-ins for Stara, Leaf, the stored logins and the grower directory, counting
//! their calls. One set, used by every unit test (the queues' are in `queues.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::adapters::leaf_webhooks::{LeafWebhooks, NewWebhook, Registration, Webhook};
use crate::domain::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use crate::domain::model::{
    Created, CredentialEvent, GrowerState, LeafCredentials, Mark, StaraLogin, StaraTokens,
};
use crate::domain::ports::{
    GrowerDirectory, GrowerLogins, GrowerLookup, GrowerPage, GrowerStates, LeafApi, ListedGrower, StaraApi,
};
use crate::domain::time::Deadline;

/// Stored Stara logins: a password per grower, its version the password's length (`v<len>`).
#[derive(Default)]
pub(crate) struct FakeLogins {
    pub(crate) logins: Mutex<HashMap<Uuid, String>>,
    /// Every grower whose login was forgotten, in call order.
    pub(crate) forgotten: Mutex<Vec<Uuid>>,
}

#[async_trait]
impl GrowerLogins for FakeLogins {
    async fn grower_login(&self, user: &Uuid) -> Result<StaraLogin, ConnectorError> {
        let password = self.logins.lock().unwrap().get(user).cloned();
        password
            .map(|p| StaraLogin {
                login: format!("grower-{user}"),
                version: Some(format!("v{}", p.len())),
                password: SecretString::from(p),
            })
            .ok_or_else(|| ConnectorError::GrowerLoginNotFound {
                secret_id: format!("prefix/{user}"),
            })
    }

    fn forget(&self, user: &Uuid) {
        self.forgotten.lock().unwrap().push(*user);
    }
}

/// Growers' states as a map; every mark recorded, in call order.
#[derive(Default)]
pub(crate) struct FakeStates {
    pub(crate) states: Mutex<HashMap<Uuid, GrowerState>>,
    pub(crate) marks: Mutex<Vec<(Uuid, Mark)>>,
}

#[async_trait]
impl GrowerStates for FakeStates {
    async fn state(&self, user: &Uuid) -> Result<Option<GrowerState>, ConnectorError> {
        Ok(self.states.lock().unwrap().get(user).cloned())
    }

    async fn mark(&self, user: &Uuid, mark: Mark) {
        self.marks.lock().unwrap().push((*user, mark.clone()));
        let mut states = self.states.lock().unwrap();
        let state = states.entry(*user).or_default();
        match mark {
            Mark::Disconnected => state.disconnected = true,
            Mark::LoginRejected { version } => state.rejected_version = Some(version),
            Mark::Cleared => (state.disconnected, state.rejected_version) = (false, None),
            Mark::Attached { credentials_id } => state.credentials_id = Some(credentials_id),
        }
    }
}

/// Stara: issues tokens derived from the login, or fails as told.
#[derive(Default)]
pub(crate) struct FakeStara {
    pub(crate) calls: Mutex<usize>,
    pub(crate) fail: Mutex<Option<ConnectorError>>,
}

#[async_trait]
impl StaraApi for FakeStara {
    async fn issue_tokens(&self, login: &StaraLogin, _: &Deadline) -> Result<StaraTokens, ConnectorError> {
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

/// Leaf as maps: users, their credentials, their events; failures by user; an optional
/// latency per read, so tests on paused time can see what runs at the same time.
#[derive(Default)]
pub(crate) struct FakeLeaf {
    pub(crate) users: Mutex<HashSet<Uuid>>,
    pub(crate) held: Mutex<HashMap<Uuid, LeafCredentials>>,
    pub(crate) events: Mutex<HashMap<Uuid, Vec<CredentialEvent>>>,
    /// Users whose `get_credentials` fails with a 503.
    pub(crate) fail: Mutex<HashSet<Uuid>>,
    /// Leaf is down: every `get_credentials` fails with a 503.
    pub(crate) down: Mutex<bool>,
    /// Users whose `events` fails with a 503.
    pub(crate) fail_events: Mutex<HashSet<Uuid>>,
    /// Make the next POST answer 409 after another writer attached credentials with this status.
    pub(crate) race_on_post: Mutex<Option<&'static str>>,
    /// Make every POST fail with this error.
    pub(crate) fail_post: Mutex<Option<ConnectorError>>,
    pub(crate) posts: Mutex<usize>,
    pub(crate) deletes: Mutex<usize>,
    /// Every user `get_credentials` was asked about, in call order.
    pub(crate) gets: Mutex<Vec<Uuid>>,
    pub(crate) event_calls: AtomicUsize,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) most_in_flight: AtomicUsize,
    latency: Duration,
}

impl FakeLeaf {
    /// A Leaf whose reads (credentials, events) each take `latency`.
    pub(crate) fn with_latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    /// A new Leaf user, with credentials of this status or none.
    pub(crate) fn grower(&self, status: Option<&str>) -> Uuid {
        let user = Uuid::new_v4();
        self.users.lock().unwrap().insert(user);
        if let Some(status) = status {
            let credentials = LeafCredentials {
                id: format!("cred-{user}"),
                status: status.into(),
                created_time: Some("2026-01-01T00:00:00Z".into()),
            };
            self.held.lock().unwrap().insert(user, credentials);
        }
        user
    }

    /// Gives an existing user credentials of this status.
    pub(crate) fn hold(&self, user: Uuid, status: &str) {
        let credentials = LeafCredentials {
            id: format!("old-{user}"),
            status: status.into(),
            created_time: None,
        };
        self.held.lock().unwrap().insert(user, credentials);
    }

    async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }
}

fn unavailable(operation: &'static str) -> ConnectorError {
    UpstreamError::new(Service::Leaf, operation, UpstreamKind::Unavailable, "HTTP 503").into()
}

#[async_trait]
impl LeafApi for FakeLeaf {
    async fn get_credentials(
        &self,
        user: &Uuid,
        _: &Deadline,
    ) -> Result<Option<LeafCredentials>, ConnectorError> {
        self.gets.lock().unwrap().push(*user);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        self.wait().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if *self.down.lock().unwrap() || self.fail.lock().unwrap().contains(user) {
            return Err(unavailable("GET"));
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
        if let Some(e) = self.fail_post.lock().unwrap().clone() {
            return Err(e);
        }
        if let Some(status) = self.race_on_post.lock().unwrap().take() {
            let theirs = LeafCredentials {
                id: format!("theirs-{user}"),
                status: status.into(),
                created_time: None,
            };
            self.held.lock().unwrap().insert(*user, theirs.clone());
            return Ok(Created::AlreadyPresent(theirs));
        }
        let fresh = LeafCredentials {
            id: format!("new-{user}"),
            status: "OK".into(),
            created_time: None,
        };
        self.held.lock().unwrap().insert(*user, fresh.clone());
        Ok(Created::Stored(fresh))
    }

    async fn delete_credentials(&self, user: &Uuid, _: &Deadline) -> Result<bool, ConnectorError> {
        *self.deletes.lock().unwrap() += 1;
        Ok(self.held.lock().unwrap().remove(user).is_some())
    }

    async fn events(
        &self,
        user: &Uuid,
        _: &Deadline,
    ) -> Result<Option<Vec<CredentialEvent>>, ConnectorError> {
        self.event_calls.fetch_add(1, Ordering::SeqCst);
        self.wait().await;
        if self.fail_events.lock().unwrap().contains(user) {
            return Err(unavailable("GET events"));
        }
        Ok(Some(
            self.events.lock().unwrap().get(user).cloned().unwrap_or_default(),
        ))
    }
}

/// A grower list served in pages of three, each page with its own token; states by grower.
#[derive(Default)]
pub(crate) struct FakeDirectory {
    pub(crate) growers: Vec<Uuid>,
    pub(crate) states: HashMap<Uuid, GrowerState>,
    pub(crate) misnamed: Vec<String>,
    /// Growers by the Leaf credentials id recorded for them.
    pub(crate) credentials: HashMap<String, ListedGrower>,
}

impl FakeDirectory {
    /// These growers, all without marks.
    pub(crate) fn of(growers: Vec<Uuid>) -> Self {
        Self {
            growers,
            ..Self::default()
        }
    }
}

#[async_trait]
impl GrowerDirectory for FakeDirectory {
    async fn page(&self, token: Option<String>) -> Result<GrowerPage, ConnectorError> {
        let start: usize = token.map_or(0, |t| t.parse().expect("a token this fake gave"));
        let end = (start + 3).min(self.growers.len());
        let state = |id: &Uuid| self.states.get(id).cloned().unwrap_or_default();
        Ok(GrowerPage {
            growers: self.growers[start..end]
                .iter()
                .map(|id| ListedGrower {
                    id: *id,
                    state: state(id),
                })
                .collect(),
            misnamed: if start == 0 {
                self.misnamed.clone()
            } else {
                Vec::new()
            },
            next: (end < self.growers.len()).then(|| end.to_string()),
        })
    }
}

#[async_trait]
impl GrowerLookup for FakeDirectory {
    async fn by_credentials(&self, credentials_id: &str) -> Result<Option<ListedGrower>, ConnectorError> {
        Ok(self.credentials.get(credentials_id).cloned())
    }
}

/// Keeps every latency it is given.
impl crate::domain::ports::LatencyRecorder for Vec<Duration> {
    fn record(&mut self, upstream: Duration) {
        self.push(upstream);
    }

    fn flush(&mut self) {}
}

/// Leaf's alerts webhooks as a list, with Leaf's rule (one webhook per event); every call
/// recorded in order (`register <name> <url>`, `list`, `remove <id>`).
#[derive(Default)]
pub(crate) struct FakeWebhooks {
    pub(crate) webhooks: Mutex<Vec<Webhook>>,
    pub(crate) calls: Mutex<Vec<String>>,
    /// Every secret `register` was given.
    pub(crate) secrets: Mutex<Vec<String>>,
    /// Make every call fail with this error.
    pub(crate) fail: Mutex<Option<ConnectorError>>,
    /// Make `register` panic, or never answer.
    pub(crate) panic: AtomicBool,
    pub(crate) hang: AtomicBool,
}

impl FakeWebhooks {
    fn call(&self, call: String) -> Result<(), ConnectorError> {
        self.calls.lock().unwrap().push(call);
        self.fail.lock().unwrap().clone().map_or(Ok(()), Err)
    }
}

#[async_trait]
impl LeafWebhooks for FakeWebhooks {
    async fn register(&self, new: &NewWebhook, _: &Deadline) -> Result<Registration, ConnectorError> {
        self.call(format!("register {} {}", new.name, new.url))?;
        assert!(!self.panic.load(Ordering::SeqCst), "FakeWebhooks told to panic");
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let secret = new.secret.expose_secret().to_owned();
        self.secrets.lock().unwrap().push(secret);
        let mut held = self.webhooks.lock().unwrap();
        let listens = |w: &Webhook| w.events.iter().any(|e| new.events.contains(e));
        if held.iter().any(listens) {
            return Ok(Registration::EventTaken);
        }
        let id = format!("wh-{}", self.calls.lock().unwrap().len());
        let (name, url, events) = (Some(new.name.clone()), Some(new.url.clone()), new.events.clone());
        held.push(Webhook {
            id: id.clone(),
            name,
            url,
            events,
        });
        Ok(Registration::Created(id))
    }

    async fn list(&self, _: &Deadline) -> Result<Vec<Webhook>, ConnectorError> {
        self.call("list".into())?;
        Ok(self.webhooks.lock().unwrap().clone())
    }

    async fn remove(&self, id: &str, _: &Deadline) -> Result<bool, ConnectorError> {
        self.call(format!("remove {id}"))?;
        let mut held = self.webhooks.lock().unwrap();
        let before = held.len();
        held.retain(|w| w.id != id);
        Ok(held.len() < before)
    }
}
