//! An emulator of the AWS Lambda Runtime API (the protocol `lambda_runtime` speaks), so a
//! real compiled function binary can be invoked locally.
//!
//! Invocations are queued; any number of function processes may long-poll `next`, and each
//! queued invocation goes to exactly one of them.
//!
//! This module is the invoking side (the queue, the answers, the timeouts); `endpoints` serves
//! the HTTP endpoints the function polls and posts to.

mod endpoints;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, oneshot, watch};

use crate::server::{self, Server};

const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Handle on a running emulator. Clones share it; the server stops when the last clone drops.
#[derive(Clone)]
pub struct RuntimeApi {
    inner: Arc<Inner>,
    server: Arc<Server>,
}

/// The result of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// `Ok(response body)` from `/response`, or `Err(error body)` from `/error`
    /// (a `{"errorType","errorMessage"}` object when it comes from `lambda_runtime`).
    /// A body that is not JSON is given as a JSON string.
    pub outcome: Result<Value, Value>,
    /// The `Lambda-Runtime-Function-Error-Type` header of an error, if any.
    pub error_type: Option<String>,
    /// From `invoke` to the function's answer.
    pub elapsed: Duration,
    /// Part of `elapsed` spent queued, before a function polled the invocation.
    pub queued: Duration,
    /// `next` polls the emulator had received when the answer arrived (see [`RuntimeApi::finished`]).
    polls_at_answer: usize,
}

impl Invocation {
    /// The response body; panics (showing the error) if the function reported an error.
    pub fn expect_ok(self) -> Value {
        match self.outcome {
            Ok(value) => value,
            Err(error) => panic!("invocation {} failed: {error}", self.request_id),
        }
    }
}

/// Why an invocation produced no outcome.
#[derive(Debug, Clone)]
pub enum InvokeError {
    /// No response within the invoke timeout.
    Timeout {
        request_id: String,
        after: Duration,
        polled: bool,
    },
    /// The function reported an init error (`/runtime/init/error`) instead.
    InitError(Value),
}

impl fmt::Display for InvokeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvokeError::Timeout {
                request_id,
                after,
                polled: false,
            } => write!(
                formatter,
                "invocation {request_id}: no function polled /next within {after:?} \
                 (did the function start? is AWS_LAMBDA_RUNTIME_API right? check its logs)"
            ),
            InvokeError::Timeout {
                request_id,
                after,
                polled: true,
            } => {
                write!(
                    formatter,
                    "invocation {request_id}: the function took it but posted no response within {after:?}"
                )
            }
            InvokeError::InitError(body) => {
                write!(formatter, "the function reported an init error: {body}")
            }
        }
    }
}

impl std::error::Error for InvokeError {}

struct Inner {
    queue: Mutex<VecDeque<Queued>>,
    /// Signalled when an invocation is queued.
    queued: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    settings: Mutex<Settings>,
    first_poll: watch::Sender<Option<Instant>>,
    init_error: watch::Sender<Option<Value>>,
    /// `next` polls received so far.
    polls: watch::Sender<usize>,
    unknown_answers: Mutex<Vec<String>>,
}

struct Settings {
    function_timeout: Duration,
    invoke_timeout: Duration,
}

struct Queued {
    request_id: String,
    payload: Value,
    polled: oneshot::Sender<Instant>,
    answer: oneshot::Sender<Answer>,
}

struct Answer {
    outcome: Result<Value, Value>,
    error_type: Option<String>,
    /// `next` polls received when the answer arrived.
    polls: usize,
}

