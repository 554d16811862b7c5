//! The `verify` Lambda function: how growers' Stara connections stand in Leaf, and repairs.
//! Triggers: API Gateway HTTP API (`GET /connections/{leafUserId}`) and schedules
//! (EventBridge rule or EventBridge Scheduler), which check every grower.

use lambda_runtime::{Error, service_fn};
use stara_connect::{Clients, VerifyConfig, handle_verify};

// mimalloc instead of glibc's malloc: a tenth fewer instructions a connect (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: Lambda runs one invocation at a time on a fraction of a vCPU, and a second worker
// only adds hand-offs between threads (docs/BENCHMARKS.md: about a quarter of the CPU).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    stara_connect::init_logging();
    let verify = VerifyConfig::from_env().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let clients = Clients::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let app = clients.verify_app(&verify);
    let app = &app;
    lambda_runtime::run(service_fn(move |event| handle_verify(app, event))).await
}
