//! Scorer configuration as it appears in an evaluation spec:
//! `{"type": "bleu", "weight": 2, "threshold": 0.3}`. Unknown keys are rejected.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::numeric::Pick;

/// One scorer's configuration: what it measures, how much it counts, when it passes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorerSpec {
    /// What to measure and its settings.
    #[serde(flatten)]
    pub kind: ScorerKind,
    /// Weight in the case's weighted score (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Minimum value to pass, in [0, 1] (default 1 for yes/no scorers, 0.5 for graded ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// The scorers and their settings, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScorerKind {
    /// SQuAD exact match after normalization.
    ExactMatch {},
    /// SQuAD token F1.
    TokenF1 {},
    /// Output contains `value`, or else any reference.
    Contains {
        /// The text to look for; the references when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// As `contains`, ignoring case.
    Icontains {
        /// The text to look for; the references when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// Output starts with `value`, or else any reference.
    StartsWith {
        /// The prefix; the references when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// The regex (Rust `regex` syntax) matches somewhere in the output.
    Regex {
        /// The pattern.
        pattern: String,
    },
    /// Output is one well-formed JSON value.
    JsonValid {},
    /// Output is JSON valid against `schema` (draft 2020-12 subset).
    JsonSchema {
        /// The JSON Schema.
        schema: Value,
    },
    /// Normalized Levenshtein similarity to the closest reference.
    Levenshtein {},
    /// Sentence BLEU (sacrebleu defaults).
    Bleu {},
    /// Sentence chrF (sacrebleu defaults).
    Chrf {},
    /// ROUGE-1 F-measure.
    Rouge1 {
        /// Apply the Porter stemmer (rouge-score's `use_stemmer`).
        #[serde(default)]
        use_stemmer: bool,
    },
    /// ROUGE-2 F-measure.
    Rouge2 {
        /// Apply the Porter stemmer (rouge-score's `use_stemmer`).
        #[serde(default)]
        use_stemmer: bool,
    },
    /// ROUGE-L F-measure.
    #[serde(rename = "rougeL")]
    RougeL {
        /// Apply the Porter stemmer (rouge-score's `use_stemmer`).
        #[serde(default)]
        use_stemmer: bool,
    },
    /// A number in the output is close to the expected one.
    Numeric {
        /// The expected value; the first reference parsed as a number when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<f64>,
        /// Absolute tolerance (default 0).
        #[serde(default)]
        abs_tol: f64,
        /// Relative tolerance (default 1e-9, as Python's `math.isclose`).
        #[serde(default = "default_rel_tol")]
        rel_tol: f64,
        /// Which number of the output to take.
        #[serde(default)]
        pick: Pick,
    },
    /// The call's latency is at most `max` milliseconds.
    LatencyMs {
        /// The largest passing latency.
        max: f64,
    },
    /// The call's cost is at most `max` US dollars.
    CostUsd {
        /// The largest passing cost.
        max: f64,
    },
}

fn default_rel_tol() -> f64 {
    1e-9
}

impl<'de> Deserialize<'de> for ScorerSpec {
    // serde cannot combine `flatten` with `deny_unknown_fields`, so the common keys
    // are taken out by hand and the rest must fit a kind exactly.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let mut take = |key: &str| -> Result<Option<f64>, D::Error> {
            match map.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| D::Error::custom(format!("{key} must be a number"))),
            }
        };
        let weight = take("weight")?;
        let threshold = take("threshold")?;
        let kind = ScorerKind::deserialize(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Self {
            kind,
            weight,
            threshold,
        })
    }
}
