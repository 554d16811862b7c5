//! The capabilities the workflows need from the outside world, one narrow trait each, so unit
//! tests put in-memory fakes (`crate::testing`) where production has Stara, Leaf and AWS.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::error::ConnectorError;
use super::model::{
    ConnectRequest, Created, CredentialEvent, GrowerState, LeafCredentials, Mark, StaraLogin, StaraTokens,
};
use super::time::Deadline;
use super::verify::VerifyMessage;

/// Reads the grower's Stara login.
#[async_trait]
pub(crate) trait GrowerLogins: Send + Sync {
    async fn grower_login(&self, leaf_user_id: &Uuid) -> Result<StaraLogin, ConnectorError>;
    /// Drops any copy held, so the next read asks the store (after Stara rejected it, or when
    /// the store has a newer version).
    fn forget(&self, leaf_user_id: &Uuid);
}

/// What people did to each grower (see [`GrowerState`]).
#[async_trait]
pub(crate) trait GrowerStates: Send + Sync {
    /// The grower's state, read fresh; `None` when the grower has no stored login.
    async fn state(&self, leaf_user_id: &Uuid) -> Result<Option<GrowerState>, ConnectorError>;
    /// Records a change. Best effort: a failed write is logged and counted by the adapter and
    /// never fails the workflow it records.
    async fn mark(&self, leaf_user_id: &Uuid, mark: Mark);
}

/// Turns a grower's Stara login into the tokens Leaf needs.
#[async_trait]
pub(crate) trait StaraApi: Send + Sync {
    async fn issue_tokens(
        &self,
        login: &StaraLogin,
        deadline: &Deadline,
    ) -> Result<StaraTokens, ConnectorError>;
}

/// The Leaf calls the workflows need.
#[async_trait]
pub(crate) trait LeafApi: Send + Sync {
    /// The user's Stara credentials, or `None` when the user has none (or does not exist).
    async fn get_credentials(
        &self,
        user: &Uuid,
        deadline: &Deadline,
    ) -> Result<Option<LeafCredentials>, ConnectorError>;
    /// Whether Leaf knows this user at all.
    async fn user_exists(&self, user: &Uuid, deadline: &Deadline) -> Result<bool, ConnectorError>;
    /// Attaches the tokens. Never POSTs twice without a GET in between that found nothing.
    async fn create_credentials(
        &self,
        user: &Uuid,
        tokens: &StaraTokens,
        deadline: &Deadline,
    ) -> Result<Created, ConnectorError>;
    /// Removes the user's credentials; `false` when there were none.
    async fn delete_credentials(&self, user: &Uuid, deadline: &Deadline) -> Result<bool, ConnectorError>;
    /// The credential's recent events, oldest first; `None` when the user has no credentials.
    async fn events(
        &self,
        user: &Uuid,
        deadline: &Deadline,
    ) -> Result<Option<Vec<CredentialEvent>>, ConnectorError>;
}

/// One grower as the listing found it: its id and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListedGrower {
    pub(crate) id: Uuid,
    pub(crate) state: GrowerState,
}

/// One page of the grower list, and where the next one starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GrowerPage {
    pub(crate) growers: Vec<ListedGrower>,
    /// Names under the grower prefix that do not end in a lower-case Leaf user id.
    pub(crate) misnamed: Vec<String>,
    /// `None` on the last page.
    pub(crate) next: Option<String>,
}

/// Lists the growers whose connections verify checks, a page at a time, so checks can start
/// while the listing goes on.
#[async_trait]
pub(crate) trait GrowerDirectory: Send + Sync {
    /// The page that starts at `token` (`None`: the first page).
    async fn page(&self, token: Option<String>) -> Result<GrowerPage, ConnectorError>;
}

/// Finds a grower by the Leaf credentials it holds (recorded by connect on every attach).
#[async_trait]
pub(crate) trait GrowerLookup: Send + Sync {
    /// The grower whose recorded Leaf credentials id is `credentials_id`, if any.
    async fn by_credentials(&self, credentials_id: &str) -> Result<Option<ListedGrower>, ConnectorError>;
}

/// The most repair requests one [`RepairQueue::enqueue`] call should be given (SQS's
/// SendMessageBatch takes ten).
pub(crate) const REPAIRS_PER_CALL: usize = 10;

/// Where repair requests go: the connect function's queue.
#[async_trait]
pub(crate) trait RepairQueue: Send + Sync {
    /// Queues the requests of run `run_id`; returns how many the queue accepted. Entries the
    /// queue refused are logged and not counted; `Err` when a whole call failed, and then
    /// nothing after it was sent (callers wanting an exact count send ten at a time).
    async fn enqueue(&self, run_id: &str, repairs: &[ConnectRequest]) -> Result<usize, ConnectorError>;
}

/// The most messages one [`VerifyQueue::send`] call should be given (SendMessageBatch takes ten).
pub(crate) const VERIFY_MESSAGES_PER_CALL: usize = 10;

/// Where a fanned-out verify run puts its work: the verify queue (`VERIFY_QUEUE_URL`).
#[async_trait]
pub(crate) trait VerifyQueue: Send + Sync {
    /// Sends every message, or fails: `Err` means some of them may not have been sent.
    async fn send(&self, messages: &[VerifyMessage]) -> Result<(), ConnectorError>;
}

/// Where the upstream time of each check of a verify run goes (EMF metrics in production).
pub(crate) trait LatencyRecorder: Send {
    fn record(&mut self, upstream: Duration);
    /// Writes out whatever is still held.
    fn flush(&mut self);
}
