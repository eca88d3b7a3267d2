//! One work item's result record and [`score_case`], which runs every scorer on a
//! provider's output.
//!
//! A failed call (`Err` output) is recorded with its error and every scorer at value 0,
//! not passed: aggregates and comparisons count an error as a failed case, so a flaky
//! provider cannot look better by failing on hard cases.
//!
//! Cost: `prompt_tokens / 1000 × input_per_1k_usd + completion_tokens / 1000 ×
//! output_per_1k_usd` in f64, not rounded (round when displaying). A cached output cost
//! nothing (0); without a price the cost is unknown (`None`), and a `cost_usd` scorer
//! then fails.

use colony_scorers::{bleu, chrf, BleuStats, ChrfStats, ScoreInput};
use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::plan::{WorkItem, WorkKey};
use crate::validated::ValidatedSpec;

/// Tokens a call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the completion.
    pub completion_tokens: u64,
}

impl Usage {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// A model's price in US dollars per 1000 tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Price of 1000 prompt tokens.
    pub input_per_1k_usd: f64,
    /// Price of 1000 completion tokens.
    pub output_per_1k_usd: f64,
}

impl Price {
    /// The cost of `usage`, unrounded.
    pub fn cost(&self, usage: &Usage) -> f64 {
        usage.prompt_tokens as f64 / 1000.0 * self.input_per_1k_usd
            + usage.completion_tokens as f64 / 1000.0 * self.output_per_1k_usd
    }
}

/// What a provider answered, with the measurements the node took.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderOutput {
    /// The completion text.
    pub text: String,
    /// Wall time of the successful attempt in milliseconds.
    pub latency_ms: u64,
    /// Tokens used.
    pub usage: Usage,
    /// Whether it came from the response cache.
    pub cached: bool,
    /// Calls made, retries included (0 for a precomputed output).
    pub attempts: u32,
    /// Whether the text was cut to the node's `evaluations.max_output_bytes`.
    #[serde(default)]
    pub truncated: bool,
}

impl ProviderOutput {
    /// Cuts the text to at most `max` bytes (on a character boundary), marking it.
    pub fn truncate_to(&mut self, max: usize) {
        if self.text.len() > max {
            let mut end = max;
            while !self.text.is_char_boundary(end) {
                end -= 1;
            }
            self.text.truncate(end);
            self.truncated = true;
        }
    }
}

impl ProviderOutput {
    /// A precomputed output from the spec (score-only mode): no call, no measurements.
    pub fn precomputed(text: &str) -> ProviderOutput {
        ProviderOutput {
            text: text.to_string(),
            ..ProviderOutput::default()
        }
    }
}

/// One scorer's verdict in a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    /// The scorer's name (`bleu`, `bleu#2` for the second BLEU scorer).
    pub scorer: String,
    /// The score in [0, 1].
    pub value: f64,
    /// Whether the value reached the scorer's threshold.
    pub passed: bool,
    /// The scorer's weight.
    pub weight: f64,
    /// Why it failed or what was measured, when the scorer says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The record of one work item: output, scores, measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Index into the spec's `cases`.
    pub case_index: usize,
    /// The provider's id.
    pub provider_id: String,
    /// Which repetition, from 0.
    pub repeat: u32,
    /// The output text; `None` when the call failed.
    pub output: Option<String>,
    /// One record per scorer, in spec order.
    pub scores: Vec<ScoreRecord>,
    /// Weighted mean of the values (plain mean when all weights are 0).
    pub weighted_score: f64,
    /// Whether every scorer passed (false on error).
    pub passed: bool,
    /// Latency of the call; `None` when it failed.
    pub latency_ms: Option<u64>,
    /// Tokens used.
    pub usage: Usage,
    /// Cost in US dollars; `None` without a price or on error.
    pub cost_usd: Option<f64>,
    /// Why the call failed.
    pub error: Option<String>,
    /// Whether the output came from the response cache.
    pub cached: bool,
    /// Calls made, retries included.
    pub attempts: u32,
    /// Whether the output was cut to the node's output limit before it was scored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_truncated: bool,
    /// BLEU sufficient statistics (when a `bleu` scorer is configured), for corpus BLEU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bleu_stats: Option<BleuStats>,
    /// chrF sufficient statistics (when a `chrf` scorer is configured), for corpus chrF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chrf_stats: Option<ChrfStats>,
}

impl CaseResult {
    /// The work item this result records.
    pub fn work_item(&self) -> WorkItem {
        WorkItem {
            case_index: self.case_index,
            provider_id: self.provider_id.clone(),
            repeat: self.repeat,
        }
    }

