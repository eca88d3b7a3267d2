//! Reference models. Each keeps the full history of admitted hits and answers from it
//! directly, so it shares no state representation with the implementation.

use colony_ratelimit::{Limit, SUB_WINDOWS};

/// Hits admitted at a time.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    pub at: u64,
    pub hits: u64,
}

/// A token bucket (equally: a leaky bucket as a meter) of capacity `cap` that drains
/// `limit` hits per `dur` ms. In units of 1/dur of a hit, the level after the admitted
/// hits is the Lindley recursion `used(t) = max(0, used(prev) - limit * dt) + hits`,
/// which unrolls to `max(0, max over k of (sum of hits since t_k) * dur - limit * (t - t_k))`.
#[derive(Debug, Clone)]
pub struct ContinuousModel {
    pub limit: u64,
    pub dur: u64,
    pub cap: u64,
    pub admitted: Vec<Admitted>,
}

impl ContinuousModel {
    pub fn new(limit: &Limit) -> Self {
        ContinuousModel {
            limit: limit.limit,
            dur: limit.duration_ms,
            cap: limit.burst.unwrap_or(limit.limit),
            admitted: Vec::new(),
        }
    }

    /// Units in use at `t` (t at or after every admission).
    pub fn used_units(&self, t: u64) -> u128 {
        let mut best: i128 = 0;
        let mut since: i128 = 0;
        for a in self.admitted.iter().rev() {
            since += i128::from(a.hits) * i128::from(self.dur);
            let drained = i128::from(self.limit) * i128::from(t - a.at);
            best = best.max(since - drained);
        }
        best as u128
    }

    pub fn remaining(&self, t: u64) -> u64 {
        let used_hits = self.used_units(t).div_ceil(u128::from(self.dur)) as u64;
        self.cap - used_hits
    }

    pub fn fits(&self, t: u64, hits: u64) -> bool {
        self.used_units(t) + u128::from(hits) * u128::from(self.dur)
            <= u128::from(self.cap) * u128::from(self.dur)
    }

    pub fn admit(&mut self, at: u64, hits: u64) {
        self.admitted.push(Admitted { at, hits });
    }
}

/// A window counted exactly from timestamps: a hit admitted at `s` counts until
/// `(s / g + 1) * g + dur`, with `g = ceil(dur / SUB_WINDOWS)` (the documented rule).
#[derive(Debug, Clone)]
pub struct WindowModel {
    pub limit: u64,
    pub dur: u64,
    pub g: u64,
    pub admitted: Vec<Admitted>,
}

impl WindowModel {
    pub fn new(limit: &Limit) -> Self {
        let dur = limit.duration_ms;
        WindowModel {
            limit: limit.limit,
            dur,
            g: dur.div_ceil(SUB_WINDOWS),
            admitted: Vec::new(),
        }
    }

    pub fn expiry(&self, at: u64) -> u64 {
        (at / self.g + 1) * self.g + self.dur
    }

    pub fn counted(&self, t: u64) -> u64 {
        self.admitted
            .iter()
            .filter(|a| self.expiry(a.at) > t)
            .map(|a| a.hits)
            .sum()
    }

    pub fn remaining(&self, t: u64) -> u64 {
        self.limit.saturating_sub(self.counted(t))
    }

    pub fn fits(&self, t: u64, hits: u64) -> bool {
        self.counted(t) + hits <= self.limit
    }

    pub fn admit(&mut self, at: u64, hits: u64) {
        self.admitted.push(Admitted { at, hits });
    }
}

/// Hits admitted in the closed interval `[from, to]`.
pub fn admitted_in(admitted: &[Admitted], from: u64, to: u64) -> u64 {
    admitted
        .iter()
        .filter(|a| a.at >= from && a.at <= to)
        .map(|a| a.hits)
        .sum()
}
