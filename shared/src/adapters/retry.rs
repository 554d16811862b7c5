//! When to try an upstream call again, and how long to wait first.
//!
//! Exponential backoff with full jitter (a random wait between zero and the exponential step),
//! so that many functions retrying together do not hit a recovering service in lockstep.
//! A server's `Retry-After` wins over the backoff, up to a cap.

use std::time::{Duration, SystemTime};

use super::http::HttpSettings;

/// Statuses that say "not now": the request was not processed and the same one can succeed later.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The wait before retry number `retry` (1 for the first retry): uniform in
/// `[0, min(max, base * 2^(retry-1))]`.
pub(crate) fn full_jitter(settings: &HttpSettings, retry: u32) -> Duration {
    let step = exponential_step(settings, retry);
    let nanos = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

fn exponential_step(settings: &HttpSettings, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    settings.base_delay.saturating_mul(factor).min(settings.max_delay)
}

/// What a `Retry-After` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryAfter {
    /// Wait this long (already clamped at zero for dates in the past).
    Wait(Duration),
    /// The header was present but is neither delay-seconds nor an HTTP date.
    Unparseable,
}

/// Parses `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> RetryAfter {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return RetryAfter::Wait(Duration::from_secs(seconds));
    }
    match httpdate::parse_http_date(value) {
        Ok(when) => RetryAfter::Wait(when.duration_since(now).unwrap_or(Duration::ZERO)),
        Err(_) => RetryAfter::Unparseable,
    }
}

/// The wait before the next attempt: the server's `Retry-After` when it gave a usable one,
/// else full-jitter backoff. `None` when the server asks for more than the cap: waiting that
/// long would only burn the budget, so the caller gives up and reports the service unavailable.
pub(crate) fn next_delay(settings: &HttpSettings, retry: u32, retry_after: Option<&str>) -> Option<Duration> {
    match retry_after.map(|v| parse_retry_after(v, SystemTime::now())) {
        Some(RetryAfter::Wait(wait)) if wait > settings.retry_after_cap => None,
        Some(RetryAfter::Wait(wait)) => Some(wait),
        Some(RetryAfter::Unparseable) | None => Some(full_jitter(settings, retry)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HttpSettings {
        HttpSettings {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..HttpSettings::default()
        }
    }

    #[test]
    fn retryable_statuses_are_exactly_the_transient_ones() {
        for s in [429, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 422, 500, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn jitter_stays_within_the_exponential_step() {
        let s = settings();
        for retry in 1..=8 {
            let bound = exponential_step(&s, retry);
            for _ in 0..200 {
                assert!(full_jitter(&s, retry) <= bound);
            }
        }
        assert_eq!(exponential_step(&s, 1), Duration::from_millis(100));
        assert_eq!(exponential_step(&s, 3), Duration::from_millis(400));
        assert_eq!(
            exponential_step(&s, 10),
            Duration::from_secs(1),
            "capped at max_delay"
        );
        assert_eq!(exponential_step(&s, 100), Duration::from_secs(1), "no overflow");
    }

    #[test]
    fn jitter_is_actually_random() {
        let s = settings();
        let samples: std::collections::HashSet<_> = (0..50).map(|_| full_jitter(&s, 3)).collect();
        assert!(samples.len() > 10);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("3", now),
            RetryAfter::Wait(Duration::from_secs(3))
        );
        assert_eq!(parse_retry_after(" 0 ", now), RetryAfter::Wait(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&later, now),
            RetryAfter::Wait(Duration::from_secs(7))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), RetryAfter::Wait(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), RetryAfter::Unparseable);
        assert_eq!(parse_retry_after("-1", now), RetryAfter::Unparseable);
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let s = HttpSettings {
            retry_after_cap: Duration::from_secs(5),
            ..settings()
        };
        assert_eq!(next_delay(&s, 1, Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(next_delay(&s, 1, Some("60")), None);
        assert!(next_delay(&s, 1, Some("garbage")).unwrap() <= Duration::from_millis(100));
        assert!(next_delay(&s, 2, None).unwrap() <= Duration::from_millis(200));
    }
}
