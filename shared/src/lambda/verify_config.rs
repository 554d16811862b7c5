//! What only the verify function reads from the environment.

use super::config::{ConfigError, number, switch};

/// What only the verify function reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyConfig {
    /// Growers checked at the same time in a scheduled run.
    pub(crate) concurrency: usize,
    /// The connect function's FIFO queue; without it, nothing is repaired.
    pub(crate) connect_queue_url: Option<String>,
    /// Whether broken and missing connections are sent to connect for repair.
    pub(crate) auto_repair: bool,
    /// A standard queue: when set, a scheduled run is fanned out over it (docs/VERIFY.md).
    pub(crate) verify_queue_url: Option<String>,
}

impl VerifyConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let connect_queue_url = match get("CONNECT_QUEUE_URL") {
            Some(url) => Some(queue_url("CONNECT_QUEUE_URL", url, true)?),
            None => None,
        };
        let verify_queue_url = match get("VERIFY_QUEUE_URL") {
            Some(url) => Some(queue_url("VERIFY_QUEUE_URL", url, false)?),
            None => None,
        };
        Ok(Self {
            concurrency: number(&get, "VERIFY_CONCURRENCY", 16, 1, 256)? as usize,
            connect_queue_url,
            auto_repair: switch(&get, "AUTO_REPAIR", true)?,
            verify_queue_url,
        })
    }

    /// Where repairs go, when repairing is on and there is somewhere to send them.
    pub(crate) fn repair_queue_url(&self) -> Option<&str> {
        self.connect_queue_url.as_deref().filter(|_| self.auto_repair)
    }
}

/// A queue's URL; `fifo` says which kind the variable needs.
pub(super) fn queue_url(variable: &'static str, value: String, fifo: bool) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(&value).map_err(|e| ConfigError {
        variable,
        problem: format!("not a URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError {
            variable,
            problem: "must be the queue's http(s) URL, not its name or ARN".into(),
        });
    }
    // Deduplication ids and message groups exist only on FIFO queues; the verify queue is a
    // standard one, so many consumers share a run without message groups in the way.
    match (fifo, url.path().ends_with(".fifo")) {
        (true, false) => Err(ConfigError {
            variable,
            problem: "must be a FIFO queue (its name ends in .fifo)".into(),
        }),
        (false, true) => Err(ConfigError {
            variable,
            problem: "must be a standard queue, not a FIFO one".into(),
        }),
        _ => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn verify_config(vars: &[(&str, &str)]) -> Result<VerifyConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        VerifyConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn verify_defaults_repair_nowhere_until_a_queue_is_given() {
        let c = verify_config(&[]).unwrap();
        assert_eq!(
            c,
            VerifyConfig {
                concurrency: 16,
                connect_queue_url: None,
                auto_repair: true,
                verify_queue_url: None,
            }
        );
        assert_eq!(c.repair_queue_url(), None);
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/stara-connect-requests.fifo";
        let c = verify_config(&[("CONNECT_QUEUE_URL", url), ("VERIFY_CONCURRENCY", "256")]).unwrap();
        assert_eq!((c.repair_queue_url(), c.concurrency), (Some(url), 256));
        for off in ["false", "0", "off", "OFF", " Off "] {
            let c = verify_config(&[("CONNECT_QUEUE_URL", url), ("AUTO_REPAIR", off)]).unwrap();
            assert_eq!(c.repair_queue_url(), None, "{off}");
        }
        for on in ["true", "1", "on", "TRUE"] {
            assert!(verify_config(&[("AUTO_REPAIR", on)]).unwrap().auto_repair, "{on}");
        }
    }

    #[test]
    fn the_verify_queue_is_a_standard_queue() {
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/stara-connect-verify";
        let c = verify_config(&[("VERIFY_QUEUE_URL", url)]).unwrap();
        assert_eq!(c.verify_queue_url.as_deref(), Some(url));
        let err = verify_config(&[("VERIFY_QUEUE_URL", "https://sqs.example.com/1/q.fifo")]).unwrap_err();
        assert_eq!(err.variable, "VERIFY_QUEUE_URL");
        assert!(err.problem.contains("standard"), "{err}");
    }

    #[test]
    fn bad_verify_values_name_their_variable() {
        let cases = [
            ("VERIFY_CONCURRENCY", "0"),
            ("VERIFY_CONCURRENCY", "257"),
            ("VERIFY_CONCURRENCY", "many"),
            ("AUTO_REPAIR", "yes please"),
            ("CONNECT_QUEUE_URL", "stara-connect-requests.fifo"),
            ("VERIFY_QUEUE_URL", "stara-connect-verify"),
            ("CONNECT_QUEUE_URL", "arn:aws:sqs:us-east-1:123456789012:q.fifo"),
            (
                "CONNECT_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/123456789012/standard-queue",
            ),
        ];
        for (variable, value) in cases {
            let err = verify_config(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }
}
