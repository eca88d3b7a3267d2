//! McNemar's exact test on paired pass/fail outcomes.
//!
//! Equal to statsmodels' `mcnemar([[a, b], [c, d]], exact=True)`: with the discordant
//! counts `b` and `c`, `p = min(1, 2 * BinomCDF(min(b, c); b + c, 1/2))`.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;

/// The 2×2 table of paired outcomes and the exact McNemar p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Cases both passed.
    pub both_pass: u64,
    /// Cases only the baseline passed (`b`).
    pub baseline_only: u64,
    /// Cases only the candidate passed (`c`).
    pub candidate_only: u64,
    /// Cases both failed.
    pub both_fail: u64,
    /// The test statistic, `min(b, c)`.
    pub statistic: u64,
    /// Two-sided exact p-value.
    pub p_value: f64,
}

impl McNemar {
    /// Builds the table from per-case pass flags (index `i` is the same case in both)
    /// and runs the exact test.
    pub fn from_passes(baseline: &[bool], candidate: &[bool]) -> Result<McNemar, StatsError> {
        if baseline.len() != candidate.len() {
            return Err(StatsError::LengthMismatch {
                baseline: baseline.len(),
                candidate: candidate.len(),
            });
        }
        let mut t = [[0u64; 2]; 2];
        for (b, c) in baseline.iter().zip(candidate) {
            t[usize::from(!*b)][usize::from(!*c)] += 1;
        }
        Ok(McNemar {
            both_pass: t[0][0],
            baseline_only: t[0][1],
            candidate_only: t[1][0],
            both_fail: t[1][1],
            statistic: t[0][1].min(t[1][0]),
            p_value: mcnemar_exact_p(t[0][1], t[1][0]),
        })
    }
}

/// Exact two-sided McNemar p-value from the discordant counts `b` and `c`
/// (1 when there are none).
pub fn mcnemar_exact_p(b: u64, c: u64) -> f64 {
    let n = b + c;
    (2.0 * binomial_cdf_half(b.min(c), n)).min(1.0)
}

/// `P(X <= k)` for `X ~ Binomial(n, 1/2)`.
///
/// For `k < n / 2` it sums `C(n, i)` for `i = 0..=k` from the smallest term up with the exact
/// recurrence `C(n, i+1) = C(n, i) (n - i) / (i + 1)`, rescaling by powers of two to
/// stay in range, then multiplies by `2^-n`. Each term carries at most `2k` roundings,
/// so the relative error is below `2k` ulps (about 2e-13 at `k = 1000`, far less in
/// practice since the roundings are independent: 1e-14 against SciPy up to a million
/// trials). Larger `k` uses `1 - P(X <= n - k - 1)`.
pub fn binomial_cdf_half(k: u64, n: u64) -> f64 {
    if k >= n {
        return 1.0;
    }
    if 2 * k >= n {
        // Upper half by symmetry: fewer terms, and never above 1.
        return 1.0 - binomial_cdf_half(n - k - 1, n);
    }
    // 2^-900 and the exponent it stands for: exact scalings.
    const SCALE_EXP: i64 = 900;
    let scale_down = 2f64.powi(-(SCALE_EXP as i32));
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    let mut exp: i64 = 0; // the true values are term * 2^exp and sum * 2^exp
    for i in 0..k {
        term = term * (n - i) as f64 / (i + 1) as f64;
        sum += term;
        if sum > 2f64.powi(SCALE_EXP as i32) {
            term *= scale_down;
            sum *= scale_down;
            exp += SCALE_EXP;
        }
    }
    // Multiply by 2^(exp - n) in steps that cannot underflow prematurely.
    let mut shift = exp - n as i64;
    let mut out = sum;
    while shift < -SCALE_EXP {
        out *= scale_down;
        shift += SCALE_EXP;
        if out == 0.0 {
            return 0.0;
        }
    }
    out * 2f64.powi(shift as i32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn small_cdfs_are_exact() {
        assert_eq!(binomial_cdf_half(0, 0), 1.0);
        assert_eq!(binomial_cdf_half(0, 1), 0.5);
        assert_eq!(binomial_cdf_half(2, 10), 56.0 / 1024.0);
        assert_eq!(binomial_cdf_half(5, 10), 638.0 / 1024.0);
        assert_eq!(binomial_cdf_half(10, 10), 1.0);
    }

    #[test]
    fn extreme_sizes_stay_finite() {
        // 2^-5000 underflows to 0; the answer must not be NaN or negative.
        assert_eq!(binomial_cdf_half(0, 5000), 0.0);
        let p = binomial_cdf_half(2_500, 5_000);
        assert!(p > 0.5 && p < 0.52, "{p}");
    }

    #[test]
    fn upper_half_never_exceeds_one() {
        // Found by proptest: summing 1687 terms directly drifted above 1.
        let lo = binomial_cdf_half(1_686, 2_941);
        assert!(lo <= binomial_cdf_half(1_687, 2_941) && binomial_cdf_half(1_687, 2_941) <= 1.0);
        assert_eq!(binomial_cdf_half(5, 10), 1.0 - binomial_cdf_half(4, 10));
    }

    #[test]
    fn exact_p_values() {
        assert_eq!(mcnemar_exact_p(0, 0), 1.0);
        assert_eq!(mcnemar_exact_p(3, 3), 1.0);
        assert_eq!(mcnemar_exact_p(0, 7), 2.0 / 128.0);
        assert_eq!(mcnemar_exact_p(7, 0), 2.0 / 128.0);
        assert_eq!(mcnemar_exact_p(1, 4), 2.0 * 6.0 / 32.0);
    }

    #[test]
    fn table_from_passes() {
        let base = [true, true, false, false, true];
        let cand = [true, false, true, true, true];
        let m = McNemar::from_passes(&base, &cand).unwrap();
        assert_eq!(
            (
                m.both_pass,
                m.baseline_only,
                m.candidate_only,
                m.both_fail,
                m.statistic
            ),
            (2, 1, 2, 0, 1)
        );
        assert_eq!(m.p_value, 1.0);
        assert_eq!(
            McNemar::from_passes(&base, &cand[..2]),
            Err(StatsError::LengthMismatch {
                baseline: 5,
                candidate: 2
            })
        );
    }
}
