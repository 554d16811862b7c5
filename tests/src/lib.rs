//! End-to-end test bed for the Stara connector: stand-ins for Stara and Leaf, a Lambda
//! Runtime API emulator, moto (Secrets Manager, SQS), and a runner for the real binaries.

pub mod function;
pub mod moto;
pub mod runtime_api;
mod server;
pub mod standin;

use std::path::PathBuf;

pub use function::Function;
pub use runtime_api::{Invocation, InvokeError, RuntimeApi};
pub use standin::{CredentialView, Fault, RecordedRequest, RetryAfter, Route, StandIn};

/// The cargo workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .expect("tests/ has a parent directory")
}

/// Read and parse `<workspace>/events/<name>` (a sample Lambda event).
pub fn load_event(name: &str) -> serde_json::Value {
    let path = workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read event {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("event {} is not JSON: {error}", path.display()))
}

pub mod alerts;
pub mod aws_proxy;
pub mod bed;
pub mod event_source;
pub mod leaks;
pub mod queue;
pub mod run_lines;
pub mod secret_state;
