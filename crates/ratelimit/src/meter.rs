//! The exact fixed-point meter behind the token and the leaky bucket.
//!
//! One hit is `duration_ms` units, so draining (or refilling) `limit` hits per
//! `duration_ms` is exactly `limit` units per millisecond. Every quantity is an integer
//! in these units: no float, no rounding, no drift however the elapsed time is split
//! up. The products are at most `u64::MAX²`, so `u128` holds them without overflow; every
//! operation saturates anyway, and a zero rate or unit (possible only in a corrupt or
//! foreign state, never in a validated limit) is taken as 1, so no input can panic.

use crate::{Decision, Limit, Status};

/// How full a bucket is, in units of `1 / duration_ms` of a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meter {
    /// Units in use: the water in a leaky bucket, the missing tokens in a token
    /// bucket. Always `<= capacity`.
    used: u128,
    /// `capacity() * duration_ms`.
    capacity: u128,
    /// Units drained per millisecond: `limit`.
    rate: u128,
    /// Units per hit: `duration_ms`.
    unit: u128,
}

impl Meter {
    /// A meter for `limit` with `used` units in use (clamped to the capacity, so a
    /// corrupt or foreign state can never make the bucket hold more than it may).
    pub(crate) fn new(limit: &Limit, used: u128) -> Self {
        let unit = u128::from(limit.duration_ms.max(1));
        let capacity = u128::from(limit.capacity()).saturating_mul(unit);
        Meter {
            used: used.min(capacity),
            capacity,
            rate: u128::from(limit.limit.max(1)),
            unit,
        }
    }

    /// A meter for `limit` with `hits` whole hits in use.
    pub(crate) fn with_used_hits(limit: &Limit, hits: u64) -> Self {
        Meter::new(
            limit,
            u128::from(hits).saturating_mul(u128::from(limit.duration_ms.max(1))),
        )
    }

    /// Units as a stored pair: whole hits and the remainder in `1 / duration_ms`.
    pub(crate) fn join(limit: &Limit, whole: u64, frac: u64) -> u128 {
        u128::from(whole)
            .saturating_mul(u128::from(limit.duration_ms.max(1)))
            .saturating_add(u128::from(frac))
    }

    /// Splits units into whole hits and a remainder below one hit.
    fn split(&self, units: u128) -> (u64, u64) {
        // Both parts fit: units <= capacity, so units / unit <= capacity() <= u64::MAX,
        // and the remainder is below unit = duration_ms.
        let whole = u64::try_from(units / self.unit).unwrap_or(u64::MAX);
        let frac = u64::try_from(units % self.unit).unwrap_or(u64::MAX);
        (whole, frac)
    }

    /// Units in use.
    pub(crate) fn used(&self) -> u128 {
        self.used
    }

    /// Units in use as (whole hits, remainder).
    pub(crate) fn used_parts(&self) -> (u64, u64) {
        self.split(self.used)
    }

    /// Free units as (whole hits, remainder).
    pub(crate) fn free_parts(&self) -> (u64, u64) {
        self.split(self.capacity.saturating_sub(self.used))
    }

    /// The hits in use, rounded up: what a different algorithm takes over.
    pub(crate) fn used_hits_ceil(&self) -> u64 {
        u64::try_from(self.used.div_ceil(self.unit)).unwrap_or(u64::MAX)
    }

    /// Lets `elapsed_ms` of draining happen.
    pub(crate) fn drain(&mut self, elapsed_ms: u64) {
        self.used = self
            .used
            .saturating_sub(self.rate.saturating_mul(u128::from(elapsed_ms)));
    }

    /// The same level under a new limit: hits in use stay in use, exactly when the
    /// duration is unchanged and rounded up to the new unit when it changes (never
    /// forgiving a fraction), then clamped to the new capacity (a shrunken bucket is
    /// full, not over-full, so it does not stay blocked beyond its own reset time).
    pub(crate) fn rescaled(&self, limit: &Limit) -> Meter {
        let new_unit = u128::from(limit.duration_ms.max(1));
        if new_unit == self.unit {
            return Meter::new(limit, self.used);
        }
        let whole = self.used / self.unit;
        let frac = self.used % self.unit;
        // frac < unit and whole <= u64::MAX, so neither product overflows u128.
        let used = whole
            .saturating_mul(new_unit)
            .saturating_add(frac.saturating_mul(new_unit).div_ceil(self.unit));
        Meter::new(limit, used)
    }

    /// Whole hits that fit now.
    fn remaining(&self) -> u64 {
        self.free_parts().0
    }

