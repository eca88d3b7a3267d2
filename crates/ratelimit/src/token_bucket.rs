//! The token bucket's state: tokens left, refilled continuously.

use crate::meter::Meter;
use crate::{Decision, Limit};
use serde::{Deserialize, Serialize};

/// A token bucket: `tokens + tokens_frac / duration_ms` tokens were in it at
/// `updated_ms`; it refills at `limit` per `duration_ms` up to `burst` (default
/// `limit`). A new bucket starts full.
///
/// The fraction is kept in units of `1 / duration_ms` of a token, so refill is exact
/// integer arithmetic (see the `meter` module) and a state copied to another node
/// continues exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucketState {
    /// The limit the state was last brought up to date under.
    limit: Limit,
    /// Whole tokens in the bucket at `updated_ms`.
    tokens: u64,
    /// A fraction of a token, in `1 / duration_ms` of a token (below `duration_ms`).
    tokens_frac: u64,
    /// The bucket's own clock: the latest `now_ms` a hit was checked at.
    updated_ms: u64,
}

impl TokenBucketState {
    /// A bucket with `hits` tokens missing (for a change of algorithm).
    pub(crate) fn with_used_hits(limit: &Limit, hits: u64, now_ms: u64) -> Self {
        let mut s = TokenBucketState {
            limit: *limit,
            tokens: 0,
            tokens_frac: 0,
            updated_ms: now_ms,
        };
        s.store(&Meter::with_used_hits(limit, hits));
        s
    }

    /// The limit the state was last brought up to date under.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// Whole tokens in the bucket at [`updated_ms`](Self::updated_ms).
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The bucket's own clock: the latest `now_ms` a hit was checked at.
    pub fn updated_ms(&self) -> u64 {
        self.updated_ms
    }

    fn meter(&self) -> Meter {
        let capacity = Meter::join(&self.limit, self.limit.capacity(), 0);
        let tokens = Meter::join(&self.limit, self.tokens, self.tokens_frac);
        Meter::new(&self.limit, capacity.saturating_sub(tokens))
    }

    fn store(&mut self, meter: &Meter) {
        (self.tokens, self.tokens_frac) = meter.free_parts();
    }

    /// Refills up to `now_ms` under the old limit, then switches to `limit`.
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

    /// Tokens missing, rounded up.
    pub(crate) fn used_hits(&self) -> u64 {
        self.meter().used_hits_ceil()
    }

    /// True when the bucket is full at `updated_ms`.
    pub(crate) fn is_at_rest(&self) -> bool {
        self.meter().used() == 0
    }
}
