//! The Wilson score interval for a pass rate.

use crate::error::StatsError;
use crate::interval::Interval;
use crate::normal::two_sided_z;

/// Wilson score interval for `count` passes out of `trials` at the given confidence
/// level (0.95 for 95%), equal to statsmodels'
/// `proportion_confint(count, trials, alpha=1-confidence, method="wilson")`,
/// including its clipping to [0, 1]. Errors for zero trials (statsmodels answers NaN).
pub fn wilson_interval(count: u64, trials: u64, confidence: f64) -> Result<Interval, StatsError> {
    if trials == 0 {
        return Err(StatsError::Empty);
    }
    if count > trials {
        return Err(StatsError::CountExceedsTrials { count, trials });
    }
    let crit = two_sided_z(confidence)?;
    let nobs = trials as f64;
    let q = count as f64 / nobs;
    // Same order of operations as statsmodels.
    let crit2 = crit * crit;
    let denom = 1.0 + crit2 / nobs;
    let center = (q + crit2 / (2.0 * nobs)) / denom;
    let mut dist = crit * (q * (1.0 - q) / nobs + crit2 / (4.0 * (nobs * nobs))).sqrt();
    dist /= denom;
    Ok(Interval {
        low: (center - dist).clamp(0.0, 1.0),
        high: (center + dist).clamp(0.0, 1.0),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn known_interval() {
        // statsmodels: proportion_confint(5, 10, alpha=0.05, method="wilson")
        let ci = wilson_interval(5, 10, 0.95).unwrap();
        assert!((ci.low - 0.236_593_090_512_564_9).abs() < 1e-12, "{ci:?}");
        assert!((ci.high - 0.763_406_909_487_435_1).abs() < 1e-12, "{ci:?}");
    }

    #[test]
    fn all_or_nothing_touches_the_bounds() {
        assert_eq!(wilson_interval(0, 7, 0.95).unwrap().low, 0.0);
        assert_eq!(wilson_interval(7, 7, 0.95).unwrap().high, 1.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(wilson_interval(0, 0, 0.95), Err(StatsError::Empty));
        assert_eq!(
            wilson_interval(3, 2, 0.95),
            Err(StatsError::CountExceedsTrials {
                count: 3,
                trials: 2
            })
        );
        assert_eq!(
            wilson_interval(1, 2, 1.5),
            Err(StatsError::InvalidConfidence(1.5))
        );
    }
}
