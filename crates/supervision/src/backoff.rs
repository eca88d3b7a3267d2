//! The restart-with-backoff policy: the delay before a failed unit starts again doubles
//! with each consecutive failure, up to a cap, so a crash loop cannot spin the CPU; a unit
//! that ended cleanly (or ran long enough) starts from the first delay again.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A unit that has not failed for this long counts as healthy again: its next failure
/// waits the first delay.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Exponential backoff: `first`, `2 × first`, `4 × first`, ... capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first restart.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// Bucket shards: 10 ms, 20 ms, ... capped at 1.28 s (a shard restarts empty, so fast).
    pub const BUCKET_SHARD: Backoff = Backoff::new(Duration::from_millis(10), 7);
    /// Evaluation actors: 100 ms, 200 ms, ... capped at 12.8 s (each restart reloads a
    /// checkpoint and calls providers again).
    pub const EVALUATION: Backoff = Backoff::new(Duration::from_millis(100), 7);
    /// Node tasks (voters, actor link, handoff, member events): 100 ms ... 12.8 s.
    pub const TASK: Backoff = Backoff::new(Duration::from_millis(100), 7);

    /// A backoff starting at `first` that doubles at most `doublings` times.
    pub const fn new(first: Duration, doublings: u32) -> Backoff {
        let factor = 1u32 << if doublings > 16 { 16 } else { doublings };
        Backoff {
            first,
            max: first.saturating_mul(factor),
        }
    }

    /// The delay before restart number `n` in a row (1 for the first failure).
    pub fn delay(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.first
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// Consecutive failures per unit (shard index, evaluation id, ...), read as backoff delays.
#[derive(Debug, Clone)]
pub struct Restarts<K> {
    backoff: Backoff,
    /// Failures in a row, and when the last one was.
    failures: HashMap<K, (u32, Instant)>,
}

impl<K: Hash + Eq> Restarts<K> {
    /// No failures yet.
    pub fn new(backoff: Backoff) -> Restarts<K> {
        Restarts {
            backoff,
            failures: HashMap::new(),
        }
    }

    /// Counts a failure of `unit` now; returns how many in a row it has had and the
    /// delay before it starts again.
    pub fn failed(&mut self, unit: K) -> (u32, Duration) {
        self.failed_at(unit, Instant::now())
    }

    /// Counts a failure of `unit` at `now`. Failures more than [`HEALTHY_RUN`] apart are
    /// not "in a row": the count starts again.
    pub fn failed_at(&mut self, unit: K, now: Instant) -> (u32, Duration) {
        let (n, last) = self.failures.entry(unit).or_insert((0, now));
        if now.saturating_duration_since(*last) >= HEALTHY_RUN {
            *n = 0;
        }
        *n = n.saturating_add(1);
        *last = now;
        (*n, self.backoff.delay(*n))
    }

    /// `unit` ended cleanly: its next failure waits the first delay again.
    pub fn succeeded(&mut self, unit: &K) {
        self.failures.remove(unit);
    }

    /// Failures in a row of `unit`.
    pub fn failures(&self, unit: &K) -> u32 {
        self.failures.get(unit).map_or(0, |(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_named_policies_keep_the_delays_the_supervisors_had() {
        let ms = |b: Backoff, n| b.delay(n).as_millis();
        assert_eq!(
            (1..=9)
                .map(|n| ms(Backoff::BUCKET_SHARD, n))
                .collect::<Vec<_>>(),
            [10, 20, 40, 80, 160, 320, 640, 1280, 1280]
        );
        assert_eq!(ms(Backoff::EVALUATION, 1), 100);
        assert_eq!(ms(Backoff::EVALUATION, 8), 12_800);
        assert_eq!(ms(Backoff::EVALUATION, 1000), 12_800);
    }

    #[test]
    fn a_clean_end_resets_the_delay() {
        let mut r = Restarts::new(Backoff::BUCKET_SHARD);
        assert_eq!(r.failed(3), (1, Duration::from_millis(10)));
        assert_eq!(r.failed(3), (2, Duration::from_millis(20)));
        assert_eq!(r.failed(4), (1, Duration::from_millis(10)));
        r.succeeded(&3);
        assert_eq!(r.failures(&3), 0);
        assert_eq!(r.failed(3), (1, Duration::from_millis(10)));
    }

    #[test]
    fn failures_far_apart_are_not_in_a_row() {
        let mut r = Restarts::new(Backoff::BUCKET_SHARD);
        let t0 = Instant::now();
        assert_eq!(r.failed_at(1, t0).0, 1);
        assert_eq!(r.failed_at(1, t0 + Duration::from_secs(1)).0, 2);
        assert_eq!(r.failed_at(1, t0 + Duration::from_secs(59)).0, 3);
        let later = t0 + Duration::from_secs(59) + HEALTHY_RUN;
        assert_eq!(r.failed_at(1, later), (1, Duration::from_millis(10)));
    }

    proptest! {
        #[test]
        fn delays_grow_and_stay_within_bounds(first_ms in 1u64..10_000, doublings in 0u32..20, n in 1u32..u32::MAX) {
            let b = Backoff::new(Duration::from_millis(first_ms), doublings);
            let d = b.delay(n);
            prop_assert!(d >= b.first && d <= b.max);
            prop_assert!(b.delay(n.saturating_add(1)) >= d);
            if n <= 20 {
                prop_assert_eq!(d, (b.first * (1u32 << (n - 1))).min(b.max));
            }
        }
    }
}