impl RuntimeApi {
    /// Start the emulator on an ephemeral port of 127.0.0.1.
    pub async fn start() -> RuntimeApi {
        let inner = Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            settings: Mutex::new(Settings {
                function_timeout: DEFAULT_FUNCTION_TIMEOUT,
                invoke_timeout: DEFAULT_INVOKE_TIMEOUT,
            }),
            first_poll: watch::Sender::new(None),
            init_error: watch::Sender::new(None),
            polls: watch::Sender::new(0),
            unknown_answers: Mutex::new(Vec::new()),
        });
        let handler_inner = inner.clone();
        let server = server::serve(move |request, connection| {
            endpoints::handle(handler_inner.clone(), request, connection)
        })
        .await
        .expect("runtime API emulator: cannot listen on 127.0.0.1");
        RuntimeApi {
            inner,
            server: Arc::new(server),
        }
    }

    /// Value for `AWS_LAMBDA_RUNTIME_API`: `127.0.0.1:PORT`, host and port without a scheme,
    /// like real Lambda's `127.0.0.1:9001` (`lambda_runtime` defaults the scheme to http).
    pub fn address(&self) -> String {
        self.server.addr().to_string()
    }

    /// Function timeout: each invocation's `Lambda-Runtime-Deadline-Ms` is now + this (default 30 s).
    pub fn set_function_timeout(&self, timeout: Duration) {
        lock(&self.inner.settings).function_timeout = timeout;
    }

    /// How long [`invoke`](Self::invoke) waits for an answer before giving up (default 60 s).
    pub fn set_invoke_timeout(&self, timeout: Duration) {
        lock(&self.inner.settings).invoke_timeout = timeout;
    }

    /// Invoke the function; panics with a clear message on timeout or init error.
    pub async fn invoke(&self, payload: Value) -> Invocation {
        match self.try_invoke(payload).await {
            Ok(invocation) => invocation,
            Err(error) => panic!("{error}"),
        }
    }

    /// Queue an invocation and wait for the function's response or error.
    pub async fn try_invoke(&self, payload: Value) -> Result<Invocation, InvokeError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (polled_tx, mut polled_rx) = oneshot::channel();
        let (answer_tx, answer_rx) = oneshot::channel();
        let started = Instant::now();
        let invoke_timeout = lock(&self.inner.settings).invoke_timeout;
        lock(&self.inner.queue).push_back(Queued {
            request_id: request_id.clone(),
            payload,
            polled: polled_tx,
            answer: answer_tx,
        });
        self.inner.queued.notify_one();

        let mut init_error = self.inner.init_error.subscribe();
        let result = tokio::select! {
            answer = answer_rx => answer.ok(),
            Ok(error) = init_error.wait_for(Option::is_some) => {
                let error = error.clone().unwrap_or(Value::Null);
                self.forget(&request_id);
                return Err(InvokeError::InitError(error));
            }
            () = tokio::time::sleep(invoke_timeout) => None,
        };
        let Some(answer) = result else {
            self.forget(&request_id);
            return Err(InvokeError::Timeout {
                request_id,
                after: invoke_timeout,
                polled: polled_rx.try_recv().is_ok(),
            });
        };
        let elapsed = started.elapsed();
        // The sender is only dropped unsent if the invocation was never polled.
        let queued = polled_rx.await.map_or(elapsed, |polled_at| polled_at - started);
        Ok(Invocation {
            request_id,
            outcome: answer.outcome,
            error_type: answer.error_type,
            elapsed,
            queued,
            polls_at_answer: answer.polls,
        })
    }

    /// Waits (up to `timeout`) until the invocation is over as Lambda sees it: the function has
    /// asked for its next event. Lambda hands the answer to the caller as soon as it is posted,
    /// and a function may work on until it polls again (connect writes the credentials id then:
    /// `shared/src/lambda/after_response.rs`); a test that reads what the function wrote waits
    /// for this. With several processes on one emulator, any process's poll ends the wait.
    /// `false` if no poll came in time (the process ended, say).
    pub async fn finished(&self, invocation: &Invocation, timeout: Duration) -> bool {
        let mut polls = self.inner.polls.subscribe();
        let after = invocation.polls_at_answer;
        tokio::time::timeout(timeout, polls.wait_for(|n| *n > after))
            .await
            .is_ok_and(|polled| polled.is_ok())
    }

    /// [`invoke`](Self::invoke), then [`finished`](Self::finished) (up to `wait`): returns once the
    /// function has done what it does after its answer, as Lambda waits for that before it hands
    /// the process its next event. The invocation's times are still those of its answer.
    pub async fn invoke_to_end(&self, payload: Value, wait: Duration) -> Invocation {
        let invocation = self.invoke(payload).await;
        self.finished(&invocation, wait).await;
        invocation
    }

    /// When the first `GET .../invocation/next` arrived, if one has.
    pub fn first_poll_at(&self) -> Option<Instant> {
        *self.inner.first_poll.borrow()
    }

    /// Wait for the first `next` poll (the end of the function's init); panics after `timeout`.
    pub async fn wait_first_poll(&self, timeout: Duration) -> Instant {
        let mut first_poll = self.inner.first_poll.subscribe();
        let waited = tokio::time::timeout(timeout, first_poll.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(at)) => at.expect("wait_for returned Some"),
            Ok(Err(_)) => unreachable!("the sender lives in self"),
            Err(_) => panic!("no function polled the runtime API within {timeout:?}"),
        }
    }

    /// Number of `next` polls received so far.
    pub fn polls(&self) -> usize {
        *self.inner.polls.borrow()
    }

    /// The body of `/runtime/init/error`, if the function posted one.
    pub fn init_error(&self) -> Option<Value> {
        self.inner.init_error.borrow().clone()
    }

    /// Forget a recorded init error (e.g. before starting a fixed function on the same emulator);
    /// while one is recorded every invocation fails with [`InvokeError::InitError`].
    pub fn clear_init_error(&self) {
        self.inner.init_error.send_replace(None);
    }

    /// Request ids of responses/errors posted for invocations the emulator did not hand out
    /// (or that already timed out); should stay empty.
    pub fn unknown_answers(&self) -> Vec<String> {
        lock(&self.inner.unknown_answers).clone()
    }

    /// Drop an invocation that gave up, so no function picks it up later.
    fn forget(&self, request_id: &str) {
        lock(&self.inner.queue).retain(|queued| queued.request_id != request_id);
        lock(&self.inner.in_flight).remove(request_id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
