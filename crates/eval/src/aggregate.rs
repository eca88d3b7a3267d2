//! Aggregates of stored results: per provider × scorer statistics and per provider
//! totals. Results are taken in plan order (repeat, then case) whatever order they
//! arrive in, so the bootstrap intervals depend only on the results themselves. Every
//! repeat counts as its own sample. Failed calls count with value 0, not passed.
//!
//! Intervals are 95%: Wilson for the pass rate, percentile bootstrap for the mean
//! ([`colony_evalstats::DEFAULT_RESAMPLES`] resamples from
//! [`colony_evalstats::DEFAULT_SEED`]).

use colony_evalstats::{
    bootstrap_mean_ci, wilson_interval, Interval, Summary, DEFAULT_RESAMPLES, DEFAULT_SEED,
};
use colony_scorers::{bleu, chrf, BleuStats, ChrfStats};
use serde::{Deserialize, Serialize};

use crate::result::CaseResult;
use crate::validated::ValidatedSpec;

/// The confidence level of every interval reported.
pub const CONFIDENCE: f64 = 0.95;

/// One provider under one scorer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerStats {
    /// The provider's id.
    pub provider_id: String,
    /// The scorer's name.
    pub scorer: String,
    /// Number of results scored.
    pub n: usize,
    /// Mean value; `None` when `n` is 0.
    pub mean: Option<f64>,
    /// Standard error of the mean (ddof = 1); `None` when `n < 2`.
    pub std_err: Option<f64>,
    /// 95% percentile bootstrap interval of the mean.
    pub mean_ci: Option<Interval>,
    /// Number of results that passed.
    pub passed: usize,
    /// `passed / n`.
    pub pass_rate: Option<f64>,
    /// 95% Wilson interval of the pass rate.
    pub pass_rate_ci: Option<Interval>,
    /// Corpus BLEU or chrF in [0, 1] from the summed statistics (`bleu`/`chrf` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<f64>,
}

/// One provider's totals over all its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderTotals {
    /// The provider's id.
    pub provider_id: String,
    /// Number of results (cases × repeats recorded).
    pub results: usize,
    /// Results whose call failed.
    pub errors: usize,
    /// Results served from the response cache.
    pub cached: usize,
    /// Results where every scorer passed.
    pub passed: usize,
    /// `passed / results`.
    pub pass_rate: Option<f64>,
    /// Mean of the weighted scores.
    pub mean_weighted_score: Option<f64>,
    /// Prompt tokens summed.
    pub prompt_tokens: u64,
    /// Completion tokens summed.
    pub completion_tokens: u64,
    /// Known costs summed; `None` when no result has a cost.
    pub cost_usd: Option<f64>,
    /// Mean latency of the calls made (successful, not cached, not precomputed).
    pub mean_latency_ms: Option<f64>,
}

/// Everything [`aggregate`] computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// One entry per provider, in spec order.
    pub providers: Vec<ProviderTotals>,
    /// One entry per provider × scorer, provider-major, both in spec order.
    pub scorers: Vec<ScorerStats>,
}

/// Results of `provider_id` in plan order (repeat, then case); others are ignored.
pub(crate) fn provider_results<'a>(
    results: &'a [CaseResult],
    provider_id: &str,
) -> Vec<&'a CaseResult> {
    let mut out: Vec<&CaseResult> = results
        .iter()
        .filter(|r| r.provider_id == provider_id)
        .collect();
    out.sort_by_key(|r| (r.repeat, r.case_index));
    out
}

