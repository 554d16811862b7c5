//! What verify processes logged about their runs: the lines with one message, and the counts of
//! the `"verify batch finished"` lines added up (the e2e fan-out tests and the fan-out bench).

use serde_json::Value;

use crate::bed::Running;

/// The counts a `"verify batch finished"` line carries (docs/VERIFY.md#seeing-a-run).
pub const BATCH_FIELDS: [&str; 12] = [
    "messages",
    "checked",
    "healthy",
    "unhealthy",
    "missing",
    "pending",
    "errors",
    "unchecked",
    "repairsQueued",
    "repairsFailed",
    "disconnected",
    "loginRejected",
];

/// The lines with this message that the processes logged, all together.
pub fn lines(processes: &[&Running], message: &str) -> Vec<Value> {
    processes
        .iter()
        .flat_map(|running| running.function.log_json())
        .filter(|line| line["message"] == message)
        .collect()
}

/// A numeric field summed over lines (a missing field counts 0).
pub fn sum(lines: &[Value], field: &str) -> u64 {
    lines.iter().map(|line| line[field].as_u64().unwrap_or(0)).sum()
}

/// The sum of each of `fields` over `lines`, as a JSON object (to compare with one `assert_eq`).
pub fn sums(lines: &[Value], fields: &[&str]) -> Value {
    fields
        .iter()
        .map(|field| (field.to_string(), Value::from(sum(lines, field))))
        .collect::<serde_json::Map<String, Value>>()
        .into()
}
