//! A log-linear latency histogram in the spirit of HdrHistogram: values (nanoseconds) below
//! 128 are counted exactly, larger ones in buckets 1/64 of their power of two wide, so a
//! reported quantile is within about 1.6 % of the true value. Fixed size, mergeable.

use serde_json::{json, Value};

/// Sub-buckets per power of two (precision = 1 / SUB).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Bucket count covering every `u64`.
const BUCKETS: usize = ((64 - SUB_BITS as usize) * SUB as usize) + SUB as usize;

/// Counts of recorded values by bucket.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let e = msb - SUB_BITS;
    let m = v >> e; // in [SUB, 2 SUB)
    (u64::from(e) * SUB + m) as usize
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let e = i / SUB - 1;
    let m = i - e * SUB;
    let end = u128::from(m + 1) << e;
    u64::try_from(end - 1).unwrap_or(u64::MAX)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the recorded values (exact), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The `q` quantile: the upper end of the bucket holding the value of rank
    /// `ceil(q * n)` (never above the exact maximum); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// p50/p90/p99/p99.9/max and mean in milliseconds, for JSON.
    pub fn to_json_ms(&self) -> Value {
        let ms = |ns: u64| (ns as f64 / 1e3).round() / 1e3;
        json!({
            "n": self.count(),
            "mean_ms": (self.mean() / 1e3).round() / 1e3,
            "p50_ms": ms(self.quantile(0.5)),
            "p90_ms": ms(self.quantile(0.9)),
            "p99_ms": ms(self.quantile(0.99)),
            "p999_ms": ms(self.quantile(0.999)),
            "max_ms": ms(self.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        assert_eq!(index(0), 0);
        assert_eq!(index(127), 127);
        assert_eq!(index(128), 128);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(upper(i)), i, "upper of {i}");
            assert_eq!(index(upper(i) + 1), i + 1, "after {i}");
        }
        assert_eq!(upper(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn relative_error_is_small() {
        for v in [1u64, 100, 129, 1_000, 12_345, 999_999, 1_234_567_890] {
            let u = upper(index(v));
            assert!(u >= v);
            assert!((u - v) as f64 <= v as f64 / SUB as f64, "{v} -> {u}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        assert_eq!(h.count(), 100_000);
        let close = |got: u64, want: f64| (got as f64 - want).abs() / want < 0.02;
        assert!(close(h.quantile(0.5), 50_000_000.0), "{}", h.quantile(0.5));
        assert!(close(h.quantile(0.99), 99_000_000.0));
        assert!(close(h.quantile(0.999), 99_900_000.0));
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert!((h.mean() - 50_000_500.0).abs() < 1.0);
    }

    #[test]
    fn merge_adds_counts_and_empty_is_zero() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        assert_eq!(a.quantile(0.99), 0);
        a.record(10);
        b.record(1_000_000);
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.quantile(0.3), 10);
        assert!(a.quantile(0.5) >= 1_000_000 - 1_000_000 / 64);
    }
}
