//! Lambda glue: which service sent an event, routing and parsing what callers send, the two
//! handlers, and the composition root that builds the adapters once per process.

pub(crate) mod after_response;
pub(crate) mod alerts;
pub(crate) mod api;
pub(crate) mod app;
pub(crate) mod batch;
pub(crate) mod config;
pub(crate) mod connect_handler;
pub(crate) mod custom_resource;
pub(crate) mod failure;
pub(crate) mod invocation;
pub(crate) mod logging;
pub(crate) mod request;
pub(crate) mod secret_events;
pub(crate) mod trigger;
pub(crate) mod verify_batch;
pub(crate) mod verify_config;
pub(crate) mod verify_handler;
pub(crate) mod verify_run;
