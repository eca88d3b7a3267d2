//! The sliding window's state: hit counts in fixed sub-windows.
//!
//! Why not the weighted two-window estimate (`prev * (1 - elapsed/duration) + cur`)
//! that Cloudflare and others use: it assumes the previous window's hits were spread
//! evenly, and when they all came at its end it admits up to twice the limit within
//! one window length. Colony promises "never more than `limit` in any window", so it
//! counts exactly, in [`SUB_WINDOWS`] sub-windows, and pays for the bounded memory by
//! forgetting a hit a little late rather than early:
//!
//! - sub-window `i` covers `[i * g, (i + 1) * g)` with `g = ceil(duration_ms / 20)`,
//!   aligned to time 0 so every node files a hit in the same sub-window;
//! - at time `t` the window counts every sub-window `i >= (t - duration_ms) / g`
//!   (integer division; all of them while `t < duration_ms`), which covers all of
//!   `[t - duration_ms, t]`;
//! - so a hit admitted at `s` is counted until `(s / g + 1) * g + duration_ms`:
//!   strictly more than `duration_ms`, and at most `duration_ms + g`, after `s`.
//!
//! Guarantees, for a bucket whose limit does not change:
//! 1. in every closed interval of length `duration_ms`, at most `limit` hits are
//!    admitted (take the last admission `t` in the interval: every hit in the
//!    interval was counted when `t` was checked, and the check kept the count within
//!    `limit`);
//! 2. a hit is rejected only if the hits admitted in `[t - duration_ms - g + 1, t]`
//!    plus the new hits exceed `limit`: the limiter is never stricter than a window
//!    `g - 1` ms longer.

use crate::{Decision, Limit, Status};
use serde::{Deserialize, Serialize};

/// How many sub-windows a window is cut into: more means hits are forgotten closer
/// to exactly `duration_ms` after they happened, fewer means less memory (a window
/// keeps at most `SUB_WINDOWS + 1` non-empty sub-windows).
pub const SUB_WINDOWS: u64 = 20;

/// Length in ms of one sub-window for a window of `duration_ms`:
/// `ceil(duration_ms / SUB_WINDOWS)`, at least 1.
pub fn sub_window_ms(duration_ms: u64) -> u64 {
    duration_ms.div_ceil(SUB_WINDOWS).max(1)
}

/// Hits admitted in one sub-window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The sub-window: it covers `[index * g, (index + 1) * g)` ms.
    pub index: u64,
    /// Hits admitted in it.
    pub count: u64,
}

/// A sliding window: the hits admitted in the sub-windows still counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlidingWindowState {
    /// The limit the state was last brought up to date under.
    limit: Limit,
    /// The bucket's own clock: the latest `now_ms` a hit was checked at.
    updated_ms: u64,
    /// Non-empty sub-windows in increasing `index` order.
    slots: Vec<Slot>,
}

impl SlidingWindowState {
    /// A window with `hits` counted as admitted at `now_ms` (for a change of
    /// algorithm or duration): conservative, as they are forgotten a full window later.
    pub(crate) fn with_used_hits(limit: &Limit, hits: u64, now_ms: u64) -> Self {
        let mut s = SlidingWindowState {
            limit: *limit,
            updated_ms: now_ms,
            slots: Vec::new(),
        };
        s.add(hits.min(limit.limit));
        s
    }

    /// The limit the state was last brought up to date under.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// The bucket's own clock: the latest `now_ms` a hit was checked at.
    pub fn updated_ms(&self) -> u64 {
        self.updated_ms
    }

    /// The non-empty sub-windows, oldest first (as of `updated_ms`).
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    fn slot_ms(&self) -> u64 {
        sub_window_ms(self.limit.duration_ms)
    }

    /// The oldest sub-window still counted at `now`.
    fn first_counted(&self, now: u64) -> u64 {
        now.saturating_sub(self.limit.duration_ms) / self.slot_ms()
    }

    /// When sub-window `index` stops being counted.
    fn expiry_ms(&self, index: u64) -> u64 {
        index
            .saturating_add(1)
            .saturating_mul(self.slot_ms())
            .saturating_add(self.limit.duration_ms)
    }

