//! Time: the invocation's deadline, and how long a piece of work waited on upstream calls.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::error::ConnectorError;

/// The instant by which all upstream work of one request must be over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub(crate) fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// The earlier of the two deadlines.
    pub(crate) fn min(self, other: Deadline) -> Self {
        Self(self.0.min(other.0))
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub(crate) fn is_past(&self) -> bool {
        self.remaining().is_zero()
    }
}

/// Runs a secret read within what is left of the deadline: the SDK's own timeouts do not
/// know about it.
pub(crate) async fn within_deadline<T>(
    deadline: &Deadline,
    read: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    tokio::time::timeout(deadline.remaining(), read)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectorError::SecretsUnavailable {
                secret_id: "(any)".into(),
                detail: "no answer before the deadline".into(),
            })
        })
}

tokio::task_local! {
    static UPSTREAM_TIME: Cell<Duration>;
}

/// Runs `work` and returns its output with the time it spent waiting on upstream HTTP calls.
pub(crate) async fn measure_upstream<F: Future>(work: F) -> (F::Output, Duration) {
    UPSTREAM_TIME
        .scope(Cell::new(Duration::ZERO), async {
            let out = work.await;
            (out, UPSTREAM_TIME.with(Cell::get))
        })
        .await
}

/// Adds one upstream call's time to the enclosing [`measure_upstream`], if any.
pub(crate) fn record_upstream(elapsed: Duration) {
    // Outside `measure_upstream` there is nothing to add to.
    let _ = UPSTREAM_TIME.try_with(|total| total.set(total.get() + elapsed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upstream_time_is_measured_per_scope() {
        let ((), spent) = measure_upstream(async {
            record_upstream(Duration::from_millis(5));
            record_upstream(Duration::from_millis(7));
        })
        .await;
        assert_eq!(spent, Duration::from_millis(12));
        record_upstream(Duration::from_millis(1)); // outside any scope: ignored, no panic
    }

    #[tokio::test]
    async fn a_read_slower_than_the_deadline_is_unavailable() {
        let deadline = Deadline::after(Duration::from_millis(20));
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let err = within_deadline(&deadline, slow).await.unwrap_err();
        assert_eq!(err.code(), "secrets_unavailable");
        assert!(err.is_retryable());
    }

    #[test]
    fn the_earlier_deadline_wins() {
        let near = Deadline::after(Duration::from_millis(100));
        let far = Deadline::after(Duration::from_secs(100));
        assert!(far.min(near).remaining() <= Duration::from_millis(100));
        assert!(Deadline::after(Duration::ZERO).is_past());
    }
}
