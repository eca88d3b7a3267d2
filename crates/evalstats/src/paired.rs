//! Paired bootstrap resampling test of a candidate against a baseline over the same
//! cases, reproducing sacrebleu's `_paired_bs_test` (sacrebleu 2.x,
//! `sacrebleu/significance.py`), itself after Moses'
//! `bootstrap-hypothesis-difference-significance.pl`:
//!
//! 1. `idx = np.random.default_rng(seed).choice(n, size=(resamples, n))`, shared by
//!    both systems;
//! 2. `diff = |baseline_score - candidate_score|` on all cases;
//! 3. per resample, each system's statistic on the resampled cases;
//! 4. `d = |cand_r - base_r|`, centred: `stats = d - mean(d)`;
//! 5. `p = (count(stats > diff) + 1) / (resamples + 1)` (`_compute_p_value`).
//!
//! sacrebleu also reports the candidate's bootstrap mean and a 95% half-width from the
//! sorted resampled scores (`estimate_ci`); [`PairedBootstrap`] carries both.
//!
//! sacrebleu sums sufficient statistics in float32; this crate uses f64. The two agree
//! exactly whenever per-case values and their sums are exact in float32 (pass/fail,
//! integer or dyadic scores, token counts below 2^24), which is how the reference test
//! checks it; otherwise they can differ in the last bits of a statistic.

use serde::{Deserialize, Serialize};

use crate::bootstrap::{case_count, DEFAULT_RESAMPLES, DEFAULT_SEED};
use crate::error::StatsError;
use crate::numeric::pairwise_sum;
use crate::numpy_rng::NumpyRng;
use crate::summary::check_finite;

/// How many resamples to draw and from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of bootstrap resamples (sacrebleu: 1000).
    pub resamples: usize,
    /// Seed of numpy's `default_rng` (sacrebleu: 12345).
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: DEFAULT_RESAMPLES,
            seed: DEFAULT_SEED,
        }
    }
}

/// The outcome of a paired bootstrap test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedBootstrap {
    /// The baseline's statistic on all cases.
    pub baseline_score: f64,
    /// The candidate's statistic on all cases.
    pub candidate_score: f64,
    /// Two-sided p-value of "the difference is due to chance".
    pub p_value: f64,
    /// Mean of the candidate's resampled statistics (sacrebleu's `mean`).
    pub candidate_bootstrap_mean: f64,
    /// Half-width of the candidate's 95% interval (sacrebleu's `ci`).
    pub candidate_ci_half_width: f64,
}

/// Paired bootstrap test where each system's statistic is the mean of its per-case
/// scores (a sentence-level metric averaged over the corpus).
pub fn paired_bootstrap(
    baseline: &[f64],
    candidate: &[f64],
    config: BootstrapConfig,
) -> Result<PairedBootstrap, StatsError> {
    if baseline.len() != candidate.len() {
        return Err(StatsError::LengthMismatch {
            baseline: baseline.len(),
            candidate: candidate.len(),
        });
    }
    check_finite(baseline)?;
    check_finite(candidate)?;
    paired_bootstrap_with(
        baseline.len(),
        config,
        mean_statistic(baseline),
        mean_statistic(candidate),
    )
}

/// The mean of `scores` over a resample's indices, summed as numpy sums.
fn mean_statistic(scores: &[f64]) -> impl FnMut(&[usize]) -> f64 + '_ {
    let mut buf = Vec::with_capacity(scores.len());
    move |idx: &[usize]| {
        buf.clear();
        buf.extend(idx.iter().map(|i| scores[*i]));
        pairwise_sum(&buf) / idx.len() as f64
    }
}

