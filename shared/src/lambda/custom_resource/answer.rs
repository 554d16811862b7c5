//! The answer to CloudFormation: a JSON body PUT to the request's pre-signed `ResponseURL`
//! with an empty `Content-Type` (the signature covers the headers), and the one answer still
//! given when the work panics.
//!
//! Functions are built with `panic = "abort"` for release: a panic ends the process before any
//! `JoinError` can be seen. So while a request's work runs, a panic hook holds a FAILED answer
//! ready ([`Pending`], found through a task-local) and sends it from a thread of its own before
//! the process goes. Whoever takes the pending answer first answers; no request is answered twice.

use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError};

use serde::Serialize;
use serde_json::Value;

use super::super::trigger::CustomResourceRequest;
use super::webhook::Outcome;
use crate::adapters::http::{HttpClient, HttpSettings};
use crate::domain::time::Deadline;

const PUT_RESPONSE: &str = "PUT ResponseURL";

/// Whether CloudFormation's answers may go to `url`: `https://`, or `http://` to this machine
/// (local tests). Otherwise the reason why not.
pub(crate) fn check_response_url(url: &str) -> Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a URL")?;
    let host = parsed.host_str().ok_or("no host")?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("plain http to a host other than 127.0.0.1, ::1 or localhost"),
        _ => Err("neither https nor http"),
    }
}

/// The response object CloudFormation reads.
pub(crate) fn body(request: &CustomResourceRequest, outcome: &Outcome) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body<'a> {
        status: &'static str,
        reason: &'a str,
        physical_resource_id: &'a str,
        stack_id: &'a str,
        request_id: &'a str,
        logical_resource_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a Value>,
    }
    serde_json::to_vec(&Body {
        status: outcome.status.as_str(),
        reason: &outcome.reason,
        physical_resource_id: &outcome.physical_id,
        stack_id: &request.stack_id,
        request_id: &request.request_id,
        logical_resource_id: &request.logical_resource_id,
        data: outcome.data.as_ref(),
    })
    .expect("strings and JSON values always serialise")
}

/// PUTs `body` to `url` before `deadline`; whether CloudFormation took it (a 2xx).
pub(crate) async fn put(http: &HttpClient, url: &str, body: &[u8], deadline: &Deadline) -> bool {
    match http.put_presigned(PUT_RESPONSE, url, body, deadline).await {
        Ok(reply) if (200..300).contains(&reply.status) => true,
        Ok(reply) => {
            tracing::error!(
                status = reply.status,
                "CloudFormation refused the answer (ResponseURL expired?)"
            );
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "CloudFormation could not be answered");
            false
        }
    }
}

/// A request's answer while its work runs: where to PUT, and the FAILED body a panic sends.
pub(crate) struct Pending {
    prepared: Mutex<Option<(String, Vec<u8>)>>,
    deadline: Deadline,
    /// Set when the panic hook answered: whether CloudFormation took it.
    answered_on_panic: OnceLock<bool>,
}

impl Pending {
    pub(crate) fn new(url: String, failed_body: Vec<u8>, deadline: Deadline) -> Self {
        Self {
            prepared: Mutex::new(Some((url, failed_body))),
            deadline,
            answered_on_panic: OnceLock::new(),
        }
    }

    /// The URL to answer to, unless the request was answered already.
    pub(crate) fn take_url(&self) -> Option<String> {
        self.take().map(|(url, _)| url)
    }

    fn take(&self) -> Option<(String, Vec<u8>)> {
        self.prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether the panic hook answered, and if so whether CloudFormation took it.
    pub(crate) fn answered_on_panic(&self) -> Option<bool> {
        self.answered_on_panic.get().copied()
    }
}

tokio::task_local! {
    static PENDING: Arc<Pending>;
}

/// Runs `work` with `pending` answered by the panic hook should `work` panic.
pub(crate) async fn guarded<F: Future>(pending: Arc<Pending>, work: F) -> F::Output {
    install_panic_answer();
    PENDING.scope(pending, work).await
}

fn install_panic_answer() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            answer_on_panic();
        }));
    });
}

/// In the panic hook: sends the pending FAILED answer of the task that panicked, if any.
fn answer_on_panic() {
    let Ok(pending) = PENDING.try_with(Arc::clone) else {
        return;
    };
    let Some((url, body)) = pending.take() else {
        return;
    };
    tracing::error!("the custom resource's work panicked: answering FAILED");
    let deadline = pending.deadline;
    // A runtime of its own on a thread of its own: the panicking thread may be the only worker.
    let sent = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let http = HttpClient::new(HttpSettings::default());
        Some(runtime.block_on(put(&http, &url, &body, &deadline)))
    })
    .join();
    let _ = pending.answered_on_panic.set(matches!(sent, Ok(Some(true))));
}
