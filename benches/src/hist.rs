//! Latency histograms for the benches: a thin wrapper over `hdrhistogram` (3 significant
//! digits, so a reported quantile is within 0.1 % of the true value) that keeps the
//! exact mean and the JSON shape of the reports.

use serde_json::{json, Value};

/// Recorded latencies in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    inner: hdrhistogram::Histogram<u64>,
    /// Exact sum, for the exact mean (hdrhistogram's mean is of bucket midpoints).
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.count())
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// Significant decimal digits kept.
const SIGNIFICANT_DIGITS: u8 = 3;

impl Histogram {
    /// An empty histogram that grows to fit whatever it records.
    pub fn new() -> Histogram {
        let inner = hdrhistogram::Histogram::new(SIGNIFICANT_DIGITS)
            .expect("3 significant digits are within hdrhistogram's allowed 0..=5");
        Histogram { inner, sum: 0 }
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        // Auto-resizing histograms take any u64; saturating keeps a failure from panicking.
        if self.inner.record(v).is_err() {
            self.inner.saturating_record(v);
        }
        self.sum += u128::from(v);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if self.inner.add(&other.inner).is_err() {
            for v in other.inner.iter_recorded() {
                self.inner
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.sum += other.sum;
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.inner.len()
    }

    /// Largest value recorded (to the histogram's precision).
    pub fn max(&self) -> u64 {
        self.inner.max()
    }

    /// Mean of the recorded values (exact), 0 when empty.
    pub fn mean(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum as f64 / n as f64,
        }
    }

    /// The `q` quantile (never above the maximum); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count() == 0 {
            return 0;
        }
        self.inner
            .value_at_quantile(q.clamp(0.0, 1.0))
            .min(self.max())
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
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        assert_eq!(h.count(), 100_000);
        let close = |got: u64, want: f64| (got as f64 - want).abs() / want < 0.002;
        assert!(close(h.quantile(0.5), 50_000_000.0), "{}", h.quantile(0.5));
        assert!(close(h.quantile(0.99), 99_000_000.0));
        assert!(close(h.quantile(0.999), 99_900_000.0));
        assert!(close(h.quantile(1.0), 100_000_000.0));
        assert!((h.mean() - 50_000_500.0).abs() < 1.0);
    }

    #[test]
    fn huge_values_are_recorded_not_lost() {
        let mut h = Histogram::new();
        h.record(1);
        h.record(u64::MAX / 2);
        assert_eq!(h.count(), 2);
        assert!(h.quantile(1.0) >= u64::MAX / 2 - u64::MAX / 1000);
    }

    #[test]
    fn merge_adds_counts_and_empty_is_zero() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        assert_eq!(a.quantile(0.99), 0);
        assert_eq!(a.mean(), 0.0);
        a.record(10);
        b.record(1_000_000);
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!(a.max().abs_diff(1_000_000) <= 1_000);
        assert_eq!(a.quantile(0.3), 10);
        assert!(a.quantile(0.5).abs_diff(1_000_000) <= 1_000);
        assert!((a.mean() - 2_000_010.0 / 3.0).abs() < 1e-6);
    }
}
