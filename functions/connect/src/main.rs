//! The `connect` Lambda function: links a grower's Stara account to a Leaf user.
//! Triggers: API Gateway HTTP API (`POST /connections`, `DELETE /connections/{leafUserId}`) and SQS.

use lambda_runtime::{Error, service_fn};
use shared::app::Clients;
use shared::connect_handler::handle;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let clients = Clients::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let app = clients.connect_app();
    let app = &app;
    lambda_runtime::run(service_fn(move |event| handle(app, event))).await
}
