//! Every pair of providers under every scorer (and the weighted score, as
//! [`OVERALL`]): win/tie/loss, a paired bootstrap p-value and McNemar's exact test on
//! pass/fail, over the work items both providers have (same case and repeat).
//!
//! For each pair `(i, j)` with `i < j` in spec order, provider `i` is the baseline and
//! `j` the candidate; a win is the candidate scoring higher. The paired bootstrap uses
//! 1000 resamples from seed 12345 (sacrebleu's); for `bleu` and `chrf` scorers the
//! tested statistic is the corpus score from summed statistics (as sacrebleu), for the
//! others the mean.
//!
//! Identical score vectors: sacrebleu's procedure answers p = 1/1001 there (no
//! resample can exceed a zero difference, and it adds one), which reads as highly
//! significant when nothing differs. Colony reports `identical: true` and p = 1
//! instead, without resampling. McNemar's test gives p = 1 by itself when no case is
//! discordant.

use std::collections::BTreeMap;

use colony_evalstats::{
    paired_bootstrap, paired_bootstrap_with, win_tie_loss, BootstrapConfig, McNemar,
};
use colony_scorers::{bleu, chrf, BleuStats, ChrfStats};
use serde::{Deserialize, Serialize};

use crate::aggregate::provider_results;
use crate::result::CaseResult;
use crate::validated::ValidatedSpec;

/// The pseudo-scorer name of the weighted score (its pass is "every scorer passed").
pub const OVERALL: &str = "overall";

/// Which statistic the paired bootstrap compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// The mean of the per-case values.
    Mean,
    /// Corpus BLEU from summed statistics, in [0, 1].
    CorpusBleu,
    /// Corpus chrF from summed statistics, in [0, 1].
    CorpusChrf,
}

/// A candidate against a baseline under one scorer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline provider (earlier in the spec).
    pub baseline: String,
    /// The candidate provider.
    pub candidate: String,
    /// The scorer's name, or [`OVERALL`].
    pub scorer: String,
    /// Work items both providers have.
    pub n: usize,
    /// Items where the candidate scored higher.
    pub wins: usize,
    /// Items where both scored the same.
    pub ties: usize,
    /// Items where the candidate scored lower.
    pub losses: usize,
    /// What the bootstrap compared.
    pub statistic: Statistic,
    /// The baseline's statistic over the paired items.
    pub baseline_score: Option<f64>,
    /// The candidate's statistic over the paired items.
    pub candidate_score: Option<f64>,
    /// Whether both providers have exactly the same values (and statistics).
    pub identical: bool,
    /// Paired bootstrap p-value (1 when identical; `None` when `n` is 0).
    pub p_value: Option<f64>,
    /// McNemar's exact test on pass/fail (`None` when `n` is 0).
    pub mcnemar: Option<McNemar>,
}

/// One side's per-item data under one scorer.
#[derive(Default)]
struct Side {
    values: Vec<f64>,
    passes: Vec<bool>,
    bleu: Vec<Option<BleuStats>>,
    chrf: Vec<Option<ChrfStats>>,
}

/// Compares every pair of providers under every scorer and [`OVERALL`].
pub fn compare(spec: &ValidatedSpec, results: &[CaseResult]) -> Vec<Comparison> {
    let ids: Vec<&str> = spec.providers().iter().map(|p| p.id.as_str()).collect();
    // Per provider: (repeat, case) -> result, first one kept.
    let by_item: Vec<BTreeMap<(u32, usize), &CaseResult>> = ids
        .iter()
        .map(|id| {
            let mut m = BTreeMap::new();
            for r in provider_results(results, id) {
                m.entry((r.repeat, r.case_index)).or_insert(r);
            }
            m
        })
        .collect();
    let mut scorers: Vec<(String, Statistic)> = spec
        .scorers()
        .iter()
        .map(|s| {
            let stat = match s.kind.as_str() {
                "bleu" => Statistic::CorpusBleu,
                "chrf" => Statistic::CorpusChrf,
                _ => Statistic::Mean,
            };
            (s.name.clone(), stat)
        })
        .collect();
    scorers.push((OVERALL.to_string(), Statistic::Mean));
    let mut out = Vec::new();
    for i in 0..ids.len() {
        for j in i + 1..ids.len() {
            let keys: Vec<&(u32, usize)> = by_item[i]
                .keys()
                .filter(|k| by_item[j].contains_key(k))
                .collect();
            let base: Vec<&CaseResult> = keys
                .iter()
                .filter_map(|k| by_item[i].get(k).copied())
                .collect();
            let cand: Vec<&CaseResult> = keys
                .iter()
                .filter_map(|k| by_item[j].get(k).copied())
                .collect();
            for (name, stat) in &scorers {
                let b = side(&base, name);
                let c = side(&cand, name);
                out.push(pair(ids[i], ids[j], name, *stat, &b, &c));
            }
        }
    }
    out
}

