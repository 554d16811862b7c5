//! The product's rules, free of AWS and HTTP: the connect and verify workflows, the health
//! model, and the types and capabilities (`ports`) they speak in.
//!
//! Nothing here imports from `adapters` or `lambda`; the check in `layering.rs` fails the build's
//! tests when an import breaks that rule.

pub(crate) mod alerts;
pub(crate) mod connect;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod model;
pub(crate) mod ports;
pub(crate) mod time;
pub(crate) mod verify;
