//! chrF exactly as sacrebleu 2.x with its defaults: character n-grams up to 6, no
//! word n-grams, beta 2, whitespace removed, case sensitive. Averaging follows
//! sacrebleu's default (`eps_smoothing=False`: precision and recall are averaged
//! over the orders both sides have, then combined); the chrF++.py-style epsilon
//! smoothing is available as [`ChrfStats::score_eps`]. With several references the
//! segment keeps the statistics of the best-scoring one, as sacrebleu does.
//! Scores are on sacrebleu's 0–100 scale.

use std::collections::HashMap;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::pystr;

/// Highest character n-gram order.
pub const CHAR_ORDER: usize = 6;
const BETA: f64 = 2.0;
const EPS: f64 = 1e-16;

/// Per-order counts of one segment (or a sum of segments) for chrF.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChrfStats {
    /// Hypothesis n-grams per order (0 when the reference has none of that order).
    pub hyp: [u64; CHAR_ORDER],
    /// Reference n-grams per order.
    pub reference: [u64; CHAR_ORDER],
    /// Clipped matches per order.
    pub matched: [u64; CHAR_ORDER],
}

impl AddAssign for ChrfStats {
    fn add_assign(&mut self, o: Self) {
        for n in 0..CHAR_ORDER {
            self.hyp[n] += o.hyp[n];
            self.reference[n] += o.reference[n];
            self.matched[n] += o.matched[n];
        }
    }
}

impl Add for ChrfStats {
    type Output = Self;
    fn add(mut self, o: Self) -> Self {
        self += o;
        self
    }
}

impl std::iter::Sum for ChrfStats {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

fn counts(chars: &[char]) -> Vec<HashMap<&[char], u64>> {
    (1..=CHAR_ORDER)
        .map(|n| {
            let mut m = HashMap::new();
            for w in chars.windows(n) {
                *m.entry(w).or_insert(0) += 1;
            }
            m
        })
        .collect()
}

fn stats_against(hyp: &[HashMap<&[char], u64>], reference: &[HashMap<&[char], u64>]) -> ChrfStats {
    let mut s = ChrfStats::default();
    for n in 0..CHAR_ORDER {
        let (h, r) = (&hyp[n], &reference[n]);
        let mut hyp_count = 0;
        let mut matched = 0;
        for (g, c) in h {
            hyp_count += c;
            if let Some(rc) = r.get(g) {
                matched += (*c).min(*rc);
            }
        }
        // sacrebleu does not count hypothesis n-grams of an order the reference lacks.
        s.hyp[n] = if r.is_empty() { 0 } else { hyp_count };
        s.reference[n] = r.values().sum();
        s.matched[n] = matched;
    }
    s
}

fn strip_spaces(s: &str) -> Vec<char> {
    s.chars().filter(|c| !pystr::is_space(*c)).collect()
}

/// sacrebleu's segment statistics: those of the reference with the best chrF
/// (the first one on ties). Empty statistics when there are no references.
pub fn sentence_stats(hypothesis: &str, references: &[String]) -> ChrfStats {
    best_stats(hypothesis, references, ChrfStats::score)
}

/// As [`sentence_stats`], for `eps_smoothing=True` (which also picks the best
/// reference by the smoothed score).
pub fn sentence_stats_eps(hypothesis: &str, references: &[String]) -> ChrfStats {
    best_stats(hypothesis, references, ChrfStats::score_eps)
}

fn best_stats(
    hypothesis: &str,
    references: &[String],
    f_score: fn(&ChrfStats) -> f64,
) -> ChrfStats {
    let hyp_chars = strip_spaces(hypothesis);
    let hyp = counts(&hyp_chars);
    let mut best = ChrfStats::default();
    let mut best_f = -1.0;
    for r in references {
        let ref_chars = strip_spaces(r);
        let s = stats_against(&hyp, &counts(&ref_chars));
        let f = f_score(&s);
        if f > best_f {
            best_f = f;
            best = s;
        }
    }
    best
}

impl ChrfStats {
    fn order_values(&self, n: usize) -> (f64, f64, bool) {
        let (h, r, m) = (self.hyp[n], self.reference[n], self.matched[n]);
        let prec = if h > 0 { m as f64 / h as f64 } else { EPS };
        let rec = if r > 0 { m as f64 / r as f64 } else { EPS };
        (prec, rec, h > 0 && r > 0)
    }

    /// sacrebleu `CHRF._compute_f_score` with its default `eps_smoothing=False`; 0–100.
    pub fn score(&self) -> f64 {
        let factor = BETA * BETA;
        let (mut avg_prec, mut avg_rec, mut effective_order) = (0.0, 0.0, 0usize);
        for n in 0..CHAR_ORDER {
            let (prec, rec, counted) = self.order_values(n);
            if counted {
                avg_prec += prec;
                avg_rec += rec;
                effective_order += 1;
            }
        }
        if effective_order == 0 {
            return 0.0;
        }
        avg_prec /= effective_order as f64;
        avg_rec /= effective_order as f64;
        if avg_prec + avg_rec == 0.0 {
            return 0.0;
        }
        let mut score = (1.0 + factor) * avg_prec * avg_rec;
        score /= (factor * avg_prec) + avg_rec;
        100.0 * score
    }

    /// sacrebleu `CHRF._compute_f_score` with `eps_smoothing=True`; 0–100.
    pub fn score_eps(&self) -> f64 {
        let factor = BETA * BETA;
        let mut score = 0.0;
        for n in 0..CHAR_ORDER {
            let (prec, rec, _) = self.order_values(n);
            let denom = factor * prec + rec;
            score += if denom > 0.0 {
                (1.0 + factor) * prec * rec / denom
            } else {
                EPS
            };
        }
        100.0 * score / CHAR_ORDER as f64
    }
}

/// `sacrebleu.sentence_chrf(hypothesis, references).score`.
pub fn sentence_chrf(hypothesis: &str, references: &[String]) -> f64 {
    sentence_stats(hypothesis, references).score()
}

/// `sacrebleu.sentence_chrf(hypothesis, references, eps_smoothing=True).score`.
pub fn sentence_chrf_eps(hypothesis: &str, references: &[String]) -> f64 {
    sentence_stats_eps(hypothesis, references).score_eps()
}

/// `sacrebleu.corpus_chrf` from per-segment statistics.
pub fn corpus_chrf(stats: &[ChrfStats]) -> f64 {
    stats.iter().copied().sum::<ChrfStats>().score()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_is_100() {
        let r = vec!["a cat".to_string()];
        assert!((sentence_chrf("a cat", &r) - 100.0).abs() < 1e-9);
        assert_eq!(sentence_chrf("xyz", &r), 0.0);
    }
}
