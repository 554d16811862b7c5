//! Configuration from the environment, checked once at start-up.
//!
//! Base URLs come only from here, never from a request, so a caller cannot point the function
//! (and the grower's tokens) at a host of its choosing.

use std::time::Duration;

use crate::adapters::base_url::BaseUrl;
pub(crate) use crate::adapters::http::HttpSettings;
use crate::adapters::tls_roots::TlsRoots;

pub(crate) const DEFAULT_STARA_BASE_URL: &str = "https://v2apitelemetria.telemetriastara.com.br";
pub(crate) const DEFAULT_LEAF_BASE_URL: &str = "https://api.withleaf.io";
pub(crate) const DEFAULT_STARA_SECRET_PREFIX: &str = "stara-connect/growers/";

/// A configuration value that is missing or wrong; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {variable}: {problem}")]
pub struct ConfigError {
    pub(crate) variable: &'static str,
    pub(crate) problem: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) stara_base_url: BaseUrl,
    pub(crate) leaf_base_url: BaseUrl,
    /// Secret holding `{"username","password"}` of the Leaf API owner.
    pub(crate) leaf_secret_id: String,
    /// Secret `<prefix><leafUserId>` holds the grower's `{"login","password"}`.
    pub(crate) stara_secret_prefix: String,
    /// Secret holding `{"secret"}`, the key Leaf signs its alerts with (verify only).
    pub(crate) leaf_webhook_secret_id: Option<String>,
    pub(crate) secret_cache_ttl: Duration,
    pub(crate) http: HttpSettings,
    /// How many distinct growers of one SQS batch are connected at the same time.
    pub(crate) batch_concurrency: usize,
    /// Leaf HTTP requests per second of this process, every attempt counted (`LEAF_MAX_RPS`);
    /// `None`: no limit, but a 429 still pauses every Leaf call (`adapters::rate_limit`).
    pub(crate) leaf_max_rps: Option<u32>,
}

impl Config {
    /// Reads the process environment.
    pub(crate) fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let defaults = HttpSettings::default();
        let http = HttpSettings {
            request_timeout: millis(&get, "HTTP_TIMEOUT_MS", defaults.request_timeout)?,
            budget: millis(&get, "UPSTREAM_BUDGET_MS", defaults.budget)?,
            max_attempts: number(&get, "RETRY_MAX_ATTEMPTS", defaults.max_attempts, 1, 10)?,
            base_delay: millis(&get, "RETRY_BASE_DELAY_MS", defaults.base_delay)?,
            max_delay: millis(&get, "RETRY_MAX_DELAY_MS", defaults.max_delay)?,
            retry_after_cap: millis(&get, "RETRY_AFTER_CAP_MS", defaults.retry_after_cap)?,
            roots: tls_roots(&get)?,
        };
        if http.request_timeout > http.budget {
            return Err(ConfigError {
                variable: "HTTP_TIMEOUT_MS",
                problem: "must not exceed UPSTREAM_BUDGET_MS".into(),
            });
        }
        Ok(Self {
            stara_base_url: base_url(&get, "STARA_BASE_URL", DEFAULT_STARA_BASE_URL)?,
            leaf_base_url: base_url(&get, "LEAF_BASE_URL", DEFAULT_LEAF_BASE_URL)?,
            leaf_secret_id: get("LEAF_SECRET_ID").ok_or(ConfigError {
                variable: "LEAF_SECRET_ID",
                problem: "is required: the name or ARN of the secret holding the Leaf API owner's \
                          {\"username\",\"password\"}"
                    .into(),
            })?,
            stara_secret_prefix: get("STARA_SECRET_PREFIX")
                .unwrap_or_else(|| DEFAULT_STARA_SECRET_PREFIX.to_owned()),
            leaf_webhook_secret_id: get("LEAF_WEBHOOK_SECRET_ID"),
            secret_cache_ttl: Duration::from_secs(u64::from(number(
                &get,
                "SECRET_CACHE_TTL_SECS",
                300u32,
                0,
                86_400,
            )?)),
            http,
            // 10 is the largest batch a FIFO queue delivers: a full batch runs in one wave.
            batch_concurrency: number(&get, "BATCH_CONCURRENCY", 10u32, 1, 100)? as usize,
            // Checked only when set: unset (or empty) means no limit.
            leaf_max_rps: match get("LEAF_MAX_RPS") {
                Some(_) => Some(number(&get, "LEAF_MAX_RPS", 0, 1, 100_000)?),
                None => None,
            },
        })
    }
}

pub(super) fn switch(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" => Ok(true),
        "false" | "0" | "off" => Ok(false),
        _ => Err(ConfigError {
            variable,
            problem: "must be true, false, 1, 0, on or off".into(),
        }),
    }
}

