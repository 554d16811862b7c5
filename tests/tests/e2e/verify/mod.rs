//! The verify function end to end: the real `verify` (and `connect`) binaries behind the
//! Runtime API emulator, Leaf and Stara stand-ins, Secrets Manager and a FIFO queue in moto.
//!
//! Build the binaries first: `cargo build --bins`, then
//! `cargo test -p stara-connect-e2e --test e2e verify::`. Verify at scale (1,000 and 10,000
//! growers, 20 ms per upstream call) is measured by `make bench` (bench/src/verify.rs;
//! `bench/verify.sh` runs only that part).
//!
//! `api`: `GET /connections/{id}` and the events verify refuses. `scheduled`: scheduled runs,
//! their summary, the repairs they queue and connect carries out, their settings, and scale.

mod api;
mod scheduled;

use serde_json::{Value, json};
use testbed::bed::{Bed, Grower, Running, verify_api_event};
use testbed::load_event;

/// A run's summary. The lifecycle counts (`disconnected`, `loginRejected`: growers not checked)
/// are 0 here; tests/tests/e2e/lifecycle covers them.
fn summary(
    checked: u64,
    healthy: u64,
    unhealthy: u64,
    missing: u64,
    pending: u64,
    errors: u64,
    repairs_queued: u64,
) -> Value {
    json!({
        "checked": checked, "healthy": healthy, "unhealthy": unhealthy, "missing": missing,
        "pending": pending, "errors": errors, "unchecked": 0, "repairsQueued": repairs_queued,
        "repairsFailed": 0, "disconnected": 0, "loginRejected": 0,
    })
}

/// Runs a scheduled verify with `event` and returns its summary and the invocation's request id.
async fn scheduled_run(bed: &Bed, running: &Running, event: &str) -> (Value, String) {
    let invocation = bed.invoke(running, load_event(event)).await;
    let request_id = invocation.request_id.clone();
    (invocation.expect_ok(), request_id)
}

/// A grower whose connection is in the given state: `Some(status)` seeds credentials, `None`
/// leaves it missing.
async fn grower(bed: &Bed, status: Option<&str>) -> Grower {
    let grower = bed.add_grower().await;
    if let Some(status) = status {
        bed.standin.set_credential(&grower.leaf_user_id, status);
    }
    grower
}
