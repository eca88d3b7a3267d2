//! Aggregates of one provider's scores under one scorer: mean, standard error and
//! pass rate, as lm-evaluation-harness reports them.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;

/// What one provider scored under one scorer over a set of cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of cases.
    pub n: usize,
    /// Arithmetic mean of the scores.
    pub mean: f64,
    /// Sample standard deviation (ddof = 1); `None` when `n < 2`.
    pub std_dev: Option<f64>,
    /// Standard error of the mean, `std_dev / sqrt(n)`; `None` when `n < 2`.
    pub std_err: Option<f64>,
    /// Number of cases that passed.
    pub passed: usize,
    /// `passed / n`.
    pub pass_rate: f64,
}

impl Summary {
    /// Summarises `scores` and the matching pass/fail flags. Errors when there are no
    /// cases, the two slices differ in length, or a score is not finite.
    pub fn of(scores: &[f64], passed: &[bool]) -> Result<Summary, StatsError> {
        if scores.len() != passed.len() {
            return Err(StatsError::LengthMismatch {
                baseline: scores.len(),
                candidate: passed.len(),
            });
        }
        let mean = mean(scores)?;
        let std_dev = sample_std_dev(scores)?;
        let n = scores.len();
        let passed = passed.iter().filter(|p| **p).count();
        Ok(Summary {
            n,
            mean,
            std_dev,
            std_err: std_dev.map(|s| s / (n as f64).sqrt()),
            passed,
            pass_rate: passed as f64 / n as f64,
        })
    }
}

/// Checks that every score is finite.
pub(crate) fn check_finite(scores: &[f64]) -> Result<(), StatsError> {
    match scores.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(StatsError::NonFinite { index }),
        None => Ok(()),
    }
}

/// Arithmetic mean; [`StatsError::Empty`] for no scores.
pub fn mean(scores: &[f64]) -> Result<f64, StatsError> {
    if scores.is_empty() {
        return Err(StatsError::Empty);
    }
    check_finite(scores)?;
    Ok(crate::numeric::pairwise_sum(scores) / scores.len() as f64)
}

/// Sample standard deviation with ddof = 1 (numpy `std(x, ddof=1)`): `None` for one
/// score, where it is undefined; [`StatsError::Empty`] for none.
pub fn sample_std_dev(scores: &[f64]) -> Result<Option<f64>, StatsError> {
    let m = mean(scores)?;
    if scores.len() < 2 {
        return Ok(None);
    }
    let squares: Vec<f64> = scores.iter().map(|x| (x - m) * (x - m)).collect();
    Ok(Some(
        (crate::numeric::pairwise_sum(&squares) / (scores.len() - 1) as f64).sqrt(),
    ))
}

/// Standard error of the mean as lm-evaluation-harness's `mean_stderr` reports it:
/// `sample_std_dev / sqrt(n)`; `None` for fewer than two scores.
pub fn standard_error(scores: &[f64]) -> Result<Option<f64>, StatsError> {
    Ok(sample_std_dev(scores)?.map(|s| s / (scores.len() as f64).sqrt()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn summary_of_a_few_cases() {
        let s = Summary::of(&[1.0, 0.0, 0.5, 0.5], &[true, false, true, false]).unwrap();
        assert_eq!((s.n, s.passed, s.mean, s.pass_rate), (4, 2, 0.5, 0.5));
        let sd = (0.5f64 / 3.0).sqrt();
        assert!((s.std_dev.unwrap() - sd).abs() < 1e-15);
        assert!((s.std_err.unwrap() - sd / 2.0).abs() < 1e-15);
    }

    #[test]
    fn one_case_has_no_standard_error() {
        let s = Summary::of(&[0.25], &[false]).unwrap();
        assert_eq!((s.mean, s.std_dev, s.std_err), (0.25, None, None));
        assert_eq!(standard_error(&[3.0]), Ok(None));
        assert_eq!(standard_error(&[3.0, 3.0]), Ok(Some(0.0)));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(Summary::of(&[], &[]), Err(StatsError::Empty));
        assert_eq!(mean(&[]), Err(StatsError::Empty));
        assert_eq!(
            Summary::of(&[1.0], &[true, false]),
            Err(StatsError::LengthMismatch {
                baseline: 1,
                candidate: 2
            })
        );
        assert_eq!(
            mean(&[1.0, f64::NAN]),
            Err(StatsError::NonFinite { index: 1 })
        );
        assert_eq!(
            sample_std_dev(&[f64::INFINITY]),
            Err(StatsError::NonFinite { index: 0 })
        );
    }
}