fn base_url(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<BaseUrl, ConfigError> {
    let value = get(variable).unwrap_or_else(|| default.to_owned());
    let url = reqwest::Url::parse(&value).map_err(|e| ConfigError {
        variable,
        problem: format!("not a URL ({e})"),
    })?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    // Logins and tokens go to these hosts: plain HTTP only to this machine (the local bed, the demo).
    match (url.scheme(), url.host_str()) {
        (_, None) => {
            return Err(ConfigError {
                variable,
                problem: "must be an https URL with a host".into(),
            });
        }
        ("https", _) => {}
        ("http", _) if loopback => {}
        _ => {
            return Err(ConfigError {
                variable,
                problem: "must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)".into(),
            });
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError {
            variable,
            problem: "must not have a query or fragment".into(),
        });
    }
    BaseUrl::parse(&value).map_err(|e| ConfigError {
        variable,
        problem: format!("not a base URL ({})", e.0),
    })
}

/// `TLS_ROOTS`: `bundled` (the default: roots compiled in) or `system` (the image's CA bundle).
fn tls_roots(get: &impl Fn(&str) -> Option<String>) -> Result<TlsRoots, ConfigError> {
    match get("TLS_ROOTS") {
        None => Ok(TlsRoots::default()),
        Some(raw) => TlsRoots::parse(&raw).ok_or(ConfigError {
            variable: "TLS_ROOTS",
            problem: "must be bundled (roots compiled in) or system (the system's CA bundle)".into(),
        }),
    }
}

fn millis(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let default_ms = u32::try_from(default.as_millis()).unwrap_or(u32::MAX);
    number(get, variable, default_ms, 1, 900_000).map(|ms| Duration::from_millis(u64::from(ms)))
}

pub(super) fn number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    match raw.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError {
            variable,
            problem: format!("must be a whole number from {min} to {max}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_leaf_secret_is_given() {
        let c = config(&[("LEAF_SECRET_ID", "leaf-owner")]).unwrap();
        assert_eq!(c.stara_base_url.as_str(), DEFAULT_STARA_BASE_URL);
        assert_eq!(c.leaf_base_url.as_str(), DEFAULT_LEAF_BASE_URL);
        assert_eq!(c.stara_secret_prefix, "stara-connect/growers/");
        assert_eq!(c.secret_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.http, HttpSettings::default());
        assert_eq!(c.http.roots, TlsRoots::Bundled);
        assert_eq!(c.leaf_max_rps, None, "no Leaf rate limit unless asked for");
        let system = config(&[("LEAF_SECRET_ID", "s"), ("TLS_ROOTS", "System")]).unwrap();
        assert_eq!(system.http.roots, TlsRoots::System);
    }

    #[test]
    fn a_missing_leaf_secret_is_named() {
        let err = config(&[]).unwrap_err();
        assert_eq!(err.variable, "LEAF_SECRET_ID");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("STARA_BASE_URL", "ftp://x"),
            ("STARA_BASE_URL", "http://stara.example.com"),
            ("LEAF_BASE_URL", "http://10.0.0.1:8080"),
            ("LEAF_BASE_URL", "http://127.0.0.1.example.com"),
            ("LEAF_BASE_URL", "not a url"),
            ("LEAF_BASE_URL", "https://x/?a=b"),
            ("HTTP_TIMEOUT_MS", "ten"),
            ("RETRY_MAX_ATTEMPTS", "0"),
            ("SECRET_CACHE_TTL_SECS", "-1"),
            ("BATCH_CONCURRENCY", "1000"),
            ("TLS_ROOTS", "native"),
            ("LEAF_MAX_RPS", "0"),
            ("LEAF_MAX_RPS", "100001"),
            ("LEAF_MAX_RPS", "2.5"),
            ("LEAF_MAX_RPS", "-1"),
        ];
        for (variable, value) in cases {
            let err = config(&[("LEAF_SECRET_ID", "s"), (variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }

    #[test]
    fn leaf_max_rps_is_a_whole_number_or_nothing() {
        for (value, expected) in [
            ("", None),
            (" 7 ", Some(7)),
            ("1", Some(1)),
            ("100000", Some(100_000)),
        ] {
            let c = config(&[("LEAF_SECRET_ID", "s"), ("LEAF_MAX_RPS", value)]).unwrap();
            assert_eq!(c.leaf_max_rps, expected, "{value:?}");
        }
    }

    #[test]
    fn timeout_must_fit_in_the_budget() {
        let err = config(&[
            ("LEAF_SECRET_ID", "s"),
            ("HTTP_TIMEOUT_MS", "5000"),
            ("UPSTREAM_BUDGET_MS", "1000"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "HTTP_TIMEOUT_MS");
    }

    #[test]
    fn trailing_slashes_are_trimmed() {
        let c = config(&[("LEAF_SECRET_ID", "s"), ("LEAF_BASE_URL", "http://127.0.0.1:9/")]).unwrap();
        assert_eq!(c.leaf_base_url.as_str(), "http://127.0.0.1:9");
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        for url in [
            "https://api.withleaf.io",
            "http://127.0.0.1:9",
            "http://[::1]:9",
            "http://localhost:9",
        ] {
            let c = config(&[("LEAF_SECRET_ID", "s"), ("LEAF_BASE_URL", url)]).unwrap();
            assert_eq!(c.leaf_base_url.as_str(), url);
        }
        let err = config(&[
            ("LEAF_SECRET_ID", "s"),
            ("STARA_BASE_URL", "http://stara.example.com"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("STARA_BASE_URL") && err.to_string().contains("https://"),
            "{err}"
        );
    }
}
