//! Everything of the Stara–Leaf connector that is not Lambda glue.
//!
//! Adapters (`stara`, `leaf`, `secrets`, `directory`, `repair_queue`, `http`) talk to the
//! outside world behind narrow traits; workflows (`connect`, `verify`) hold the product's
//! rules; handlers (`connect_handler`, `verify_handler`) turn AWS events into workflow calls
//! and results into responses. See docs/ARCHITECTURE.md.

pub mod api;
pub mod app;
pub mod config;
pub mod connect;
pub mod connect_handler;
pub mod directory;
pub mod error;
pub mod health;
pub mod http;
pub mod invocation;
pub mod leaf;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod proptests;
pub mod repair_queue;
pub mod request;
pub mod retry;
pub mod secrets;
pub mod stara;
pub mod trigger;
pub mod verify;
pub mod verify_handler;
