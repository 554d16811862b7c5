//! The `connect` Lambda function: links a grower's Stara account to a Leaf user.
//! Triggers: API Gateway HTTP API (`POST /connections`, `DELETE /connections/{leafUserId}`) and SQS.

use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{Error, Runtime, service_fn};
use stara_connect::{Clients, handle_connect};

// mimalloc instead of glibc's malloc: a tenth fewer instructions a connect (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: Lambda runs one invocation at a time on a fraction of a vCPU, and a second worker
// only adds hand-offs between threads (docs/BENCHMARKS.md: about a quarter of the CPU).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    stara_connect::init_logging();
    let clients = Clients::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let app = clients.connect_app();
    let app = &app;
    // `lambda_runtime::run` with one more layer: once the answer is posted, and before the next
    // event, the writes a connect left for then (the credentials id: off the caller's wait).
    Runtime::new(service_fn(move |event| handle_connect(app, event)))
        .layer(app.after_response())
        .layer(TracingLayer::new())
        .run()
        .await
}
