//! A checked, ready-to-run scorer built from a [`ScorerSpec`].

use regex::Regex;

use crate::error::ConfigError;
use crate::json_schema::JsonSchema;
use crate::numeric::{self, Pick};
use crate::rouge::{self, RougeType};
use crate::score::{Score, ScoreInput};
use crate::spec::{ScorerKind, ScorerSpec};
use crate::{bleu, chrf, levenshtein, squad, text};

/// A scorer whose configuration has been validated (regex compiled, schema checked).
#[derive(Debug, Clone)]
pub struct Scorer {
    check: Check,
    weight: f64,
    threshold: f64,
}

#[derive(Debug, Clone)]
enum Check {
    ExactMatch,
    TokenF1,
    Contains(Option<String>),
    Icontains(Option<String>),
    StartsWith(Option<String>),
    Regex(Regex),
    JsonValid,
    JsonSchema(Box<JsonSchema>),
    Levenshtein,
    Bleu,
    Chrf,
    Rouge(RougeType, bool),
    Numeric {
        expected: Option<f64>,
        abs_tol: f64,
        rel_tol: f64,
        pick: Pick,
    },
    LatencyMs(f64),
    CostUsd(f64),
}

fn non_negative(field: &'static str, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::Number {
            field,
            value: v,
            reason: "must be a finite number >= 0",
        })
    }
}

impl ScorerSpec {
    /// Validate the settings and build the scorer.
    pub fn build(&self) -> Result<Scorer, ConfigError> {
        Scorer::new(self)
    }
}

