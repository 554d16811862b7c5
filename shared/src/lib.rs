//! The Stara–Leaf connector: everything that is not the two functions' `main`.
//!
//! Three layers, with dependencies that point one way (docs/ARCHITECTURE.md):
//! - [`domain`](crate::domain): the connect and verify workflows, the health model, and the
//!   types and narrow capability traits (`ports`) they speak in. No AWS, no HTTP.
//! - `adapters`: Stara and Leaf over HTTP, Secrets Manager, SQS and metrics, each implementing
//!   a port. They import from `domain` only.
//! - `lambda`: which service sent an event, routing and parsing, the two handlers, and the
//!   composition root (`app`) that builds the adapters once per process.
//!
//! The crate exports only what the function binaries use.

mod adapters;
mod domain;
mod lambda;
#[cfg(test)]
mod testing;

pub use lambda::after_response::{FlushAfterResponse, FlushAfterResponseService, Flushed};
pub use lambda::app::Clients;
pub use lambda::config::ConfigError;
pub use lambda::connect_handler::{ConnectApp, handle as handle_connect};
pub use lambda::logging::init as init_logging;
pub use lambda::verify_config::VerifyConfig;
pub use lambda::verify_handler::{VerifyApp, handle as handle_verify};

/// The fuzz target's entry (`fuzz/`): built only with the `fuzzing` feature, which no
/// function binary enables.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

#[cfg(test)]
mod layering;
