//! What a bucket allows: `limit` hits per `duration_ms`, with an optional burst.

use crate::{Algorithm, LimitError};
use serde::{Deserialize, Serialize};

/// A limit as a caller states it: `limit` hits per `duration_ms`, with an optional
/// `burst`.
///
/// What `burst` means depends on the algorithm:
/// - token bucket: the bucket's capacity (default `limit`); it refills at `limit`
///   per `duration_ms`. A burst below `limit` is allowed and smooths traffic.
/// - leaky bucket: the bucket's capacity (default `limit`); it drains at `limit`
///   per `duration_ms`.
/// - sliding window: not applicable; only `None` or `Some(limit)` are accepted
///   ([`LimitError::BurstNotSupported`] otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limit {
    /// Hits allowed per `duration_ms` (the refill or drain rate, or the window's cap).
    pub limit: u64,
    /// Length of the period in milliseconds.
    pub duration_ms: u64,
    /// Capacity of a token or leaky bucket; `None` means `limit`. Always written (as
    /// nil when absent) so positional encodings stay aligned; optional when read.
    #[serde(default)]
    pub burst: Option<u64>,
}

impl Limit {
    /// A limit of `limit` hits per `duration_ms` without a burst.
    pub fn new(limit: u64, duration_ms: u64) -> Self {
        Limit {
            limit,
            duration_ms,
            burst: None,
        }
    }

    /// The same limit with the given burst.
    pub fn with_burst(self, burst: u64) -> Self {
        Limit {
            burst: Some(burst),
            ..self
        }
    }

    /// Checks that `algorithm` can enforce this limit.
    pub fn validate(&self, algorithm: Algorithm) -> Result<(), LimitError> {
        if self.limit == 0 {
            return Err(LimitError::ZeroLimit);
        }
        if self.duration_ms == 0 {
            return Err(LimitError::ZeroDuration);
        }
        match (algorithm, self.burst) {
            (_, Some(0)) => Err(LimitError::ZeroBurst),
            (Algorithm::SlidingWindow, Some(b)) if b != self.limit => {
                Err(LimitError::BurstNotSupported)
            }
            _ => Ok(()),
        }
    }

    /// The most hits the bucket can hold at once: `burst`, or `limit` without one.
    /// For a sliding window (which has no burst once validated) this is `limit`.
    pub fn capacity(&self) -> u64 {
        self.burst.unwrap_or(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (Limit::new(0, 1000), Algorithm::TokenBucket, "limit"),
            (Limit::new(10, 0), Algorithm::LeakyBucket, "duration_ms"),
            (
                Limit::new(10, 1000).with_burst(0),
                Algorithm::TokenBucket,
                "burst",
            ),
            (
                Limit::new(10, 1000).with_burst(20),
                Algorithm::SlidingWindow,
                "burst",
            ),
        ];
        for (limit, algo, field) in cases {
            assert_eq!(limit.validate(algo).unwrap_err().field(), field);
        }
    }

    #[test]
    fn burst_is_a_capacity_for_buckets_and_must_match_for_windows() {
        let l = Limit::new(10, 1000).with_burst(3);
        assert!(l.validate(Algorithm::TokenBucket).is_ok());
        assert!(l.validate(Algorithm::LeakyBucket).is_ok());
        assert_eq!(l.capacity(), 3);
        assert_eq!(
            l.validate(Algorithm::SlidingWindow),
            Err(LimitError::BurstNotSupported)
        );
        let same = Limit::new(10, 1000).with_burst(10);
        assert!(same.validate(Algorithm::SlidingWindow).is_ok());
        assert_eq!(Limit::new(10, 1000).capacity(), 10);
    }
}