    /// Milliseconds until at most `target` units are in use.
    fn ms_until_used_at_most(&self, target: u128) -> u64 {
        let excess = self.used.saturating_sub(target);
        // Ceiling: after this many whole milliseconds the excess has drained, one
        // millisecond earlier it has not.
        u64::try_from(excess.div_ceil(self.rate)).unwrap_or(u64::MAX)
    }

    /// Decides `hits` (0 = peek) and consumes them if they fit. `limit` is echoed.
    pub(crate) fn decide(&mut self, hits: u64, limit: u64) -> Decision {
        let need = u128::from(hits).saturating_mul(self.unit);
        let (status, wait) = if hits == 0 {
            if self.remaining() > 0 {
                (Status::UnderLimit, self.ms_until_used_at_most(0))
            } else {
                // capacity >= unit for a validated limit (the capacity is at least one
                // hit); saturating for a corrupt one.
                let one_fits = self.capacity.saturating_sub(self.unit);
                (Status::OverLimit, self.ms_until_used_at_most(one_fits))
            }
        } else {
            match self.used.checked_add(need) {
                Some(after) if after <= self.capacity => {
                    self.used = after;
                    (Status::UnderLimit, self.ms_until_used_at_most(0))
                }
                _ if need <= self.capacity => (
                    Status::OverLimit,
                    self.ms_until_used_at_most(self.capacity.saturating_sub(need)),
                ),
                // More than the bucket can ever hold: report when it is at rest.
                _ => (Status::OverLimit, self.ms_until_used_at_most(0)),
            }
        };
        Decision {
            status,
            limit,
            remaining: self.remaining(),
            reset_after_ms: wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_refill_is_exact_however_time_is_split() {
        // 3 hits per 7 ms: after 7 ms exactly 3 hits have drained, whether the 7 ms
        // pass at once or one millisecond at a time.
        let limit = Limit::new(3, 7).with_burst(10);
        let mut a = Meter::with_used_hits(&limit, 10);
        let mut b = a;
        a.drain(7);
        for _ in 0..7 {
            b.drain(1);
        }
        assert_eq!(a, b);
        assert_eq!(a.used(), 7 * 7);
        assert_eq!(a.remaining(), 3);
    }

    #[test]
    fn rescale_keeps_hits_and_rounds_fractions_up() {
        let old = Limit::new(1, 1000);
        let mut m = Meter::with_used_hits(&old, 1);
        m.drain(1); // 0.999 hits in use
        let new = Limit::new(1, 10);
        let r = m.rescaled(&new);
        assert_eq!(r.used(), 10, "0.999 of a hit rounds up to 10/10, not down");
        let bigger = Limit::new(1, 1000).with_burst(5);
        assert_eq!(m.rescaled(&bigger).used(), m.used());
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let limit = Limit::new(u64::MAX, u64::MAX);
        let mut m = Meter::new(&limit, 0);
        let d = m.decide(u64::MAX, u64::MAX);
        assert_eq!(d.status, Status::UnderLimit);
        assert_eq!(d.remaining, 0);
        let d = m.decide(u64::MAX, u64::MAX);
        assert_eq!(d.status, Status::OverLimit);
        m.drain(u64::MAX);
        assert_eq!(m.used(), 0);
        let small = Limit::new(1, u64::MAX).with_burst(u64::MAX);
        let mut m = Meter::with_used_hits(&small, u64::MAX);
        let d = m.decide(1, 1);
        assert_eq!(d.reset_after_ms, u64::MAX, "saturates instead of wrapping");
    }

    #[test]
    fn a_corrupt_limit_never_panics() {
        // Zero limit, duration and burst cannot pass validation, but a state received from
        // elsewhere carries its own limit: the arithmetic must still be total.
        let corrupt = Limit {
            limit: 0,
            duration_ms: 0,
            burst: Some(0),
        };
        let mut m = Meter::new(&corrupt, u128::MAX);
        assert_eq!(m.used(), 0, "clamped to a capacity of 0");
        let _ = m.decide(0, 0);
        let _ = m.decide(1, 0);
        let _ = m.decide(u64::MAX, 0);
        m.drain(u64::MAX);
        let _ = (m.used_parts(), m.free_parts(), m.used_hits_ceil());
        let r = m.rescaled(&Limit::new(10, 1000));
        assert_eq!(r.used(), 0);
        let back = Meter::with_used_hits(&Limit::new(10, 1000), 10).rescaled(&corrupt);
        let _ = (back.used_parts(), back.free_parts(), back.used_hits_ceil());
    }
}