impl Scorer {
    /// Validate `spec` and build the scorer.
    pub fn new(spec: &ScorerSpec) -> Result<Self, ConfigError> {
        let check = match &spec.kind {
            ScorerKind::ExactMatch {} => Check::ExactMatch,
            ScorerKind::TokenF1 {} => Check::TokenF1,
            ScorerKind::Contains { value } => Check::Contains(value.clone()),
            ScorerKind::Icontains { value } => Check::Icontains(value.clone()),
            ScorerKind::StartsWith { value } => Check::StartsWith(value.clone()),
            ScorerKind::Regex { pattern } => {
                Check::Regex(Regex::new(pattern).map_err(|source| ConfigError::Regex {
                    pattern: pattern.clone(),
                    source,
                })?)
            }
            ScorerKind::JsonValid {} => Check::JsonValid,
            ScorerKind::JsonSchema { schema } => {
                Check::JsonSchema(Box::new(JsonSchema::new(schema.clone())?))
            }
            ScorerKind::Levenshtein {} => Check::Levenshtein,
            ScorerKind::Bleu {} => Check::Bleu,
            ScorerKind::Chrf {} => Check::Chrf,
            ScorerKind::Rouge1 { use_stemmer } => Check::Rouge(RougeType::Rouge1, *use_stemmer),
            ScorerKind::Rouge2 { use_stemmer } => Check::Rouge(RougeType::Rouge2, *use_stemmer),
            ScorerKind::RougeL { use_stemmer } => Check::Rouge(RougeType::RougeL, *use_stemmer),
            ScorerKind::Numeric {
                expected,
                abs_tol,
                rel_tol,
                pick,
            } => {
                if let Some(e) = expected {
                    if !e.is_finite() {
                        return Err(ConfigError::Number {
                            field: "expected",
                            value: *e,
                            reason: "must be finite",
                        });
                    }
                }
                Check::Numeric {
                    expected: *expected,
                    abs_tol: non_negative("abs_tol", *abs_tol)?,
                    rel_tol: non_negative("rel_tol", *rel_tol)?,
                    pick: *pick,
                }
            }
            ScorerKind::LatencyMs { max } => Check::LatencyMs(non_negative("max", *max)?),
            ScorerKind::CostUsd { max } => Check::CostUsd(non_negative("max", *max)?),
        };
        let weight = non_negative("weight", spec.weight.unwrap_or(1.0))?;
        let graded = matches!(
            check,
            Check::TokenF1 | Check::Levenshtein | Check::Bleu | Check::Chrf | Check::Rouge(..)
        );
        let threshold = spec.threshold.unwrap_or(if graded { 0.5 } else { 1.0 });
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ConfigError::Number {
                field: "threshold",
                value: threshold,
                reason: "must be within [0, 1]",
            });
        }
        Ok(Self {
            check,
            weight,
            threshold,
        })
    }

    /// The scorer's weight in a case's weighted score.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The value at or above which an output passes.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Score one output.
    pub fn score(&self, input: &ScoreInput<'_>) -> Score {
        let out = input.output;
        let refs = input.references;
        let needs_refs = matches!(
            self.check,
            Check::ExactMatch
                | Check::TokenF1
                | Check::Levenshtein
                | Check::Bleu
                | Check::Chrf
                | Check::Rouge(..)
        ) || matches!(
            &self.check,
            Check::Contains(None) | Check::Icontains(None) | Check::StartsWith(None)
        );
        if needs_refs && refs.is_empty() {
            return self.fail("no reference to compare with");
        }
        let any = |f: fn(&str, &str) -> bool, v: &Option<String>| match v {
            Some(v) => f(out, v),
            None => refs.iter().any(|r| f(out, r)),
        };
        let value = match &self.check {
            Check::ExactMatch => bool_value(squad::exact_match_max(out, refs)),
            Check::TokenF1 => squad::token_f1_max(out, refs),
            Check::Contains(v) => bool_value(any(text::contains, v)),
            Check::Icontains(v) => bool_value(any(text::icontains, v)),
            Check::StartsWith(v) => bool_value(any(text::starts_with, v)),
            Check::Regex(re) => bool_value(text::regex_search(re, out)),
            Check::JsonValid => bool_value(text::json_valid(out)),
            Check::JsonSchema(schema) => {
                let parsed = match serde_json::from_str(out) {
                    Ok(v) => v,
                    Err(e) => return self.fail(&format!("output is not JSON: {e}")),
                };
                if let Err(why) = schema.validate(&parsed) {
                    return self.fail(&why);
                }
                1.0
            }
            Check::Levenshtein => refs
                .iter()
                .map(|r| levenshtein::normalized_similarity(out, r))
                .fold(0.0, f64::max),
            Check::Bleu => bleu::sentence_bleu(out, refs) / 100.0,
            Check::Chrf => chrf::sentence_chrf(out, refs) / 100.0,
            Check::Rouge(kind, stem) => rouge::score_multi(*kind, refs, out, *stem).fmeasure,
            Check::Numeric {
                expected,
                abs_tol,
                rel_tol,
                pick,
            } => {
                let want = match expected.or_else(|| {
                    refs.first()
                        .and_then(|r| numeric::extract_number(r, Pick::First))
                }) {
                    Some(w) => w,
                    None => return self.fail("no expected number"),
                };
                let Some(got) = numeric::extract_number(out, *pick) else {
                    return self.fail("no number in the output");
                };
                if !numeric::is_close(got, want, *abs_tol, *rel_tol) {
                    return self.fail(&format!("got {got}, expected {want}"));
                }
                1.0
            }
            Check::LatencyMs(max) => return self.at_most(input.latency_ms, *max, "latency_ms"),
            Check::CostUsd(max) => return self.at_most(input.cost_usd, *max, "cost_usd"),
        };
        // sacrebleu's exp(log(100)) can land a hair above 100; keep the [0, 1] promise.
        let value = value.clamp(0.0, 1.0);
        Score {
            value,
            passed: value >= self.threshold,
            detail: None,
        }
    }

    fn at_most(&self, measured: Option<f64>, max: f64, what: &str) -> Score {
        match measured {
            None => self.fail(&format!("no {what} measured")),
            Some(v) if v <= max => Score {
                value: 1.0,
                passed: true,
                detail: Some(format!("{what} {v}")),
            },
            Some(v) => self.fail(&format!("{what} {v} exceeds {max}")),
        }
    }

    fn fail(&self, why: &str) -> Score {
        Score {
            value: 0.0,
            passed: false,
            detail: Some(why.to_string()),
        }
    }
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}
