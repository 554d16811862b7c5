//! In-memory stand-ins for the two queues verify sends to: connect's (repairs) and its own.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::domain::error::ConnectorError;
use crate::domain::model::ConnectRequest;
use crate::domain::ports::{REPAIRS_PER_CALL, RepairQueue, VERIFY_MESSAGES_PER_CALL, VerifyQueue};
use crate::domain::verify::VerifyMessage;

/// Keeps what it is sent, with the run id; fails every call as told.
#[derive(Default)]
pub(crate) struct FakeRepairQueue {
    pub(crate) sent: Mutex<Vec<(String, ConnectRequest)>>,
    pub(crate) calls: AtomicUsize,
    pub(crate) fail: Mutex<Option<ConnectorError>>,
}

#[async_trait]
impl RepairQueue for FakeRepairQueue {
    async fn enqueue(&self, run_id: &str, repairs: &[ConnectRequest]) -> Result<usize, ConnectorError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(repairs.len() <= REPAIRS_PER_CALL);
        if let Some(e) = self.fail.lock().unwrap().clone() {
            return Err(e);
        }
        self.sent
            .lock()
            .unwrap()
            .extend(repairs.iter().map(|r| (run_id.to_owned(), r.clone())));
        Ok(repairs.len())
    }
}

/// Keeps every message it is sent; fails the call numbered `fail_call` (0-based) when set.
#[derive(Default)]
pub(crate) struct FakeVerifyQueue {
    pub(crate) sent: Mutex<Vec<VerifyMessage>>,
    pub(crate) calls: AtomicUsize,
    pub(crate) fail_call: Option<usize>,
}

#[async_trait]
impl VerifyQueue for FakeVerifyQueue {
    async fn send(&self, messages: &[VerifyMessage]) -> Result<(), ConnectorError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(messages.len() <= VERIFY_MESSAGES_PER_CALL);
        if self.fail_call == Some(call) {
            return Err(ConnectorError::Configuration("SQS: AccessDenied".into()));
        }
        self.sent.lock().unwrap().extend_from_slice(messages);
        Ok(())
    }
}
