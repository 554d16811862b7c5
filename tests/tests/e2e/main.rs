//! The end-to-end suite, as one test binary so the AWS SDK is linked once: the real `connect`
//! and `verify` binaries driven through the Lambda Runtime API, against moto (Secrets Manager,
//! SQS) and the Stara/Leaf stand-ins over HTTP.
//!
//! Build the binaries first (`cargo build --workspace --bins`). One part of the suite runs with
//! a filter on its module, e.g. `cargo test -p stara-connect-e2e --test e2e faults::`.

mod alerts;
mod connect;
mod custom_resource;
mod fanout;
mod faults;
mod lifecycle;
mod load;
mod redelivery;
mod verify;
