//! Percentile bootstrap confidence interval for a mean.
//!
//! Procedure (what `tests/reference` checks with numpy):
//! 1. `idx = np.random.default_rng(seed).choice(n, size=(resamples, n))`
//!    ([`NumpyRng`] reproduces the draws exactly);
//! 2. `means = scores[idx].mean(axis=1)`;
//! 3. `np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])` with numpy's
//!    default linear interpolation, where `alpha = 1 - confidence`.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::interval::Interval;
use crate::numeric::{pairwise_sum, quantile_sorted};
use crate::numpy_rng::NumpyRng;
use crate::summary::mean;

/// The seed every bootstrap in Colony uses unless told otherwise (sacrebleu's).
pub const DEFAULT_SEED: u64 = 12345;
/// The number of resamples sacrebleu's paired bootstrap uses by default.
pub const DEFAULT_RESAMPLES: usize = 1000;

/// A mean with its percentile bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapCi {
    /// The mean of the scores themselves (not of the resamples).
    pub mean: f64,
    /// The percentile interval of the resampled means.
    pub interval: Interval,
}

/// Checks the case count fits numpy's 32-bit bounded draws and returns it as `u32`.
pub(crate) fn case_count(n: usize) -> Result<u32, StatsError> {
    if n == 0 {
        return Err(StatsError::Empty);
    }
    u32::try_from(n).map_err(|_| StatsError::TooManyCases(n))
}

/// Percentile bootstrap interval for the mean of `scores` at `confidence` (e.g. 0.95),
/// from `resamples` resamples drawn with `seed`; see the module docs for the exact
/// procedure.
pub fn bootstrap_mean_ci(
    scores: &[f64],
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> Result<BootstrapCi, StatsError> {
    let sample_mean = mean(scores)?;
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::InvalidConfidence(confidence));
    }
    if resamples == 0 {
        return Err(StatsError::ZeroResamples);
    }
    let n = case_count(scores.len())?;
    let mut rng = NumpyRng::new(seed);
    let mut idx = vec![0usize; scores.len()];
    let mut values = vec![0.0f64; scores.len()];
    let mut means = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        rng.fill_indices(n, &mut idx);
        for (v, i) in values.iter_mut().zip(&idx) {
            *v = scores[*i];
        }
        means.push(pairwise_sum(&values) / scores.len() as f64);
    }
    means.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Ok(BootstrapCi {
        mean: sample_mean,
        interval: Interval {
            low: quantile_sorted(&means, alpha / 2.0),
            high: quantile_sorted(&means, 1.0 - alpha / 2.0),
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn constant_scores_give_a_point_interval() {
        let ci = bootstrap_mean_ci(&[0.5; 9], 0.95, 100, DEFAULT_SEED).unwrap();
        assert_eq!(ci.mean, 0.5);
        assert_eq!((ci.interval.low, ci.interval.high), (0.5, 0.5));
    }

    #[test]
    fn same_seed_same_interval() {
        let x: Vec<f64> = (0..50).map(|i| f64::from(i % 7) / 7.0).collect();
        let a = bootstrap_mean_ci(&x, 0.9, 300, 3).unwrap();
        assert_eq!(a, bootstrap_mean_ci(&x, 0.9, 300, 3).unwrap());
        assert!(a.interval.contains(a.mean));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(bootstrap_mean_ci(&[], 0.95, 10, 1), Err(StatsError::Empty));
        assert_eq!(
            bootstrap_mean_ci(&[1.0], 0.95, 0, 1),
            Err(StatsError::ZeroResamples)
        );
        assert_eq!(
            bootstrap_mean_ci(&[1.0], 0.0, 10, 1),
            Err(StatsError::InvalidConfidence(0.0))
        );
    }
}
