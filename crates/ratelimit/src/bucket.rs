//! One rate-limit bucket's state, whatever its algorithm, and the check on it.

use crate::{
    Algorithm, Decision, LeakyBucketState, Limit, LimitError, SlidingWindowState, TokenBucketState,
};
use serde::{Deserialize, Serialize};

/// The state of one bucket: what the Bucket actor keeps in memory, hands to the new
/// owner on a graceful ownership change, and replicates to the next owner.
///
/// Serialized as a map with one key naming the algorithm (`token_bucket`,
/// `leaky_bucket`, `sliding_window`) whose value is a map of named fields, so it fits
/// Colony's versioned rmp-serde envelopes. A state carries the limit it was last
/// brought up to date under and its own clock, so any node continues it exactly.
///
/// Time: every call passes `now_ms`; the bucket never reads a clock. A `now_ms`
/// earlier than the bucket's clock (the latest `now_ms` of a hit) is taken as that
/// clock, so a node whose clock is behind the previous owner's cannot refill the
/// bucket twice; the guarantees hold on the bucket's own clock, and `reset_after_ms`
/// is still counted from the caller's `now_ms`.
///
/// Changes (a check with a different limit or algorithm for an existing bucket):
/// - same algorithm and duration, different `limit` or `burst`: hits in use stay in
///   use, the refill or drain rate and the capacity change from this moment on, and a
///   token or leaky bucket is clamped to its new capacity;
/// - same algorithm, different duration: the hits in use are kept (a fraction of a hit
///   rounds up), and a window re-files its count at `now_ms`;
/// - different algorithm: the hits in use (rounded up, capped at the new capacity)
///   become the new bucket's hits in use at `now_ms`.
///
/// A peek (`hits == 0`) reports what the bucket would look like under the requested
/// limit and algorithm, but changes nothing; a check with hits brings the state up to
/// date (and switches its limit) even when it is rejected, which changes no later
/// decision by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketState {
    /// See [`TokenBucketState`].
    TokenBucket(TokenBucketState),
    /// See [`LeakyBucketState`].
    LeakyBucket(LeakyBucketState),
    /// See [`SlidingWindowState`].
    SlidingWindow(SlidingWindowState),
}

impl BucketState {
    /// A new bucket at rest: a full token bucket, an empty leaky bucket or window.
    pub fn new(algorithm: Algorithm, limit: &Limit, now_ms: u64) -> Result<Self, LimitError> {
        limit.validate(algorithm)?;
        Ok(Self::with_used_hits(algorithm, limit, 0, now_ms))
    }

    fn with_used_hits(algorithm: Algorithm, limit: &Limit, hits: u64, now_ms: u64) -> Self {
        match algorithm {
            Algorithm::TokenBucket => {
                BucketState::TokenBucket(TokenBucketState::with_used_hits(limit, hits, now_ms))
            }
            Algorithm::LeakyBucket => {
                BucketState::LeakyBucket(LeakyBucketState::with_used_hits(limit, hits, now_ms))
            }
            Algorithm::SlidingWindow => {
                BucketState::SlidingWindow(SlidingWindowState::with_used_hits(limit, hits, now_ms))
            }
        }
    }

