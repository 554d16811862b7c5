//! CloudWatch metrics in Embedded Metric Format (EMF): one JSON line on stdout per metric set,
//! which CloudWatch Logs turns into metrics. No API call, no latency, no IAM permission.
//!
//! The lines are not tracing events: tracing would wrap them in its own JSON object, and EMF
//! must be the whole line. Only names and outcomes go into them, never a value from a request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::domain::ports::LatencyRecorder;

pub(crate) const NAMESPACE: &str = "StaraConnect";

/// EMF allows at most 100 values in one metric's array.
pub(crate) const MAX_VALUES: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF line: dimensions, metrics (a number or up to 100 numbers each) and plain properties.
#[derive(Clone, Debug)]
pub(crate) struct MetricSet {
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, Value)>,
    properties: Vec<(&'static str, Value)>,
}

impl MetricSet {
    /// A set for one function; `Function` is always the first dimension.
    pub(crate) fn new(function: &str) -> Self {
        Self {
            dimensions: vec![("Function", function.to_owned())],
            metrics: Vec::new(),
            properties: Vec::new(),
        }
    }

    pub(crate) fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    pub(crate) fn count(mut self, name: &'static str, value: u64) -> Self {
        self.metrics.push((name, Unit::Count, json!(value)));
        self
    }

    pub(crate) fn millis(mut self, name: &'static str, value: Duration) -> Self {
        self.metrics
            .push((name, Unit::Milliseconds, json!(millis(value))));
        self
    }

    /// Several samples of one metric in a single line; at most [`MAX_VALUES`] are kept.
    pub(crate) fn millis_samples(mut self, name: &'static str, values: &[f64]) -> Self {
        self.metrics.push((
            name,
            Unit::Milliseconds,
            json!(&values[..values.len().min(MAX_VALUES)]),
        ));
        self
    }

    /// A field that is logged with the metrics but is not a metric (searchable in Logs Insights).
    pub(crate) fn property(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.properties.push((name, value.into()));
        self
    }

    pub(crate) fn to_json(&self, timestamp_ms: u64) -> Value {
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(name, _)| *name).collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut line = Map::new();
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [
                    {"Namespace": NAMESPACE, "Dimensions": [dimension_names], "Metrics": definitions}
                ],
            }),
        );
        for (name, value) in &self.properties {
            line.insert((*name).into(), value.clone());
        }
        for (name, value) in &self.dimensions {
            line.insert((*name).into(), json!(value));
        }
        for (name, _, value) in &self.metrics {
            line.insert((*name).into(), value.clone());
        }
        Value::Object(line)
    }

    /// Writes the line to stdout. `println!` holds stdout's lock for the whole line, as the
    /// log writer does for each event, so the two never interleave.
    pub(crate) fn emit(&self) {
        println!("{}", self.to_json(now_ms()));
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The line for one connect: `Connects` by `Outcome` (or `failed`), with its upstream time.
pub(crate) fn connect_set(outcome: &str, code: Option<&str>, upstream: Duration) -> MetricSet {
    let set = MetricSet::new("connect")
        .dimension("Outcome", outcome)
        .count("Connects", 1)
        .millis("UpstreamLatency", upstream);
    match code {
        Some(code) => set.property("code", code),
        None => set,
    }
}

/// Emits the line for one connect.
pub(crate) fn connect(outcome: &str, code: Option<&str>, upstream: Duration) {
    connect_set(outcome, code, upstream).emit();
}

/// Upstream time per check, emitted [`MAX_VALUES`] at a time so that a run over thousands of
/// growers writes a line per hundred checks and keeps at most a hundred numbers in memory.
pub(crate) struct LatencySamples {
    function: &'static str,
    values: Vec<f64>,
}

impl LatencySamples {
    pub(crate) fn new(function: &'static str) -> Self {
        Self {
            function,
            values: Vec::with_capacity(MAX_VALUES),
        }
    }
}

impl LatencyRecorder for LatencySamples {
    fn record(&mut self, upstream: Duration) {
        self.values.push(millis(upstream));
        if self.values.len() == MAX_VALUES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.values.is_empty() {
            MetricSet::new(self.function)
                .millis_samples("UpstreamLatency", &self.values)
                .emit();
            self.values.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_line_is_valid_emf() {
        let line = connect_set("connected", None, Duration::from_micros(123_456)).to_json(1_795_953_600_000);
        assert_eq!(
            line,
            json!({
                "_aws": {
                    "Timestamp": 1_795_953_600_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "StaraConnect",
                        "Dimensions": [["Function", "Outcome"]],
                        "Metrics": [
                            {"Name": "Connects", "Unit": "Count"},
                            {"Name": "UpstreamLatency", "Unit": "Milliseconds"}
                        ],
                    }],
                },
                "Function": "connect",
                "Outcome": "connected",
                "Connects": 1,
                "UpstreamLatency": 123.456,
            })
        );
    }

    #[test]
    fn every_declared_metric_and_dimension_is_a_top_level_member() {
        let line = connect_set("failed", Some("upstream_timeout"), Duration::ZERO).to_json(0);
        let root = &line["_aws"]["CloudWatchMetrics"][0];
        for name in root["Dimensions"][0].as_array().unwrap() {
            assert!(line[name.as_str().unwrap()].is_string(), "{name}");
        }
        for metric in root["Metrics"].as_array().unwrap() {
            assert!(line[metric["Name"].as_str().unwrap()].is_number(), "{metric}");
        }
        assert_eq!(line["code"], "upstream_timeout", "a property, not a dimension");
    }

    #[test]
    fn samples_are_capped_at_one_hundred() {
        let values: Vec<f64> = (0..150).map(f64::from).collect();
        let line = MetricSet::new("verify")
            .millis_samples("UpstreamLatency", &values)
            .to_json(0);
        assert_eq!(line["UpstreamLatency"].as_array().unwrap().len(), MAX_VALUES);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
    }

    #[test]
    fn counts_are_whole_numbers() {
        let line = MetricSet::new("verify")
            .count("Checked", 10_000)
            .count("Errors", 0)
            .to_json(0);
        assert_eq!(
            (line["Checked"].as_u64(), line["Errors"].as_u64()),
            (Some(10_000), Some(0))
        );
        assert!(!line.to_string().contains('\n'), "one line");
    }

    #[test]
    fn latency_samples_keep_at_most_a_hundred() {
        let mut samples = LatencySamples::new("verify");
        for _ in 0..250 {
            samples.record(Duration::from_millis(20));
            assert!(samples.values.len() < MAX_VALUES);
        }
        assert_eq!(samples.values.len(), 50);
        samples.flush();
        assert!(samples.values.is_empty());
    }
}
