//! Why a statistic cannot be computed from the inputs given.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Inputs no statistic in this crate accepts; callers match on the variant.
#[derive(Debug, Clone, Copy, PartialEq, Error, Serialize, Deserialize)]
pub enum StatsError {
    /// There are no cases (or no trials) to compute from.
    #[error("no cases to compute from")]
    Empty,
    /// Paired inputs (baseline and candidate) have different lengths.
    #[error("paired inputs differ in length: baseline has {baseline}, candidate has {candidate}")]
    LengthMismatch {
        /// Number of baseline cases.
        baseline: usize,
        /// Number of candidate cases.
        candidate: usize,
    },
    /// A score is NaN or infinite.
    #[error("score at index {index} is not finite")]
    NonFinite {
        /// Position of the offending score.
        index: usize,
    },
    /// A confidence level outside the open interval (0, 1).
    #[error("confidence level must be in (0, 1), got {0}")]
    InvalidConfidence(f64),
    /// More successes than trials.
    #[error("count {count} exceeds the number of trials {trials}")]
    CountExceedsTrials {
        /// Successes.
        count: u64,
        /// Trials.
        trials: u64,
    },
    /// More cases than a bootstrap can index with numpy's 32-bit draws (2^32 - 1).
    #[error("{0} cases is more than a bootstrap can resample")]
    TooManyCases(usize),
    /// A bootstrap was asked for zero resamples.
    #[error("number of resamples must be at least 1")]
    ZeroResamples,
}