    /// The stable key of the work item.
    pub fn key(&self) -> WorkKey {
        self.work_item().key()
    }

    /// The record of the scorer named `name`.
    pub fn score(&self, name: &str) -> Option<&ScoreRecord> {
        self.scores.iter().find(|s| s.scorer == name)
    }
}

/// Scores one work item's output with every scorer of the spec. Errors only when the
/// case, provider or repeat is not in the spec. On an `Err` output, `attempts` is 0;
/// the caller may set it.
pub fn score_case(
    spec: &ValidatedSpec,
    case_index: usize,
    provider_id: &str,
    repeat: u32,
    output: Result<ProviderOutput, String>,
    pricing: Option<&Price>,
) -> Result<CaseResult, EvalError> {
    let case = spec.case(case_index)?;
    spec.provider(provider_id)?;
    if repeat >= spec.spec().repeat() {
        return Err(EvalError::UnknownRepeat(repeat));
    }
    let references = case.references();
    let (text, error) = match &output {
        Ok(o) => (o.text.as_str(), None),
        Err(e) => ("", Some(e.clone())),
    };
    let cost_usd = match (&output, pricing) {
        (Ok(o), _) if o.cached => pricing.map(|_| 0.0),
        (Ok(o), Some(price)) => Some(price.cost(&o.usage)),
        _ => None,
    };
    let latency_ms = output.as_ref().ok().map(|o| o.latency_ms);
    let input = ScoreInput {
        output: text,
        references: &references,
        latency_ms: latency_ms.map(|ms| ms as f64),
        cost_usd,
    };
    let scores: Vec<ScoreRecord> = spec
        .scorers()
        .iter()
        .map(|s| {
            let weight = s.scorer.weight();
            if error.is_some() {
                return ScoreRecord {
                    scorer: s.name.clone(),
                    value: 0.0,
                    passed: false,
                    weight,
                    detail: Some("no output: the call failed".to_string()),
                };
            }
            let score = s.scorer.score(&input);
            ScoreRecord {
                scorer: s.name.clone(),
                value: score.value,
                passed: score.passed,
                weight,
                detail: score.detail,
            }
        })
        .collect();
    let has = |kind: &str| spec.scorers().iter().any(|s| s.kind == kind);
    // An error counts as an empty hypothesis, as its score counts as 0.
    let bleu_stats =
        (has("bleu") && !references.is_empty()).then(|| bleu::sentence_stats(text, &references));
    let chrf_stats =
        (has("chrf") && !references.is_empty()).then(|| chrf::sentence_stats(text, &references));
    let (usage, cached, attempts, output_truncated) = match &output {
        Ok(o) => (o.usage, o.cached, o.attempts, o.truncated),
        Err(_) => (Usage::default(), false, 0, false),
    };
    Ok(CaseResult {
        case_index,
        provider_id: provider_id.to_string(),
        repeat,
        output: output.ok().map(|o| o.text),
        weighted_score: weighted_mean(&scores),
        passed: error.is_none() && scores.iter().all(|s| s.passed),
        scores,
        latency_ms,
        usage,
        cost_usd,
        error,
        output_truncated,
        cached,
        attempts,
        bleu_stats,
        chrf_stats,
    })
}