    /// The algorithm of this state.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            BucketState::TokenBucket(_) => Algorithm::TokenBucket,
            BucketState::LeakyBucket(_) => Algorithm::LeakyBucket,
            BucketState::SlidingWindow(_) => Algorithm::SlidingWindow,
        }
    }

    /// The limit the state was last brought up to date under.
    pub fn limit(&self) -> &Limit {
        match self {
            BucketState::TokenBucket(s) => s.limit(),
            BucketState::LeakyBucket(s) => s.limit(),
            BucketState::SlidingWindow(s) => s.limit(),
        }
    }

    /// The bucket's own clock: the latest `now_ms` a hit was checked at.
    pub fn updated_ms(&self) -> u64 {
        match self {
            BucketState::TokenBucket(s) => s.updated_ms(),
            BucketState::LeakyBucket(s) => s.updated_ms(),
            BucketState::SlidingWindow(s) => s.updated_ms(),
        }
    }

    /// Asks for `hits` under `limit` with `algorithm` at `now_ms`, Gubernator-style:
    /// the hits are admitted whole or not at all, a rejection consumes nothing, and
    /// `hits == 0` peeks without changing the state. Errors only for an invalid limit,
    /// and then the state is untouched.
    pub fn check(
        &mut self,
        algorithm: Algorithm,
        limit: &Limit,
        hits: u64,
        now_ms: u64,
    ) -> Result<Decision, LimitError> {
        if hits == 0 {
            return self.peek(algorithm, limit, now_ms);
        }
        limit.validate(algorithm)?;
        self.advance(algorithm, limit, now_ms);
        Ok(self.decide(hits, now_ms))
    }

    /// What a check of `hits == 0` answers, without needing `&mut`.
    pub fn peek(
        &self,
        algorithm: Algorithm,
        limit: &Limit,
        now_ms: u64,
    ) -> Result<Decision, LimitError> {
        limit.validate(algorithm)?;
        let mut copy = self.clone();
        copy.advance(algorithm, limit, now_ms);
        Ok(copy.decide(0, now_ms))
    }

    /// Hits the bucket would still admit at `now_ms` under its own limit (`u64::MAX` when
    /// the limit it carries is invalid: such a copy never wins [`Self::more_admitted`]).
    pub fn remaining_at(&self, now_ms: u64) -> u64 {
        self.peek(self.algorithm(), self.limit(), now_ms)
            .map_or(u64::MAX, |d| d.remaining)
    }

    /// Whether `other`, a copy of the same bucket, admitted more than `self` (fewer hits
    /// left at `now_ms`). Both are measured under the limit of the copy checked last: a
    /// bucket's limit may change between checks (bucket keys do not include it), and an
    /// older copy's smaller limit must not make it look fuller.
    pub fn behind(&self, other: &BucketState, now_ms: u64) -> bool {
        let newer = if other.updated_ms() > self.updated_ms() {
            other
        } else {
            self
        };
        let left = |s: &BucketState| {
            s.peek(newer.algorithm(), newer.limit(), now_ms)
                .map_or(u64::MAX, |d| d.remaining)
        };
        left(other) < left(self)
    }

    /// Of two copies of one bucket, the one that admitted more (see [`Self::behind`]);
    /// `self` on a tie. A copy that fell behind (a replica, a stalled node's) must not hand
    /// out again what the other one already admitted.
    pub fn more_admitted(self, other: BucketState, now_ms: u64) -> BucketState {
        if self.behind(&other, now_ms) {
            other
        } else {
            self
        }
    }

    /// True when the bucket, brought to `now_ms`, is at rest (as a new bucket would
    /// be): its owner may then drop it, and need not replicate it, without changing
    /// any decision.
    pub fn is_at_rest(&self, now_ms: u64) -> bool {
        let mut copy = self.clone();
        let (algorithm, limit) = (copy.algorithm(), *copy.limit());
        copy.advance(algorithm, &limit, now_ms);
        match &copy {
            BucketState::TokenBucket(s) => s.is_at_rest(),
            BucketState::LeakyBucket(s) => s.is_at_rest(),
            BucketState::SlidingWindow(s) => s.is_at_rest(),
        }
    }

    /// Brings the state to `now_ms` under its own limit, then switches to `limit` and
    /// `algorithm` as the type documentation describes.
    fn advance(&mut self, algorithm: Algorithm, limit: &Limit, now_ms: u64) {
        if self.algorithm() != algorithm {
            let old = *self.limit();
            self.advance(self.algorithm(), &old, now_ms);
            let used = match self {
                BucketState::TokenBucket(s) => s.used_hits(),
                BucketState::LeakyBucket(s) => s.used_hits(),
                BucketState::SlidingWindow(s) => s.used_hits(),
            };
            *self = Self::with_used_hits(algorithm, limit, used, self.updated_ms());
            return;
        }
        match self {
            BucketState::TokenBucket(s) => s.advance(limit, now_ms),
            BucketState::LeakyBucket(s) => s.advance(limit, now_ms),
            BucketState::SlidingWindow(s) => s.advance(limit, now_ms),
        }
    }

    /// Decides at the bucket's clock and reports the wait from the caller's `now_ms`.
    fn decide(&mut self, hits: u64, now_ms: u64) -> Decision {
        let lag = self.updated_ms().saturating_sub(now_ms);
        let mut d = match self {
            BucketState::TokenBucket(s) => s.decide(hits),
            BucketState::LeakyBucket(s) => s.decide(hits),
            BucketState::SlidingWindow(s) => s.decide(hits),
        };
        d.reset_after_ms = d.reset_after_ms.saturating_add(lag);
        d
    }
}

