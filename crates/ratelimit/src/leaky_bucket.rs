//! The leaky bucket's state: the water level, drained continuously.

use crate::meter::Meter;
use crate::{Decision, Limit};
use serde::{Deserialize, Serialize};

/// A leaky bucket: `level + level_frac / duration_ms` units of water were in it at
/// `updated_ms`; it leaks `limit` per `duration_ms` and holds at most `burst`
/// (default `limit`). Each admitted hit pours in one unit. A new bucket starts empty.
///
/// Same exact fixed-point arithmetic as the token bucket (see the `meter` module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakyBucketState {
    /// The limit the state was last brought up to date under.
    limit: Limit,
    /// Whole units of water in the bucket at `updated_ms`.
    level: u64,
    /// A fraction of a unit, in `1 / duration_ms` of a unit (below `duration_ms`).
    level_frac: u64,
    /// The bucket's own clock: the latest `now_ms` a hit was checked at.
    updated_ms: u64,
}

impl LeakyBucketState {
    /// A bucket holding `hits` units (for a change of algorithm).
    pub(crate) fn with_used_hits(limit: &Limit, hits: u64, now_ms: u64) -> Self {
        let mut s = LeakyBucketState {
            limit: *limit,
            level: 0,
            level_frac: 0,
            updated_ms: now_ms,
        };
        s.store(&Meter::with_used_hits(limit, hits));
        s
    }

    /// The limit the state was last brought up to date under.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// Whole units of water at [`updated_ms`](Self::updated_ms), rounded down.
    pub fn level(&self) -> u64 {
        self.level
    }

    /// The bucket's own clock: the latest `now_ms` a hit was checked at.
    pub fn updated_ms(&self) -> u64 {
        self.updated_ms
    }

    fn meter(&self) -> Meter {
        Meter::new(
            &self.limit,
            Meter::join(&self.limit, self.level, self.level_frac),
        )
    }

    fn store(&mut self, meter: &Meter) {
        (self.level, self.level_frac) = meter.used_parts();
    }

    /// Leaks up to `now_ms` under the old limit, then switches to `limit`.
    pub(crate) fn advance(&mut self, limit: &Limit, now_ms: u64) {
        let now = now_ms.max(self.updated_ms);
        let mut meter = self.meter();
        meter.drain(now.saturating_sub(self.updated_ms));
        let meter = meter.rescaled(limit);
        self.limit = *limit;
        self.updated_ms = now;
        self.store(&meter);
    }

    /// Decides `hits` at `updated_ms` (call [`advance`](Self::advance) first).
    pub(crate) fn decide(&mut self, hits: u64) -> Decision {
        let mut meter = self.meter();
        let d = meter.decide(hits, self.limit.limit);
        self.store(&meter);
        d
    }

    /// The water level, rounded up.
    pub(crate) fn used_hits(&self) -> u64 {
        self.meter().used_hits_ceil()
    }

    /// True when the bucket is empty at `updated_ms`.
    pub(crate) fn is_at_rest(&self) -> bool {
        self.meter().used() == 0
    }
}