/// Σ weight·value / Σ weight, or the plain mean when every weight is 0 (0 for none).
fn weighted_mean(scores: &[ScoreRecord]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let total: f64 = scores.iter().map(|s| s.weight).sum();
    if total > 0.0 {
        scores.iter().map(|s| s.weight * s.value).sum::<f64>() / total
    } else {
        scores.iter().map(|s| s.value).sum::<f64>() / scores.len() as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{validate, SpecLimits};
    use serde_json::json;

    fn spec() -> ValidatedSpec {
        let body = json!({
            "providers": [{"id": "echo", "kind": "builtin", "model": "echo"}],
            "prompt": "The answer is {{answer}}",
            "cases": [
                {"vars": {"answer": "Paris"}, "reference": "The answer is Paris"},
                {"vars": {"answer": 42}, "references": ["The answer is 41", "The answer is 42"]}
            ],
            "scorers": [
                {"type": "exact_match"},
                {"type": "contains", "value": "answer", "weight": 3},
                {"type": "bleu"},
                {"type": "latency_ms", "max": 100},
                {"type": "cost_usd", "max": 0.01, "weight": 0}
            ]
        });
        validate(&body, &SpecLimits::default()).unwrap()
    }

    fn echo(spec: &ValidatedSpec, case: usize) -> ProviderOutput {
        ProviderOutput {
            text: spec.render(case).unwrap().echo_text(),
            latency_ms: 20,
            usage: Usage {
                prompt_tokens: 1500,
                completion_tokens: 500,
            },
            cached: false,
            attempts: 1,
            truncated: false,
        }
    }

    const PRICE: Price = Price {
        input_per_1k_usd: 0.002,
        output_per_1k_usd: 0.004,
    };

    #[test]
    fn echo_outputs_score_end_to_end() {
        let s = spec();
        let r = score_case(&s, 1, "echo", 0, Ok(echo(&s, 1)), Some(&PRICE)).unwrap();
        assert_eq!(r.output.as_deref(), Some("The answer is 42"));
        let names: Vec<&str> = r.scores.iter().map(|x| x.scorer.as_str()).collect();
        assert_eq!(
            names,
            ["exact_match", "contains", "bleu", "latency_ms", "cost_usd"]
        );
        assert!(r.scores.iter().all(|x| x.passed), "{r:?}");
        assert!((r.score("bleu").unwrap().value - 1.0).abs() < 1e-9);
        // 1.5 × 0.002 + 0.5 × 0.004
        assert!((r.cost_usd.unwrap() - 0.005).abs() < 1e-15);
        assert!(r.passed);
        assert!((r.weighted_score - 1.0).abs() < 1e-9);
        assert_eq!(r.bleu_stats.unwrap().sys_len, 4);
        assert_eq!(r.chrf_stats, None);
        assert_eq!(r.key().as_str(), "1/0/echo");
    }

    #[test]
    fn weights_and_measurements() {
        let s = spec();
        let mut out = echo(&s, 0);
        out.text = "the answer is paris!".into();
        out.latency_ms = 101;
        let r = score_case(&s, 0, "echo", 0, Ok(out), Some(&PRICE)).unwrap();
        let v: Vec<(f64, bool)> = r.scores.iter().map(|x| (x.value, x.passed)).collect();
        // exact_match normalizes case and punctuation; latency 101 > 100.
        assert_eq!(v[0], (1.0, true));
        assert_eq!(v[1], (1.0, true));
        assert_eq!(v[3], (0.0, false));
        assert!(!r.passed);
        // weights 1, 3, 1, 1, 0 over values 1, 1, bleu, 0, 1
        let bleu = v[2].0;
        assert!((r.weighted_score - (1.0 + 3.0 + bleu) / 6.0).abs() < 1e-12);
    }

    #[test]
    fn errors_score_zero_and_fail() {
        let s = spec();
        let r = score_case(&s, 0, "echo", 0, Err("timeout".into()), Some(&PRICE)).unwrap();
        assert_eq!(r.error.as_deref(), Some("timeout"));
        assert_eq!(r.output, None);
        assert!(r.scores.iter().all(|x| x.value == 0.0 && !x.passed));
        assert_eq!((r.weighted_score, r.passed), (0.0, false));
        assert_eq!((r.latency_ms, r.cost_usd), (None, None));
        // Still counts towards corpus BLEU as an empty hypothesis.
        assert_eq!(r.bleu_stats.unwrap().sys_len, 0);
    }

    #[test]
    fn cached_costs_nothing_and_no_price_is_unknown() {
        let s = spec();
        let mut out = echo(&s, 0);
        out.cached = true;
        let r = score_case(&s, 0, "echo", 0, Ok(out.clone()), Some(&PRICE)).unwrap();
        assert_eq!(r.cost_usd, Some(0.0));
        let r = score_case(&s, 0, "echo", 0, Ok(out), None).unwrap();
        assert_eq!(r.cost_usd, None);
        assert!(!r.score("cost_usd").unwrap().passed);
    }

    #[test]
    fn unknown_items_are_errors() {
        let s = spec();
        let ok = || Ok(ProviderOutput::precomputed("x"));
        assert_eq!(
            score_case(&s, 2, "echo", 0, ok(), None),
            Err(EvalError::UnknownCase(2))
        );
        assert_eq!(
            score_case(&s, 0, "nope", 0, ok(), None),
            Err(EvalError::UnknownProvider("nope".into()))
        );
        assert_eq!(
            score_case(&s, 0, "echo", 1, ok(), None),
            Err(EvalError::UnknownRepeat(1))
        );
    }

    #[test]
    fn record_serializes_with_named_fields() {
        let s = spec();
        let r = score_case(&s, 0, "echo", 0, Ok(echo(&s, 0)), Some(&PRICE)).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "case_index",
            "provider_id",
            "repeat",
            "output",
            "scores",
            "weighted_score",
            "passed",
            "latency_ms",
            "usage",
            "cost_usd",
            "error",
            "cached",
            "attempts",
            "bleu_stats",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        let back: CaseResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
