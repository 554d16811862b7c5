//! How both handlers report what went wrong: a failed workflow call logged at the level its
//! fault deserves, and an event of a kind the function does not serve.

use lambda_runtime::Diagnostic;

use super::trigger::Trigger;
use crate::domain::error::{ConnectorError, Fault};

/// Logs one failed workflow call: ERROR when the deployment is wrong (someone must act, and an
/// alarm should fire), WARN for everything else (a caller's mistake, a grower's wrong password,
/// an upstream's bad moment).
pub(crate) fn log_failure(
    message: &'static str,
    trigger: &'static str,
    e: &ConnectorError,
    upstream_ms: u64,
) {
    let (code, retryable) = (e.code(), e.is_retryable());
    let fault = format!("{:?}", e.fault()).to_lowercase();
    if e.fault() == Fault::Configuration {
        tracing::error!(trigger, outcome = "failed", code, retryable, fault, upstreamMs = upstream_ms,
            error = %e, "{message}");
    } else {
        tracing::warn!(trigger, outcome = "failed", code, retryable, fault, upstreamMs = upstream_ms,
            error = %e, "{message}");
    }
}

/// Refuses an event this function does not serve, saying what it serves and what it got
/// (described without quoting any value).
pub(crate) fn unsupported_event(function: &str, serves: &str, event: &Trigger) -> Diagnostic {
    let what = event.description();
    tracing::warn!(code = "unsupported_event", event = %what, "event refused");
    Diagnostic {
        error_type: "UnsupportedEvent".into(),
        error_message: format!("{function} handles {serves}; got {what}"),
    }
}
