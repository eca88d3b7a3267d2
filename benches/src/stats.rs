//! Order statistics of samples and their formatting.

use serde_json::{json, Value};

/// Median, p90 and max of a set of samples in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Median (linear interpolation between the two middle samples when `n` is even).
    pub median: f64,
    /// 90th percentile (linear interpolation), only with at least 10 samples.
    pub p90: Option<f64>,
    /// Largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut s: Vec<f64> = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let (&min, &max) = (s.first()?, s.last()?);
        Some(Summary {
            n: s.len(),
            min,
            median: quantile(&s, 0.5),
            p90: (s.len() >= 10).then(|| quantile(&s, 0.9)),
            max,
        })
    }

    /// As JSON (milliseconds).
    pub fn to_json(self) -> Value {
        json!({
            "n": self.n,
            "min_ms": round1(self.min),
            "median_ms": round1(self.median),
            "p90_ms": self.p90.map(round1),
            "max_ms": round1(self.max),
        })
    }
}

/// The `q` quantile of sorted, non-empty `s`, interpolating linearly between closest ranks
/// (the "type 7" definition of R and NumPy's default).
pub fn quantile(s: &[f64], q: f64) -> f64 {
    let Some(&last) = s.last() else {
        return f64::NAN;
    };
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    match (s.get(lo), s.get(lo + 1)) {
        (Some(a), Some(b)) => a + (b - a) * frac,
        (Some(a), None) => *a,
        _ => last,
    }
}

/// Milliseconds rounded to one decimal, for JSON.
pub fn round1(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// Milliseconds for a table: `1234 ms`.
pub fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

/// A duration in seconds for a table: `5.5 s`, `45 s`.
pub fn secs(ms: f64) -> String {
    let s = ms / 1000.0;
    if (s - s.round()).abs() < 1e-9 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_interpolate() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        let sum = Summary::of(&s).unwrap();
        assert_eq!(sum.median, 5.5);
        assert!((sum.p90.unwrap() - 9.1).abs() < 1e-9);
        assert_eq!(sum.max, 10.0);
        assert_eq!(sum.min, 1.0);
        let odd = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(odd.median, 2.0);
        assert!(odd.p90.is_none());
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn formats() {
        assert_eq!(secs(5500.0), "5.5 s");
        assert_eq!(secs(45000.0), "45 s");
        assert_eq!(ms(1234.4), "1234 ms");
    }
}