    /// Hits counted, as of `updated_ms`.
    fn count(&self) -> u64 {
        self.slots
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.count))
    }

    /// Files `hits` under the sub-window of `updated_ms`.
    fn add(&mut self, hits: u64) {
        if hits == 0 {
            return;
        }
        let index = self.updated_ms / self.slot_ms();
        // Usually the last slot or a push; a binary search keeps a state received
        // from a peer with a clock ahead of ours in order too.
        match self.slots.binary_search_by_key(&index, |s| s.index) {
            Ok(i) => self.slots[i].count = self.slots[i].count.saturating_add(hits),
            Err(i) => self.slots.insert(i, Slot { index, count: hits }),
        }
    }

    /// Drops sub-windows no longer counted at `updated_ms`, and repairs the order of a
    /// state that did not come from this code.
    fn prune(&mut self) {
        let first = self.first_counted(self.updated_ms);
        self.slots.retain(|s| s.index >= first && s.count > 0);
        if !self.slots.windows(2).all(|w| w[0].index < w[1].index) {
            self.slots.sort_by_key(|s| s.index);
            self.slots.dedup_by(|later, kept| {
                let same = later.index == kept.index;
                if same {
                    kept.count = kept.count.saturating_add(later.count);
                }
                same
            });
        }
    }

    /// Forgets what has left the window by `now_ms`, then switches to `limit`. A new
    /// `limit` with the same duration keeps every count (they may exceed the new limit:
    /// then nothing is admitted until enough are forgotten). A new duration cuts time
    /// differently, so the hits still counted are re-filed as one count at `now_ms`,
    /// capped at the new limit.
    pub(crate) fn advance(&mut self, limit: &Limit, now_ms: u64) {
        self.updated_ms = now_ms.max(self.updated_ms);
        self.prune();
        if limit.duration_ms != self.limit.duration_ms {
            let counted = self.count();
            *self = Self::with_used_hits(limit, counted, self.updated_ms);
        } else {
            self.limit = *limit;
        }
    }

    /// Milliseconds from `updated_ms` until at most `target` hits are counted.
    fn ms_until_count_at_most(&self, target: u64) -> u64 {
        let mut count = self.count();
        for s in &self.slots {
            if count <= target {
                break;
            }
            count = count.saturating_sub(s.count);
            if count <= target {
                return self.expiry_ms(s.index).saturating_sub(self.updated_ms);
            }
        }
        0
    }

    /// Decides `hits` at `updated_ms` (call [`advance`](Self::advance) first).
    pub(crate) fn decide(&mut self, hits: u64) -> Decision {
        let limit = self.limit.limit;
        let count = self.count();
        let (status, wait) = if hits == 0 {
            if count < limit {
                (Status::UnderLimit, self.ms_until_count_at_most(0))
            } else {
                (
                    Status::OverLimit,
                    self.ms_until_count_at_most(limit.saturating_sub(1)),
                )
            }
        } else {
            match count.checked_add(hits) {
                Some(after) if after <= limit => {
                    self.add(hits);
                    (Status::UnderLimit, self.ms_until_count_at_most(0))
                }
                _ if hits <= limit => (
                    Status::OverLimit,
                    self.ms_until_count_at_most(limit.saturating_sub(hits)),
                ),
                _ => (Status::OverLimit, self.ms_until_count_at_most(0)),
            }
        };
        Decision {
            status,
            limit,
            remaining: limit.saturating_sub(self.count()),
            reset_after_ms: wait,
        }
    }

    /// Hits counted (call [`advance`](Self::advance) first).
    pub(crate) fn used_hits(&self) -> u64 {
        self.count()
    }

    /// True when nothing is counted any more at `updated_ms`.
    pub(crate) fn is_at_rest(&self) -> bool {
        let first = self.first_counted(self.updated_ms);
        self.slots.iter().all(|s| s.index < first || s.count == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_windows_round_up_and_never_vanish() {
        assert_eq!(sub_window_ms(60_000), 3_000);
        assert_eq!(sub_window_ms(61), 4);
        assert_eq!(sub_window_ms(1), 1);
        assert_eq!(sub_window_ms(u64::MAX), u64::MAX / 20 + 1);
    }

    #[test]
    fn a_burst_at_a_window_edge_is_not_admitted_twice() {
        // The case the two-window estimate gets wrong: 10 hits at the end of one
        // window, then more right after the boundary.
        let limit = Limit::new(10, 1000);
        let mut w = SlidingWindowState::with_used_hits(&limit, 0, 0);
        w.advance(&limit, 999);
        assert!(w.decide(10).is_under_limit());
        for t in [1000, 1500, 1998] {
            w.advance(&limit, t);
            assert!(!w.decide(1).is_under_limit(), "t={t}");
        }
        // Sub-window 19 ([950, 1000)) expires at 1000 + 1000 = 2000.
        w.advance(&limit, 1999);
        let d = w.decide(1);
        assert_eq!((d.status, d.reset_after_ms), (Status::OverLimit, 1));
        w.advance(&limit, 2000);
        assert!(w.decide(10).is_under_limit());
    }

    #[test]
    fn a_state_from_elsewhere_is_put_back_in_order() {
        let limit = Limit::new(100, 1000);
        let mut w = SlidingWindowState {
            limit,
            updated_ms: 500,
            slots: vec![
                Slot { index: 9, count: 2 },
                Slot { index: 3, count: 1 },
                Slot { index: 9, count: 1 },
                Slot { index: 4, count: 0 },
            ],
        };
        w.advance(&limit, 500);
        assert_eq!(
            w.slots(),
            [Slot { index: 3, count: 1 }, Slot { index: 9, count: 3 }]
        );
        assert_eq!(w.decide(0).remaining, 96);
    }

    #[test]
    fn a_new_duration_refiles_the_count_at_now() {
        let limit = Limit::new(5, 1000);
        let mut w = SlidingWindowState::with_used_hits(&limit, 0, 0);
        assert!(w.decide(4).is_under_limit());
        let longer = Limit::new(3, 10_000);
        w.advance(&longer, 900);
        assert_eq!(w.slots(), [Slot { index: 1, count: 3 }]);
        assert_eq!(w.decide(1).status, Status::OverLimit);
    }
}
