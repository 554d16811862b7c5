//! What unit tests share: in-memory fakes of every capability in `domain::ports`, and
//! property-test strategies for the inputs the functions receive.

pub(crate) mod arbitrary;
pub(crate) mod events;
mod fakes;
pub(crate) mod oracle;

pub(crate) use fakes::{
    FakeDirectory, FakeLeaf, FakeLogins, FakeRepairQueue, FakeStara, FakeStates, FakeWebhooks,
};

/// A sample event of `events/`, as JSON.
pub(crate) fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
