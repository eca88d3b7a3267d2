//! What a scorer is given and what it answers.

use serde::{Deserialize, Serialize};

/// One model output and everything a scorer may compare it with.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScoreInput<'a> {
    /// The model's output text.
    pub output: &'a str,
    /// Reference answers; scorers that compare take the best match over them.
    pub references: &'a [String],
    /// Measured latency of the call, for `latency_ms`.
    pub latency_ms: Option<f64>,
    /// Measured cost of the call, for `cost_usd`.
    pub cost_usd: Option<f64>,
}

impl<'a> ScoreInput<'a> {
    /// An input with an output and references and no measurements.
    pub fn new(output: &'a str, references: &'a [String]) -> Self {
        Self {
            output,
            references,
            latency_ms: None,
            cost_usd: None,
        }
    }
}

/// A scorer's verdict on one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The score in [0, 1] (BLEU and chrF are divided by 100).
    pub value: f64,
    /// Whether `value` reached the scorer's threshold.
    pub passed: bool,
    /// Why it failed or what was measured, when that helps a reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