/// Checks `hits` against the bucket in `state`, creating it on the first hit. A peek
/// (`hits == 0`) of a bucket that does not exist answers as a new bucket would and
/// leaves `state` at `None`. See [`BucketState::check`].
pub fn check(
    state: &mut Option<BucketState>,
    algorithm: Algorithm,
    limit: &Limit,
    hits: u64,
    now_ms: u64,
) -> Result<Decision, LimitError> {
    match state {
        Some(s) => s.check(algorithm, limit, hits, now_ms),
        None if hits == 0 => {
            BucketState::new(algorithm, limit, now_ms)?.peek(algorithm, limit, now_ms)
        }
        None => {
            let s = state.insert(BucketState::new(algorithm, limit, now_ms)?);
            s.check(algorithm, limit, hits, now_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn hit(
        s: &mut Option<BucketState>,
        algo: Algorithm,
        l: &Limit,
        hits: u64,
        now: u64,
    ) -> Decision {
        check(s, algo, l, hits, now).unwrap()
    }

    #[test]
    fn of_two_copies_the_one_that_admitted_more_wins() {
        for algo in Algorithm::ALL {
            let l = Limit::new(10, 60_000);
            let (mut behind, mut ahead) = (None, None);
            hit(&mut behind, algo, &l, 2, 0);
            hit(&mut ahead, algo, &l, 7, 0);
            let (behind, ahead) = (behind.unwrap(), ahead.unwrap());
            assert_eq!(behind.remaining_at(10), 8, "{algo}");
            assert_eq!(ahead.remaining_at(10), 3, "{algo}");
            assert_eq!(
                behind.clone().more_admitted(ahead.clone(), 10),
                ahead,
                "{algo}"
            );
            assert_eq!(
                ahead.clone().more_admitted(behind.clone(), 10),
                ahead,
                "{algo}"
            );
            // A tie keeps the first.
            assert_eq!(
                ahead.clone().more_admitted(ahead.clone(), 10),
                ahead,
                "{algo}"
            );
        }
    }

    #[test]
    fn copies_under_different_limits_are_compared_under_the_newer_limit() {
        // Attack review: a replica of 6 hits under 10/min (4 left) beat the live copy of
        // 995 hits under 1000/min (5 left), and the next check rescaled it to 6 used:
        // about 989 hits admitted again.
        for algo in Algorithm::ALL {
            let (mut old, mut live) = (None, None);
            hit(&mut old, algo, &Limit::new(10, 60_000), 6, 0);
            hit(&mut live, algo, &Limit::new(10, 60_000), 6, 0);
            hit(&mut live, algo, &Limit::new(1000, 60_000), 989, 50);
            let (old, live) = (old.unwrap(), live.unwrap());
            assert!(old.behind(&live, 60), "{algo}");
            assert!(!live.behind(&old, 60), "{algo}");
            assert_eq!(old.clone().more_admitted(live.clone(), 60), live, "{algo}");
            assert_eq!(live.clone().more_admitted(old, 60), live, "{algo}");
        }
    }

    #[test]
    fn gubernator_style_all_or_nothing() {
        for algo in Algorithm::ALL {
            let l = Limit::new(10, 1000);
            let mut s = None;
            let d = hit(&mut s, algo, &l, 7, 0);
            assert_eq!((d.status, d.remaining), (Status::UnderLimit, 3), "{algo}");
            let d = hit(&mut s, algo, &l, 4, 0);
            assert_eq!((d.status, d.remaining), (Status::OverLimit, 3), "{algo}");
            let d = hit(&mut s, algo, &l, 3, 0);
            assert_eq!((d.status, d.remaining), (Status::UnderLimit, 0), "{algo}");
        }
    }

    #[test]
    fn token_bucket_reset_times() {
        let l = Limit::new(10, 1000); // one token per 100 ms
        let mut s = None;
        let d = hit(&mut s, Algorithm::TokenBucket, &l, 10, 0);
        assert_eq!(d.reset_after_ms, 1000, "full again after a whole duration");
        let d = hit(&mut s, Algorithm::TokenBucket, &l, 3, 50);
        assert_eq!((d.status, d.reset_after_ms), (Status::OverLimit, 250));
        let d = hit(&mut s, Algorithm::TokenBucket, &l, 3, 300);
        assert_eq!((d.status, d.remaining), (Status::UnderLimit, 0));
        // Peek of an empty bucket: when one token is back.
        let d = hit(&mut s, Algorithm::TokenBucket, &l, 0, 300);
        assert_eq!((d.status, d.reset_after_ms), (Status::OverLimit, 100));
        // More than the capacity can never fit: wait until full, still over.
        let d = hit(&mut s, Algorithm::TokenBucket, &l, 11, 300);
        assert_eq!((d.status, d.reset_after_ms), (Status::OverLimit, 1000));
    }

    #[test]
    fn peek_of_a_missing_bucket_creates_nothing() {
        let mut s = None;
        let d = hit(&mut s, Algorithm::LeakyBucket, &Limit::new(5, 100), 0, 42);
        assert_eq!(
            (d.status, d.remaining, d.reset_after_ms),
            (Status::UnderLimit, 5, 0)
        );
        assert!(s.is_none());
    }

    #[test]
    fn invalid_limit_leaves_state_alone() {
        let l = Limit::new(5, 100);
        let mut s = None;
        hit(&mut s, Algorithm::SlidingWindow, &l, 2, 0);
        let before = s.clone();
        let bad = l.with_burst(9);
        assert_eq!(
            check(&mut s, Algorithm::SlidingWindow, &bad, 1, 10),
            Err(LimitError::BurstNotSupported)
        );
        assert_eq!(s, before);
    }

    #[test]
    fn a_clock_behind_the_bucket_refills_nothing() {
        let l = Limit::new(10, 1000);
        let mut s = None;
        hit(&mut s, Algorithm::TokenBucket, &l, 10, 5000);
        // A new owner whose clock is 200 ms behind: still empty, and told to wait
        // the 100 ms the bucket needs plus the 200 ms its clock lags.
        let d = hit(&mut s, Algorithm::TokenBucket, &l, 1, 4800);
        assert_eq!((d.status, d.reset_after_ms), (Status::OverLimit, 300));
        assert_eq!(s.as_ref().unwrap().updated_ms(), 5000);
    }

    #[test]
    fn limit_changes_keep_what_was_used() {
        let l = Limit::new(10, 1000);
        let mut s = None;
        hit(&mut s, Algorithm::TokenBucket, &l, 6, 0);
        // Upgrade to 100/s: the 6 used stay used, the other 94 are available at once.
        let up = Limit::new(100, 1000);
        let d = hit(&mut s, Algorithm::TokenBucket, &up, 1, 0);
        assert_eq!(d.remaining, 93);
        // Downgrade to 5/s: 7 used is more than the new capacity, so empty, not
        // over-full: one token per 200 ms from here.
        let down = Limit::new(5, 1000);
        let d = hit(&mut s, Algorithm::TokenBucket, &down, 1, 0);
        assert_eq!(
            (d.status, d.remaining, d.reset_after_ms),
            (Status::OverLimit, 0, 200)
        );
        // Switching algorithm carries the 5 used hits over to the window.
        let d = hit(&mut s, Algorithm::SlidingWindow, &Limit::new(8, 1000), 1, 0);
        assert_eq!((d.status, d.remaining), (Status::UnderLimit, 2));
        assert_eq!(s.as_ref().unwrap().algorithm(), Algorithm::SlidingWindow);
    }

    #[test]
    fn at_rest_means_a_new_bucket_would_answer_the_same() {
        let l = Limit::new(4, 400);
        for algo in Algorithm::ALL {
            let mut s = None;
            hit(&mut s, algo, &l, 1, 1000);
            let st = s.as_ref().unwrap();
            assert!(!st.is_at_rest(1000), "{algo}");
            // One hit leaks or refills in 100 ms; a window forgets it within 400+20 ms.
            assert!(st.is_at_rest(1000 + 420), "{algo}");
        }
    }

    #[test]
    fn a_bucket_of_the_longest_allowed_duration_comes_to_rest_within_it() {
        // The API refuses durations over `ratelimit.max_duration_ms` (1 day by default) so
        // that every bucket without a burst rests, and can be forgotten, within a day of
        // its last hit, however hard it was used; the arithmetic holds at any scale.
        const DAY: u64 = 86_400_000;
        let start = u64::MAX - 3 * DAY; // late clocks must not overflow either
        for limit in [1, 7, 1_000, u64::MAX] {
            let l = Limit::new(limit, DAY);
            for algo in Algorithm::ALL {
                let mut s = None;
                let d = hit(&mut s, algo, &l, limit, start);
                assert_eq!(d.status, Status::UnderLimit, "{algo} {limit}");
                assert!(d.reset_after_ms <= DAY + crate::sliding_window::sub_window_ms(DAY));
                let st = s.as_ref().unwrap();
                assert!(!st.is_at_rest(start), "{algo} {limit}");
                let rested = start + DAY + crate::sliding_window::sub_window_ms(DAY);
                assert!(st.is_at_rest(rested), "{algo} {limit}");
                // And a check at the far end of time neither panics nor wraps.
                let d = hit(&mut s, algo, &l, 1, u64::MAX);
                assert_eq!(d.status, Status::UnderLimit, "{algo} {limit}");
            }
        }
    }
}