/// Computes totals and per-scorer statistics from stored results.
pub fn aggregate(spec: &ValidatedSpec, results: &[CaseResult]) -> Aggregate {
    let mut providers = Vec::new();
    let mut scorers = Vec::new();
    for p in spec.providers() {
        let rs = provider_results(results, &p.id);
        providers.push(totals(&p.id, &rs));
        for s in spec.scorers() {
            let mut values = Vec::with_capacity(rs.len());
            let mut passes = Vec::with_capacity(rs.len());
            for r in &rs {
                if let Some(rec) = r.score(&s.name) {
                    values.push(rec.value);
                    passes.push(rec.passed);
                }
            }
            let corpus = match s.kind.as_str() {
                "bleu" => {
                    let stats: Vec<BleuStats> = rs.iter().filter_map(|r| r.bleu_stats).collect();
                    (!stats.is_empty()).then(|| bleu::corpus_bleu(&stats) / 100.0)
                }
                "chrf" => {
                    let stats: Vec<ChrfStats> = rs.iter().filter_map(|r| r.chrf_stats).collect();
                    (!stats.is_empty()).then(|| chrf::corpus_chrf(&stats) / 100.0)
                }
                _ => None,
            };
            scorers.push(scorer_stats(&p.id, &s.name, &values, &passes, corpus));
        }
    }
    Aggregate { providers, scorers }
}

fn scorer_stats(
    provider_id: &str,
    scorer: &str,
    values: &[f64],
    passes: &[bool],
    corpus: Option<f64>,
) -> ScorerStats {
    let summary = Summary::of(values, passes).ok();
    let n = values.len();
    let passed = passes.iter().filter(|p| **p).count();
    ScorerStats {
        provider_id: provider_id.to_string(),
        scorer: scorer.to_string(),
        n,
        mean: summary.map(|s| s.mean),
        std_err: summary.and_then(|s| s.std_err),
        mean_ci: bootstrap_mean_ci(values, CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED)
            .ok()
            .map(|ci| ci.interval),
        passed,
        pass_rate: summary.map(|s| s.pass_rate),
        pass_rate_ci: wilson_interval(passed as u64, n as u64, CONFIDENCE).ok(),
        corpus: corpus.map(|c| c.clamp(0.0, 1.0)),
    }
}

