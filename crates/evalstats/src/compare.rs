//! Win/tie/loss counts of a candidate against a baseline over the same cases.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::summary::check_finite;

/// How often the candidate scored higher than, equal to, or lower than the baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WinTieLoss {
    /// Cases where the candidate scored strictly higher.
    pub wins: usize,
    /// Cases where both scored exactly the same.
    pub ties: usize,
    /// Cases where the candidate scored strictly lower.
    pub losses: usize,
}

/// Counts wins, ties and losses of `candidate` against `baseline`, case by case
/// (index `i` of both slices is the same case). Scores must be finite.
pub fn win_tie_loss(baseline: &[f64], candidate: &[f64]) -> Result<WinTieLoss, StatsError> {
    if baseline.len() != candidate.len() {
        return Err(StatsError::LengthMismatch {
            baseline: baseline.len(),
            candidate: candidate.len(),
        });
    }
    check_finite(baseline)?;
    check_finite(candidate)?;
    let mut out = WinTieLoss::default();
    for (b, c) in baseline.iter().zip(candidate) {
        if c > b {
            out.wins += 1;
        } else if c < b {
            out.losses += 1;
        } else {
            out.ties += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_case_once() {
        let w = win_tie_loss(&[0.0, 1.0, 0.5, 0.5], &[1.0, 0.0, 0.5, 0.75]);
        assert_eq!(
            w,
            Ok(WinTieLoss {
                wins: 2,
                ties: 1,
                losses: 1
            })
        );
        assert_eq!(win_tie_loss(&[], &[]), Ok(WinTieLoss::default()));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            win_tie_loss(&[1.0], &[]),
            Err(StatsError::LengthMismatch {
                baseline: 1,
                candidate: 0
            })
        );
        assert_eq!(
            win_tie_loss(&[1.0], &[f64::NAN]),
            Err(StatsError::NonFinite { index: 0 })
        );
    }
}
