//! A checked, ready-to-run scorer built from a [`ScorerSpec`].

use regex::Regex;

use crate::error::ConfigError;
use crate::json_schema::JsonSchema;
use crate::numeric::{self, Pick};
use crate::rouge::{self, RougeType};
use crate::score::{Score, ScoreInput};
use crate::spec::{ScorerKind, ScorerSpec};
use crate::text::PatternError;
use crate::{bleu, chrf, levenshtein, squad, text, MAX_DP_CELLS};

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
                Check::Regex(text::compile_pattern(pattern).map_err(|e| match e {
                    PatternError::Invalid(source) => ConfigError::Regex {
                        pattern: pattern.clone(),
                        source,
                    },
                    other => ConfigError::Limit {
                        field: "pattern",
                        message: other.detail(),
                    },
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

    /// How many compiled regexes the scorer holds (its `pattern`, or its schema's).
    pub fn regex_count(&self) -> usize {
        match &self.check {
            Check::Regex(_) => 1,
            Check::JsonSchema(schema) => schema.pattern_count(),
            _ => 0,
        }
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
            Check::Levenshtein => {
                let sizes = refs.iter().map(|r| levenshtein::table_size(out, r));
                if let Err(why) = within_dp_cells("levenshtein", "characters", sizes) {
                    return self.fail(&why);
                }
                refs.iter()
                    .map(|r| levenshtein::normalized_similarity(out, r))
                    .fold(0.0, f64::max)
            }
            Check::Bleu => bleu::sentence_bleu(out, refs) / 100.0,
            Check::Chrf => chrf::sentence_chrf(out, refs) / 100.0,
            Check::Rouge(kind, stem) => {
                if *kind == RougeType::RougeL {
                    let n = rouge::token_count(out);
                    let sizes = refs.iter().map(|r| (n, rouge::token_count(r)));
                    if let Err(why) = within_dp_cells("rougeL", "tokens", sizes) {
                        return self.fail(&why);
                    }
                }
                rouge::score_multi(*kind, refs, out, *stem).fmeasure
            }
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

/// Whether tables of `sizes` (output by reference, in `unit`s) stay within
/// [`MAX_DP_CELLS`], each and in all; if not, the detail to fail with.
fn within_dp_cells(
    metric: &str,
    unit: &str,
    sizes: impl Iterator<Item = (u64, u64)>,
) -> Result<(), String> {
    let mut total: u64 = 0;
    for (i, (n, m)) in sizes.enumerate() {
        let cells = n.saturating_mul(m);
        if cells > MAX_DP_CELLS {
            return Err(format!(
                "output and reference too long for {metric} \
                 ({n} x {m} {unit} is over the limit of {MAX_DP_CELLS} cells)"
            ));
        }
        total = total.saturating_add(cells);
        if total > MAX_DP_CELLS {
            return Err(format!(
                "output and references too long for {metric} \
                 ({total} cells for the first {} references is over the limit of \
                 {MAX_DP_CELLS} cells)",
                i + 1
            ));
        }
    }
    Ok(())
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn build(v: serde_json::Value) -> Result<Scorer, ConfigError> {
        match serde_json::from_value::<ScorerSpec>(v) {
            Ok(spec) => spec.build(),
            Err(e) => panic!("bad spec: {e}"),
        }
    }

    fn scorer(v: serde_json::Value) -> Scorer {
        match build(v) {
            Ok(s) => s,
            Err(e) => panic!("rejected: {e}"),
        }
    }

    fn score(s: &Scorer, output: &str, refs: &[String]) -> Score {
        s.score(&ScoreInput::new(output, refs))
    }

    #[test]
    fn regex_patterns_compile_within_limits() {
        for bomb in [r"\w{5000}", r"(\w{100}){100}"] {
            match build(json!({"type": "regex", "pattern": bomb})) {
                Err(
                    e @ ConfigError::Limit {
                        field: "pattern", ..
                    },
                ) => {
                    assert!(e.to_string().contains("limit of"), "{e}");
                }
                other => panic!("{bomb}: {other:?}"),
            }
        }
        let long = "a".repeat(text::MAX_PATTERN_LEN + 1);
        match build(json!({"type": "regex", "pattern": long})) {
            Err(
                e @ ConfigError::Limit {
                    field: "pattern", ..
                },
            ) => {
                assert!(
                    e.to_string().starts_with("pattern is 1025 bytes long"),
                    "{e}"
                );
            }
            other => panic!("long pattern: {other:?}"),
        }
        assert!(matches!(
            build(json!({"type": "regex", "pattern": "("})),
            Err(ConfigError::Regex { .. })
        ));
        let s = scorer(json!({"type": "regex", "pattern": r"^\d+$"}));
        assert!(score(&s, "123", &[]).passed);
    }

    #[test]
    fn levenshtein_work_is_capped() {
        let s = scorer(json!({"type": "levenshtein"}));
        // 6000 x 5000 = 30 million cells.
        let refs = vec!["b".repeat(5_000)];
        let got = score(&s, &"a".repeat(6_000), &refs);
        assert!(!got.passed && got.value == 0.0);
        let detail = got.detail.unwrap_or_default();
        assert!(
            detail.contains("too long for levenshtein (6000 x 5000 characters"),
            "{detail}"
        );
        // Two references of 16 million cells each: over the limit together.
        let refs = vec!["b".repeat(4_000), "c".repeat(4_000)];
        let detail = score(&s, &"a".repeat(4_000), &refs)
            .detail
            .unwrap_or_default();
        assert!(
            detail.contains("references too long for levenshtein"),
            "{detail}"
        );
        // Long but identical texts leave no table to fill.
        let refs = vec!["a".repeat(20_000)];
        assert_eq!(score(&s, &"a".repeat(20_000), &refs).value, 1.0);
        let refs = vec!["kitten".to_string()];
        let got = score(&s, "sitting", &refs);
        assert_eq!(
            got.value,
            levenshtein::normalized_similarity("sitting", "kitten")
        );
        assert_eq!(got.detail, None);
    }

    #[test]
    fn rouge_l_work_is_capped() {
        let s = scorer(json!({"type": "rougeL"}));
        let refs = vec!["w ".repeat(5_000)];
        let got = score(&s, &"w ".repeat(6_000), &refs);
        assert!(!got.passed && got.value == 0.0);
        let detail = got.detail.unwrap_or_default();
        assert!(
            detail.contains("too long for rougeL (6000 x 5000 tokens"),
            "{detail}"
        );
        // ROUGE-1 has no table; the same texts score normally.
        let s1 = scorer(json!({"type": "rouge1"}));
        assert_eq!(score(&s1, &"w ".repeat(6_000), &refs).detail, None);
        let refs = vec!["the cat sat".to_string()];
        let got = score(&s, "the cat sat down", &refs);
        let want = rouge::score_multi(RougeType::RougeL, &refs, "the cat sat down", false);
        assert_eq!(got.value, want.fmeasure);
    }
}
