//! Work a connect leaves until its answer has gone. Lambda hands the answer to the caller as soon
//! as the runtime posts it, and ends the invocation (freezes the process, starts the next one)
//! only when the runtime asks for the next event. What runs in between is off the caller's
//! critical path, yet still inside the invocation: billed, bounded by its deadline, and done
//! before the process takes another event. AWS describes the pattern for custom runtimes in
//! "Running code after returning a response from an AWS Lambda function" (AWS Compute Blog).
//!
//! One write goes there: the id of the Leaf credentials a connect attached (`Mark::Attached`),
//! which only a later Leaf alert needs. It was the one call after Leaf's POST on a first
//! connect's critical path (docs/BENCHMARKS.md, issue 14). Every other mark is written at once:
//! a disconnect or a rejected login must hold before anyone is told it happened.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::future::join_all;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Error, LambdaInvocation};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::error::ConnectorError;
use crate::domain::model::{GrowerState, Mark};
use crate::domain::ports::GrowerStates;

/// Time kept back from the invocation's deadline, so that the runtime can still ask for the next
/// event before Lambda would end the invocation as timed out.
const DEADLINE_MARGIN: Duration = Duration::from_millis(200);

/// The growers' states, with the credentials-id records held back until [`flush`](Self::flush).
pub(crate) struct DeferredMarks {
    states: Arc<dyn GrowerStates>,
    pending: Mutex<Vec<(Uuid, Mark)>>,
}

impl DeferredMarks {
    pub(crate) fn new(states: Arc<dyn GrowerStates>) -> Self {
        Self {
            states,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Writes what was held back, all at once, within `time`. For a grower attached twice in one
    /// invocation (a batch), only the last id is written: it is the one Leaf holds.
    pub(crate) async fn flush(&self, time: Duration) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if pending.is_empty() {
            return;
        }
        let mut last: Vec<(Uuid, Mark)> = Vec::with_capacity(pending.len());
        for (user, mark) in pending.into_iter().rev() {
            if !last.iter().any(|(seen, _)| *seen == user) {
                last.push((user, mark));
            }
        }
        let users: Vec<Uuid> = last.iter().map(|(user, _)| *user).collect();
        let writes = join_all(last.into_iter().map(|(user, mark)| async move {
            self.states.mark(&user, mark).await;
        }));
        if tokio::time::timeout(time, writes).await.is_err() {
            // Best effort, like every mark: the next attach, or verify's next check, writes it.
            for user in users {
                tracing::warn!(leafUserId = %user, code = "state_write_failed",
                    "credentials id not recorded: the invocation's time ran out");
            }
        }
    }
}

#[async_trait]
impl GrowerStates for DeferredMarks {
    async fn state(&self, user: &Uuid) -> Result<Option<GrowerState>, ConnectorError> {
        self.states.state(user).await
    }

    async fn mark(&self, user: &Uuid, mark: Mark) {
        match mark {
            Mark::Attached { .. } => {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                pending.push((*user, mark));
            }
            other => self.states.mark(user, other).await,
        }
    }
}

/// The runtime layer that flushes [`DeferredMarks`] once the invocation's answer is posted.
/// Add it with `Runtime::layer` before the tracing layer, so its log lines carry the request id.
pub struct FlushAfterResponse {
    marks: Arc<DeferredMarks>,
}

impl FlushAfterResponse {
    pub(crate) fn new(marks: Arc<DeferredMarks>) -> Self {
        Self { marks }
    }
}

impl<S> Layer<S> for FlushAfterResponse {
    type Service = FlushAfterResponseService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FlushAfterResponseService {
            inner,
            marks: self.marks.clone(),
        }
    }
}

/// See [`FlushAfterResponse`].
pub struct FlushAfterResponseService<S> {
    inner: S,
    marks: Arc<DeferredMarks>,
}

impl<S> Service<LambdaInvocation> for FlushAfterResponseService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = Error>,
{
    type Response = ();
    type Error = Error;
    type Future = Flushed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let deadline_ms = invocation.context.deadline;
        // The inner service posts the answer (or the error) to the Runtime API; only then flush.
        Flushed {
            answered: Some(Box::pin(self.inner.call(invocation))),
            result: None,
            flush: None,
            marks: self.marks.clone(),
            deadline_ms,
        }
    }
}

/// The answer, then the flush: resolves when both are done, with the answer's result.
pub struct Flushed<F> {
    answered: Option<Pin<Box<F>>>,
    result: Option<Result<(), Error>>,
    flush: Option<Pin<Box<dyn Future<Output = ()>>>>,
    marks: Arc<DeferredMarks>,
    deadline_ms: u64,
}

impl<F: Future<Output = Result<(), Error>>> Future for Flushed<F> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(answered) = this.answered.as_mut() {
            let result = std::task::ready!(answered.as_mut().poll(cx));
            this.answered = None;
            this.result = Some(result);
            let marks = this.marks.clone();
            let time = until(this.deadline_ms).saturating_sub(DEADLINE_MARGIN);
            let flush = async move { marks.flush(time).await }.instrument(tracing::Span::current());
            this.flush = Some(Box::pin(flush));
        }
        if let Some(flush) = this.flush.as_mut() {
            std::task::ready!(flush.as_mut().poll(cx));
            this.flush = None;
        }
        Poll::Ready(this.result.take().unwrap_or(Ok(())))
    }
}

/// Time left until `deadline_ms` (milliseconds since the epoch, as Lambda gives it).
fn until(deadline_ms: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_millis(deadline_ms).saturating_sub(now)
}

#[cfg(test)]
mod tests;