/// Paired bootstrap test over `n` cases with caller-supplied statistics: each closure
/// gets the case indices of one resample (with repetitions; `0..n` for the full
/// score) and returns that system's statistic, e.g. corpus BLEU from summed n-gram
/// counts.
pub fn paired_bootstrap_with<B, C>(
    n: usize,
    config: BootstrapConfig,
    mut baseline_stat: B,
    mut candidate_stat: C,
) -> Result<PairedBootstrap, StatsError>
where
    B: FnMut(&[usize]) -> f64,
    C: FnMut(&[usize]) -> f64,
{
    let cases = case_count(n)?;
    if config.resamples == 0 {
        return Err(StatsError::ZeroResamples);
    }
    let all: Vec<usize> = (0..n).collect();
    let baseline_score = baseline_stat(&all);
    let candidate_score = candidate_stat(&all);
    let diff = (baseline_score - candidate_score).abs();

    let mut rng = NumpyRng::new(config.seed);
    let mut idx = vec![0usize; n];
    let mut sample_diffs = Vec::with_capacity(config.resamples);
    let mut candidate_scores = Vec::with_capacity(config.resamples);
    for _ in 0..config.resamples {
        rng.fill_indices(cases, &mut idx);
        let b = baseline_stat(&idx);
        let c = candidate_stat(&idx);
        sample_diffs.push((c - b).abs());
        candidate_scores.push(c);
    }
    let resamples = config.resamples as f64;
    let centre = pairwise_sum(&sample_diffs) / resamples;
    let count = sample_diffs
        .iter()
        .filter(|d| (**d - centre) > diff)
        .count();
    let p_value = (count + 1) as f64 / (resamples + 1.0);

    // sacrebleu's `estimate_ci`: mean of the sorted scores and half the distance
    // between the (n // 40)-th smallest and largest.
    candidate_scores.sort_by(f64::total_cmp);
    let k = candidate_scores.len();
    let lower = k / 40;
    let upper = k - lower - 1;
    Ok(PairedBootstrap {
        baseline_score,
        candidate_score,
        p_value,
        candidate_bootstrap_mean: pairwise_sum(&candidate_scores) / resamples,
        candidate_ci_half_width: 0.5 * (candidate_scores[upper] - candidate_scores[lower]),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn identical_systems_get_sacrebleus_minimum_p_value() {
        // sacrebleu counts `stats > diff` strictly: with no difference at all every
        // centred statistic is 0, nothing counts, and p = 1 / (resamples + 1).
        let x = [1.0, 0.0, 1.0, 1.0, 0.0];
        let r = paired_bootstrap(&x, &x, BootstrapConfig::default()).unwrap();
        assert_eq!(r.p_value, 1.0 / 1001.0);
        assert_eq!(r.baseline_score, r.candidate_score);
    }

    #[test]
    fn generic_statistic_equals_mean_version() {
        let base: Vec<f64> = (0..40).map(|i| f64::from(i % 3) / 2.0).collect();
        let cand: Vec<f64> = (0..40).map(|i| f64::from(i % 5) / 4.0).collect();
        let config = BootstrapConfig {
            resamples: 200,
            seed: 9,
        };
        let a = paired_bootstrap(&base, &cand, config).unwrap();
        let b = paired_bootstrap_with(
            40,
            config,
            |idx| idx.iter().map(|i| base[*i]).sum::<f64>() / 40.0,
            |idx| idx.iter().map(|i| cand[*i]).sum::<f64>() / 40.0,
        )
        .unwrap();
        // Dyadic scores: every summation order gives the same sums.
        assert_eq!(a, b);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let config = BootstrapConfig::default();
        assert_eq!(paired_bootstrap(&[], &[], config), Err(StatsError::Empty));
        assert_eq!(
            paired_bootstrap(&[1.0], &[1.0, 2.0], config),
            Err(StatsError::LengthMismatch {
                baseline: 1,
                candidate: 2
            })
        );
        assert_eq!(
            paired_bootstrap(&[1.0], &[f64::NAN], config),
            Err(StatsError::NonFinite { index: 0 })
        );
        let zero = BootstrapConfig {
            resamples: 0,
            seed: 1,
        };
        assert_eq!(
            paired_bootstrap(&[1.0], &[1.0], zero),
            Err(StatsError::ZeroResamples)
        );
    }
}