fn totals(provider_id: &str, rs: &[&CaseResult]) -> ProviderTotals {
    let n = rs.len();
    let mean = |sum: f64, count: usize| (count > 0).then(|| sum / count as f64);
    let passed = rs.iter().filter(|r| r.passed).count();
    let costs: Vec<f64> = rs.iter().filter_map(|r| r.cost_usd).collect();
    let latencies: Vec<u64> = rs
        .iter()
        .filter(|r| !r.cached && r.attempts > 0)
        .filter_map(|r| r.latency_ms)
        .collect();
    ProviderTotals {
        provider_id: provider_id.to_string(),
        results: n,
        errors: rs.iter().filter(|r| r.error.is_some()).count(),
        cached: rs.iter().filter(|r| r.cached).count(),
        passed,
        pass_rate: mean(passed as f64, n),
        mean_weighted_score: mean(rs.iter().map(|r| r.weighted_score).sum(), n),
        prompt_tokens: rs.iter().map(|r| r.usage.prompt_tokens).sum(),
        completion_tokens: rs.iter().map(|r| r.usage.completion_tokens).sum(),
        cost_usd: (!costs.is_empty()).then(|| costs.iter().sum()),
        mean_latency_ms: mean(latencies.iter().map(|ms| *ms as f64).sum(), latencies.len()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::result::{score_case, Price, ProviderOutput, Usage};
    use crate::{validate, SpecLimits};
    use serde_json::json;

    const Y: &str = "yes it is so";

    fn spec() -> ValidatedSpec {
        let body = json!({
            "providers": [{"id": "a", "kind": "builtin", "model": "echo"},
                          {"id": "b", "kind": "builtin", "model": "echo"}],
            "prompt": "x",
            "cases": [
                {"reference": Y}, {"reference": Y}, {"reference": Y}, {"reference": Y}
            ],
            "scorers": [{"type": "exact_match"}, {"type": "bleu"}]
        });
        validate(&body, &SpecLimits::default()).unwrap()
    }

    fn out(text: &str, latency_ms: u64, prompt_tokens: u64) -> ProviderOutput {
        ProviderOutput {
            text: text.into(),
            latency_ms,
            usage: Usage {
                prompt_tokens,
                completion_tokens: 1,
            },
            cached: false,
            attempts: 1,
            truncated: false,
        }
    }

    #[test]
    fn hand_computed_example() {
        let s = spec();
        let price = Price {
            input_per_1k_usd: 1.0,
            output_per_1k_usd: 2.0,
        };
        // Provider a: yes, no, yes, yes -> exact match 1, 0, 1, 1.
        // Provider b: case 2 fails, the rest say "no".
        let mut results = Vec::new();
        for (i, text) in [Y, "no", Y, Y].iter().enumerate() {
            let o = out(text, 10 * (i as u64 + 1), 1000);
            results.push(score_case(&s, i, "a", 0, Ok(o), Some(&price)).unwrap());
        }
        for i in [3, 0, 1] {
            results.push(score_case(&s, i, "b", 0, Ok(out("no", 5, 0)), None).unwrap());
        }
        results.push(score_case(&s, 2, "b", 0, Err("boom".into()), None).unwrap());
        let agg = aggregate(&s, &results);

        let a = &agg.providers[0];
        assert_eq!((a.results, a.errors, a.passed, a.cached), (4, 0, 3, 0));
        assert_eq!((a.prompt_tokens, a.completion_tokens), (4000, 4));
        // 4 × (1000/1000 × 1 + 1/1000 × 2)
        assert!((a.cost_usd.unwrap() - 4.008).abs() < 1e-12);
        assert_eq!(a.mean_latency_ms, Some(25.0));
        assert_eq!(a.pass_rate, Some(0.75));

        let b = &agg.providers[1];
        assert_eq!((b.results, b.errors, b.passed), (4, 1, 0));
        assert_eq!((b.cost_usd, b.mean_latency_ms), (None, Some(5.0)));

        let em = &agg.scorers[0];
        assert_eq!(
            (em.provider_id.as_str(), em.scorer.as_str()),
            ("a", "exact_match")
        );
        assert_eq!((em.n, em.passed, em.mean), (4, 3, Some(0.75)));
        // Sample sd of 1, 0, 1, 1 is 0.5; stderr 0.5 / 2.
        assert!((em.std_err.unwrap() - 0.25).abs() < 1e-12);
        let ci = em.mean_ci.unwrap();
        assert!(ci.low <= 0.75 && 0.75 <= ci.high && ci.low >= 0.0 && ci.high <= 1.0);
        // statsmodels proportion_confint(3, 4, method="wilson")
        let w = em.pass_rate_ci.unwrap();
        assert!((w.low - 0.300_641_842_6).abs() < 1e-9, "{w:?}");
        assert!((w.high - 0.954_412_739_2).abs() < 1e-9, "{w:?}");
        assert_eq!(em.corpus, None);

        let bleu_a = &agg.scorers[1];
        assert_eq!(bleu_a.scorer, "bleu");
        // 3 × "yes it is so" + "no" against 4 × "yes it is so": 12 of 13 unigrams
        // match, every 2-, 3- and 4-gram (9, 6, 3; "no" has none) does, and the
        // brevity penalty is exp(1 - 16/13).
        let want = (1.0 - 16.0 / 13.0_f64).exp() * (12.0 / 13.0_f64).powf(0.25);
        assert!(
            (bleu_a.corpus.unwrap() - want).abs() < 1e-9,
            "{bleu_a:?} {want}"
        );
        let bleu_b = &agg.scorers[3];
        assert_eq!(bleu_b.corpus, Some(0.0));
        assert_eq!(agg.scorers[2].mean, Some(0.0));
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let s = spec();
        let mut results: Vec<CaseResult> = (0..4)
            .map(|i| {
                let text = if i % 2 == 0 { Y } else { "no" };
                score_case(&s, i, "a", 0, Ok(out(text, 1, 1)), None).unwrap()
            })
            .collect();
        let first = aggregate(&s, &results);
        results.reverse();
        assert_eq!(aggregate(&s, &results), first);
    }

    #[test]
    fn no_results_give_empty_stats() {
        let agg = aggregate(&spec(), &[]);
        let st = &agg.scorers[0];
        assert_eq!(
            (st.n, st.mean, st.mean_ci, st.pass_rate_ci),
            (0, None, None, None)
        );
        assert_eq!(agg.providers[0].mean_latency_ms, None);
    }
}
