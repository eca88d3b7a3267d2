//! Colony's evaluation scorers: pure functions from a model output (and its
//! references and measurements) to a score in [0, 1] and a pass/fail verdict. No
//! I/O. The text metrics reproduce their reference Python implementations exactly
//! (checked by `tests/reference.rs` against the packages themselves).
//!
//! ```
//! use colony_scorers::{ScoreInput, ScorerSpec};
//!
//! let spec: ScorerSpec = serde_json::from_str(r#"{"type": "token_f1", "threshold": 0.5}"#).unwrap();
//! let scorer = spec.build().unwrap();
//! let refs = vec!["The cat sat".to_string()];
//! let score = scorer.score(&ScoreInput::new("a cat sat down", &refs));
//! assert!(score.passed);
//! ```
//!
//! # Layout
//! - [`spec`]: the serde configuration of a scorer (`{"type": ..., "weight", "threshold"}`)
//! - [`scorer`]: a validated [`Scorer`] and [`Scorer::score`]
//! - [`score`]: what a scorer takes ([`ScoreInput`]) and returns ([`Score`])
//! - [`error`]: why a configuration is rejected
//! - [`squad`]: exact match and token F1 (official SQuAD v1.1 script)
//! - [`bleu`], [`chrf`]: sentence and corpus BLEU and chrF (sacrebleu 2.x defaults),
//!   with summable sufficient statistics for corpus scores
//! - [`rouge`]: ROUGE-1/2/L (Google `rouge-score`), with [`porter`] (NLTK's stemmer)
//! - [`levenshtein`]: edit distance and normalized similarity (rapidfuzz)
//! - [`json_schema`]: a draft 2020-12 subset validator, with limits on schema size,
//!   patterns and per-validation work (see its `# Limits`)
//! - [`text`]: contains, icontains, starts_with, regex, json_valid, and the limits
//!   tenant regexes compile within ([`text::MAX_PATTERN_LEN`],
//!   [`text::REGEX_SIZE_LIMIT`], [`text::REGEX_DFA_SIZE_LIMIT`])
//! - [`numeric`]: number extraction and `math.isclose` comparison
//! - `pystr` (private): Python `str` semantics (whitespace, lowercase, `\w`)
//!
//! # Limits
//!
//! Configurations and outputs come from tenants, so every scorer's cost is bounded.
//! Regexes (the `regex` scorer, JSON Schema patterns) compile within the [`text`]
//! limits or the configuration is rejected ([`ConfigError::Limit`],
//! [`ConfigError::Schema`]). JSON Schema validation runs within a step budget. The
//! quadratic metrics, Levenshtein (code points, after dropping the common prefix and
//! suffix) and ROUGE-L (tokens), fill at most [`MAX_DP_CELLS`] table cells per
//! output over all its references; beyond that the score fails with a detail saying
//! so, and below it the results are exactly those of the reference implementations.

pub mod bleu;
pub mod chrf;
pub mod error;
pub mod json_schema;
pub mod levenshtein;
pub mod numeric;
pub mod porter;
mod pystr;
pub mod rouge;
pub mod score;
pub mod scorer;
pub mod spec;
pub mod squad;
pub mod text;

/// Most dynamic-programming table cells (Levenshtein, ROUGE-L's LCS) one output may
/// cost over all its references.
pub const MAX_DP_CELLS: u64 = 25_000_000;

pub use bleu::BleuStats;
pub use chrf::ChrfStats;
pub use error::ConfigError;
pub use score::{Score, ScoreInput};
pub use scorer::Scorer;
pub use spec::{ScorerKind, ScorerSpec};