fn side(rs: &[&CaseResult], scorer: &str) -> Side {
    let mut s = Side::default();
    for r in rs {
        let (value, passed) = if scorer == OVERALL {
            (r.weighted_score, r.passed)
        } else {
            match r.score(scorer) {
                Some(rec) => (rec.value, rec.passed),
                None => (0.0, false),
            }
        };
        s.values.push(value);
        s.passes.push(passed);
        s.bleu.push(r.bleu_stats);
        s.chrf.push(r.chrf_stats);
    }
    s
}

fn pair(
    baseline: &str,
    candidate: &str,
    scorer: &str,
    stat: Statistic,
    b: &Side,
    c: &Side,
) -> Comparison {
    let n = b.values.len();
    let wtl = win_tie_loss(&b.values, &c.values).unwrap_or_default();
    let config = BootstrapConfig::default();
    // Corpus statistics need every item's sufficient statistics; otherwise the mean.
    let bleu: Option<(Vec<BleuStats>, Vec<BleuStats>)> = (stat == Statistic::CorpusBleu)
        .then(|| Some((collect(&b.bleu)?, collect(&c.bleu)?)))
        .flatten();
    let chrf: Option<(Vec<ChrfStats>, Vec<ChrfStats>)> = (stat == Statistic::CorpusChrf)
        .then(|| Some((collect(&b.chrf)?, collect(&c.chrf)?)))
        .flatten();
    let (statistic, identical, test) = if let Some((bs, cs)) = bleu {
        let same = b.values == c.values && bs == cs;
        let test = (n > 0 && !same)
            .then(|| paired_bootstrap_with(n, config, corpus_bleu(&bs), corpus_bleu(&cs)).ok())
            .flatten();
        let score =
            |s: &[BleuStats]| (n > 0).then(|| (bleu::corpus_bleu(s) / 100.0).clamp(0.0, 1.0));
        (
            Statistic::CorpusBleu,
            same,
            Scores(score(&bs), score(&cs), test),
        )
    } else if let Some((bs, cs)) = chrf {
        let same = b.values == c.values && bs == cs;
        let test = (n > 0 && !same)
            .then(|| paired_bootstrap_with(n, config, corpus_chrf(&bs), corpus_chrf(&cs)).ok())
            .flatten();
        let score =
            |s: &[ChrfStats]| (n > 0).then(|| (chrf::corpus_chrf(s) / 100.0).clamp(0.0, 1.0));
        (
            Statistic::CorpusChrf,
            same,
            Scores(score(&bs), score(&cs), test),
        )
    } else {
        let same = b.values == c.values;
        let test = (n > 0 && !same)
            .then(|| paired_bootstrap(&b.values, &c.values, config).ok())
            .flatten();
        let mean = |v: &[f64]| (n > 0).then(|| v.iter().sum::<f64>() / n as f64);
        (
            Statistic::Mean,
            same,
            Scores(mean(&b.values), mean(&c.values), test),
        )
    };
    let Scores(baseline_score, candidate_score, test) = test;
    let p_value = if n == 0 {
        None
    } else if identical {
        Some(1.0)
    } else {
        test.map(|t| t.p_value)
    };
    Comparison {
        baseline: baseline.to_string(),
        candidate: candidate.to_string(),
        scorer: scorer.to_string(),
        n,
        wins: wtl.wins,
        ties: wtl.ties,
        losses: wtl.losses,
        statistic,
        baseline_score,
        candidate_score,
        identical: n > 0 && identical,
        p_value,
        mcnemar: (n > 0)
            .then(|| McNemar::from_passes(&b.passes, &c.passes).ok())
            .flatten(),
    }
}

/// Baseline score, candidate score, bootstrap outcome.
struct Scores(
    Option<f64>,
    Option<f64>,
    Option<colony_evalstats::PairedBootstrap>,
);

fn collect<T: Copy>(v: &[Option<T>]) -> Option<Vec<T>> {
    v.iter().copied().collect()
}

