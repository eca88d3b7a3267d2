//! When to retry and how long to wait: the [`RetryPolicy`], exponential backoff with
//! jitter ([`backoff`]), `Retry-After` parsing ([`parse_retry_after`]) and which HTTP
//! statuses are worth another attempt ([`status_is_retryable`]). All pure: randomness
//! and the clock are passed in.

use crate::error::{param, ConfigError};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// How many times to retry a call and how long to wait between attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt: at most `max_retries + 1` attempts per call.
    pub max_retries: u32,
    /// Backoff before the first retry, in milliseconds; doubles with each retry.
    pub base_ms: u64,
    /// Upper bound of one backoff, in milliseconds.
    pub cap_ms: u64,
    /// Longest `Retry-After` the client waits; a provider asking for more ends the call
    /// (retryable) so the evaluation can reschedule instead of holding a slot.
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_ms: 500,
            cap_ms: 30_000,
            max_retry_after_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// A policy with `max_retries` retries and the given base and cap.
    pub fn new(max_retries: u32, base: Duration, cap: Duration) -> Self {
        Self {
            max_retries,
            base_ms: millis(base),
            cap_ms: millis(cap),
            ..Self::default()
        }
    }

    /// Sets the longest `Retry-After` honoured.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after_ms = millis(max);
        self
    }

    /// Most attempts a call makes.
    pub fn max_attempts(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// Checks the policy makes sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cap_ms < self.base_ms {
            return Err(param("retry.cap_ms", "must be at least retry.base_ms"));
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The wait before retry number `retry` (0 = the first retry), "equal jitter":
/// `d = min(cap, base * 2^retry)`, wait `d/2 + u * d/2` for `u` in `[0, 1)`. Half of
/// the wait is guaranteed so clients that failed together still spread out but never
/// hammer the provider with near-zero waits (full jitter can draw 0).
pub fn backoff(policy: &RetryPolicy, retry: u32, unit: f64) -> Duration {
    let factor = 1u64.checked_shl(retry.min(63)).unwrap_or(u64::MAX);
    let d = policy.base_ms.saturating_mul(factor).min(policy.cap_ms);
    let half = d / 2;
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // `d - half` covers odd `d`; truncation keeps the wait within the cap.
    let jitter = ((d - half) as f64 * unit) as u64;
    Duration::from_millis(half + jitter.min(d - half))
}

/// Parses a `Retry-After` value: delta-seconds (`"120"`) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, relative to `now`; a past date means 0).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate rather than fail: they mean "a long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses OpenAI's `retry-after-ms` (milliseconds, possibly fractional), which it sends
/// alongside `Retry-After` with finer resolution.
pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let ms: f64 = value.trim().parse().ok()?;
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
}

/// Whether an HTTP error status is worth another attempt: 408 (request timeout),
/// 409 (conflict, e.g. a lock), 429 (rate limited; the `insufficient_quota` case is
/// decided from the body) and all 5xx. Other 4xx are the caller's mistake.
pub fn status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: u64, cap: u64) -> RetryPolicy {
        RetryPolicy::new(5, Duration::from_millis(base), Duration::from_millis(cap))
    }

    #[test]
    fn backoff_doubles_and_stays_within_half_and_full() {
        let p = policy(100, 10_000);
        for (retry, d) in [(0, 100), (1, 200), (2, 400), (3, 800)] {
            assert_eq!(backoff(&p, retry, 0.0), Duration::from_millis(d / 2));
            assert_eq!(backoff(&p, retry, 0.999_999), Duration::from_millis(d - 1));
            let mid = backoff(&p, retry, 0.5);
            assert!(mid >= Duration::from_millis(d / 2) && mid <= Duration::from_millis(d));
        }
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        let p = policy(100, 1_000);
        assert_eq!(backoff(&p, 10, 1.0), Duration::from_millis(1_000));
        assert_eq!(backoff(&p, u32::MAX, 1.0), Duration::from_millis(1_000));
        assert_eq!(backoff(&p, 63, 0.0), Duration::from_millis(500));
        let huge = RetryPolicy::new(3, Duration::from_secs(u64::MAX / 1000), Duration::MAX);
        assert!(backoff(&huge, 40, 1.0) > Duration::ZERO);
    }

    #[test]
    fn backoff_tolerates_bad_jitter_values() {
        let p = policy(100, 1_000);
        assert_eq!(backoff(&p, 0, f64::NAN), Duration::from_millis(50));
        assert_eq!(backoff(&p, 0, -3.0), Duration::from_millis(50));
        assert_eq!(backoff(&p, 0, 7.0), Duration::from_millis(100));
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete RFC 850 and asctime forms are valid HTTP-dates too.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:10 2015", now),
            Some(Duration::from_secs(10))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Wed, 32 Oct 2015 07:00:00 GMT", now),
            None
        );
    }

    #[test]
    fn retry_after_ms() {
        assert_eq!(
            parse_retry_after_ms("250"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after_ms("0.5"),
            Some(Duration::from_micros(500))
        );
        assert_eq!(parse_retry_after_ms("-1"), None);
        assert_eq!(parse_retry_after_ms("NaN"), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 409, 429, 500, 502, 503, 504, 599] {
            assert!(status_is_retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422, 301] {
            assert!(!status_is_retryable(s), "{s}");
        }
    }

    #[test]
    fn policy_validation_and_serde_defaults() {
        assert!(policy(100, 50).validate().is_err());
        let p: RetryPolicy = serde_json::from_str(r#"{"max_retries": 1}"#).unwrap();
        assert_eq!(p.max_attempts(), 2);
        assert_eq!(p.base_ms, RetryPolicy::default().base_ms);
    }
}
