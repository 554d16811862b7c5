//! What unit tests share: in-memory fakes of every capability in `domain::ports`, and
//! property-test strategies for the inputs the functions receive.

pub(crate) mod arbitrary;
pub(crate) mod events;
mod fakes;
pub(crate) mod oracle;
mod queues;

pub(crate) use fakes::{FakeDirectory, FakeLeaf, FakeLogins, FakeStara, FakeStates, FakeWebhooks};
pub(crate) use queues::{FakeRepairQueue, FakeVerifyQueue};

/// A sample event of `events/`, as JSON.
pub(crate) fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A Leaf whose reads (credentials, events) each take 20 ms: verify's tests run on paused time
/// and see what overlaps.
pub(crate) fn slow_leaf() -> std::sync::Arc<FakeLeaf> {
    std::sync::Arc::new(FakeLeaf::with_latency(std::time::Duration::from_millis(20)))
}

/// A provider event with this status code, dated 2026-01-02.
pub(crate) fn event(code: i64) -> crate::domain::model::CredentialEvent {
    crate::domain::model::CredentialEvent {
        status_code: Some(code),
        created_date: Some("2026-01-02T00:00:00Z".into()),
    }
}

/// A verify run of id `run-1`, `concurrency` checks at once, an hour to go, starting at the
/// top of the grower circle (the listing's order).
pub(crate) fn run_settings(concurrency: usize) -> crate::domain::verify::RunSettings {
    crate::domain::verify::RunSettings {
        run_id: "run-1".into(),
        start: 0,
        limits: limits(concurrency),
    }
}

/// `concurrency` checks at once, 5 s each, an hour to go.
pub(crate) fn limits(concurrency: usize) -> crate::domain::verify::Limits {
    let hour = crate::domain::time::Deadline::after(std::time::Duration::from_secs(3600));
    crate::domain::verify::Limits {
        concurrency,
        check_budget: std::time::Duration::from_secs(5),
        deadline: hour,
        finish: hour,
    }
}