/// Corpus BLEU in [0, 1] of the items a resample picks.
fn corpus_bleu(s: &[BleuStats]) -> impl FnMut(&[usize]) -> f64 + '_ {
    move |idx| (bleu::corpus_bleu(&pick_all(s, idx)) / 100.0).clamp(0.0, 1.0)
}

/// Corpus chrF in [0, 1] of the items a resample picks.
fn corpus_chrf(s: &[ChrfStats]) -> impl FnMut(&[usize]) -> f64 + '_ {
    move |idx| (chrf::corpus_chrf(&pick_all(s, idx)) / 100.0).clamp(0.0, 1.0)
}

fn pick_all<T: Copy>(s: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().filter_map(|i| s.get(*i).copied()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::result::{score_case, ProviderOutput};
    use crate::{validate, SpecLimits};
    use serde_json::json;

    fn spec(providers: &[&str]) -> ValidatedSpec {
        let body = json!({
            "providers": providers.iter().map(|id| json!({"id": id, "kind": "builtin", "model": "echo"})).collect::<Vec<_>>(),
            "prompt": "x",
            "cases": (0..6).map(|i| json!({"reference": format!("the answer is number {i}")})).collect::<Vec<_>>(),
            "scorers": [{"type": "exact_match"}, {"type": "bleu"}]
        });
        validate(&body, &SpecLimits::default()).unwrap()
    }

    const A: &str = "the answer is number #";

    fn run(s: &ValidatedSpec, id: &str, outputs: &[&str]) -> Vec<CaseResult> {
        outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let text = o.replace('#', &i.to_string());
                score_case(s, i, id, 0, Ok(ProviderOutput::precomputed(&text)), None).unwrap()
            })
            .collect()
    }

    #[test]
    fn candidate_better_on_some_cases() {
        let s = spec(&["a", "b"]);
        let mut results = run(&s, "a", &[A, "wrong", "wrong", "wrong", A, "wrong"]);
        results.extend(run(&s, "b", &[A; 6]));
        let cmp = compare(&s, &results);
        assert_eq!(cmp.len(), 3);
        let em = &cmp[0];
        assert_eq!((em.baseline.as_str(), em.candidate.as_str()), ("a", "b"));
        assert_eq!((em.n, em.wins, em.ties, em.losses), (6, 4, 2, 0));
        assert_eq!(em.statistic, Statistic::Mean);
        assert_eq!(em.baseline_score, Some(2.0 / 6.0));
        assert_eq!(em.candidate_score, Some(1.0));
        assert!(!em.identical);
        let p = em.p_value.unwrap();
        assert!(p > 0.0 && p < 1.0);
        let m = em.mcnemar.unwrap();
        assert_eq!((m.both_pass, m.baseline_only, m.candidate_only), (2, 0, 4));
        // 2 × P(X <= 0), X ~ Bin(4, 1/2) = 2/16
        assert_eq!(m.p_value, 0.125);
        let bleu = &cmp[1];
        assert_eq!(bleu.statistic, Statistic::CorpusBleu);
        assert_eq!(bleu.candidate_score, Some(1.0));
        assert!(bleu.p_value.is_some());
        assert_eq!(cmp[2].scorer, OVERALL);
    }

    #[test]
    fn identical_providers_report_no_difference() {
        let s = spec(&["a", "b"]);
        let outs = [A, "no", A, "no", "no", "the answer"];
        let mut results = run(&s, "a", &outs);
        results.extend(run(&s, "b", &outs));
        for c in compare(&s, &results) {
            assert!(c.identical, "{c:?}");
            assert_eq!(c.p_value, Some(1.0));
            assert_eq!(c.mcnemar.unwrap().p_value, 1.0);
            assert_eq!((c.wins, c.losses), (0, 0));
        }
    }

    #[test]
    fn only_shared_items_are_paired() {
        let s = spec(&["a", "b", "c"]);
        let mut results = run(&s, "a", &[A; 6]);
        results.extend(run(&s, "b", &[A; 3]));
        let cmp = compare(&s, &results);
        // (a,b), (a,c), (b,c) × 3 scorers
        assert_eq!(cmp.len(), 9);
        assert_eq!(cmp[0].n, 3);
        let none = &cmp[3];
        assert_eq!((none.candidate.as_str(), none.n), ("c", 0));
        assert_eq!(
            (none.p_value, none.mcnemar, none.identical),
            (None, None, false)
        );
    }
}
