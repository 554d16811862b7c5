//! The outside world behind the domain's ports: Stara and Leaf over HTTP, Secrets Manager,
//! SQS, and CloudWatch metrics. Adapters import from `domain`, never from `lambda`.

pub(crate) mod base_url;
pub(crate) mod directory;
pub(crate) mod grower_state;
pub(crate) mod http;
pub(crate) mod leaf;
pub(crate) mod leaf_webhooks;
pub(crate) mod metrics;
pub(crate) mod rate_limit;
pub(crate) mod repair_queue;
pub(crate) mod retry;
pub(crate) mod secret_cache;
pub(crate) mod secrets;
pub(crate) mod sqs_batch;
pub(crate) mod stara;
pub(crate) mod tls_roots;
pub(crate) mod verify_queue;

/// An error with all its causes, `: `-separated. For errors of transports and SDKs, whose texts
/// name hosts, paths and codes, never request or response bodies.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
