//! End to end: the compiled `connect` binary, driven through the Lambda Runtime API with the
//! sample events, against moto (Secrets Manager) and the Stara/Leaf stand-in over HTTP.
//!
//! Every test ends with a leak scan: no password or token the bed issued may appear in the
//! function's logs or in any response.
//!
//! `requests`: what each request gets, on either trigger, for each input and each state Leaf
//! holds. `resilience`: upstream faults and retries, duplicate and partly failing batches, and
//! secrecy through all of them at DEBUG level.

mod requests;
mod resilience;

use serde_json::Value;
use testbed::bed::{Bed, Running};

async fn connect_bed() -> (Bed, Running) {
    let bed = Bed::start().await;
    let running = bed.run("connect", &[]).await;
    (bed, running)
}

/// The log lines (JSON objects) whose message is `message`.
fn log_lines(running: &Running, message: &str) -> Vec<Value> {
    running
        .function
        .log_json()
        .into_iter()
        .filter(|l| l["message"] == message)
        .collect()
}

/// A span field (`requestId`, `leafUserId`) of a JSON log line.
fn span_field(line: &Value, field: &str) -> Option<String> {
    line["spans"]
        .as_array()?
        .iter()
        .find_map(|s| s.get(field).and_then(Value::as_str).map(str::to_owned))
}
