//! Colony's evaluation statistics as pure functions over slices of per-case scores:
//! no I/O, no clock, and every random draw from an explicit seed. Each function is
//! checked against the library evaluation people already trust (numpy, SciPy,
//! statsmodels, sacrebleu) by `tests/reference.rs`.
//!
//! ```
//! use colony_evalstats::{wilson_interval, Summary};
//!
//! let s = Summary::of(&[1.0, 0.0, 1.0, 1.0], &[true, false, true, true]).unwrap();
//! assert_eq!((s.n, s.passed, s.mean), (4, 3, 0.75));
//! let ci = wilson_interval(3, 4, 0.95).unwrap();
//! assert!(ci.contains(0.75));
//! ```
//!
//! # Layout
//! - [`summary`]: one provider under one scorer: mean, standard error (ddof = 1, as
//!   lm-evaluation-harness), pass rate
//! - [`interval`]: a confidence interval
//! - [`normal`]: the standard normal quantile (AS 241) behind every z value
//! - [`wilson`]: Wilson score interval for a pass rate (statsmodels)
//! - [`bootstrap`]: percentile bootstrap interval for a mean
//! - [`compare`]: win/tie/loss counts of two providers over the same cases
//! - [`paired`]: paired bootstrap significance test (sacrebleu), for means or any
//!   corpus-level statistic
//! - [`mcnemar`]: McNemar's exact test on paired pass/fail
//! - [`numpy_rng`]: numpy's `default_rng` draws (SeedSequence, PCG64, bounded
//!   integers), so resamples equal sacrebleu's
//! - `numeric` (private): numpy's pairwise summation and linear quantiles
//! - [`error`]: why inputs were rejected

pub mod bootstrap;
pub mod compare;
pub mod error;
pub mod interval;
pub mod mcnemar;
pub mod normal;
mod numeric;
pub mod numpy_rng;
pub mod paired;
pub mod summary;
pub mod wilson;

pub use bootstrap::{bootstrap_mean_ci, BootstrapCi, DEFAULT_RESAMPLES, DEFAULT_SEED};
pub use compare::{win_tie_loss, WinTieLoss};
pub use error::StatsError;
pub use interval::Interval;
pub use mcnemar::{binomial_cdf_half, mcnemar_exact_p, McNemar};
pub use normal::{normal_quantile, two_sided_z};
pub use numpy_rng::NumpyRng;
pub use paired::{paired_bootstrap, paired_bootstrap_with, BootstrapConfig, PairedBootstrap};
pub use summary::{mean, sample_std_dev, standard_error, Summary};
pub use wilson::wilson_interval;
