//! ROUGE-1, ROUGE-2 and ROUGE-L as Google's `rouge-score` package computes them with
//! its default tokenizer: lowercase, everything but `[a-z0-9]` separates tokens, and
//! optionally NLTK's Porter stemmer on tokens longer than 3 characters. With several
//! references the one with the best F-measure wins (first on ties), as in
//! `RougeScorer.score_multi`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{porter, pystr};

/// Which ROUGE variant to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RougeType {
    /// Unigram overlap.
    Rouge1,
    /// Bigram overlap.
    Rouge2,
    /// Longest common subsequence.
    RougeL,
}

/// Precision, recall and F-measure of one comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RougeScore {
    /// Matches over prediction length.
    pub precision: f64,
    /// Matches over target length.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub fmeasure: f64,
}

/// rouge-score's default tokenizer.
pub fn tokenize(text: &str, use_stemmer: bool) -> Vec<String> {
    let lowered = pystr::lower(text);
    lowered
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| {
            if use_stemmer && t.len() > 3 {
                porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .collect()
}

/// How many tokens [`tokenize`] yields for `text`, without building them (stemming
/// never changes the count); ROUGE-L's table has one row or column per token.
pub fn token_count(text: &str) -> u64 {
    pystr::lower(text)
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .count() as u64
}

fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

fn count_ngrams(tokens: &[String], n: usize) -> HashMap<&[String], u64> {
    let mut m = HashMap::new();
    for w in tokens.windows(n) {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

fn score_ngrams(target: &[String], prediction: &[String], n: usize) -> RougeScore {
    let (t, p) = (count_ngrams(target, n), count_ngrams(prediction, n));
    let intersection: u64 = t
        .iter()
        .map(|(g, c)| (*c).min(p.get(g).copied().unwrap_or(0)))
        .sum();
    let target_count: u64 = t.values().sum();
    let prediction_count: u64 = p.values().sum();
    let precision = intersection as f64 / prediction_count.max(1) as f64;
    let recall = intersection as f64 / target_count.max(1) as f64;
    RougeScore {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn score_lcs(target: &[String], prediction: &[String]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_len(target, prediction) as f64;
    let precision = lcs / prediction.len() as f64;
    let recall = lcs / target.len() as f64;
    RougeScore {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// `RougeScorer([kind], use_stemmer).score(target, prediction)[kind]`.
pub fn score(kind: RougeType, target: &str, prediction: &str, use_stemmer: bool) -> RougeScore {
    let t = tokenize(target, use_stemmer);
    let p = tokenize(prediction, use_stemmer);
    match kind {
        RougeType::Rouge1 => score_ngrams(&t, &p, 1),
        RougeType::Rouge2 => score_ngrams(&t, &p, 2),
        RougeType::RougeL => score_lcs(&t, &p),
    }
}

/// `RougeScorer([kind], use_stemmer).score_multi(targets, prediction)[kind]`;
/// zeros when there are no targets.
pub fn score_multi(
    kind: RougeType,
    targets: &[String],
    prediction: &str,
    use_stemmer: bool,
) -> RougeScore {
    let mut best: Option<RougeScore> = None;
    for t in targets {
        let s = score(kind, t, prediction, use_stemmer);
        // np.argmax keeps the first maximum.
        if best.is_none_or(|b| s.fmeasure > b.fmeasure) {
            best = Some(s);
        }
    }
    best.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_drops_non_alnum() {
        assert_eq!(
            tokenize("Héllo, WORLD-42!", false),
            ["h", "llo", "world", "42"]
        );
        assert_eq!(
            tokenize("The runners running", true),
            ["the", "runner", "run"]
        );
    }

    #[test]
    fn token_count_matches_tokenize() {
        for text in [
            "Héllo, WORLD-42!",
            "The runners running",
            "",
            "  ",
            "\u{212a}elvin x",
        ] {
            for stem in [false, true] {
                assert_eq!(
                    token_count(text),
                    tokenize(text, stem).len() as u64,
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn rouge_l_of_identical_is_one() {
        let s = score(RougeType::RougeL, "a b c", "a b c", false);
        assert_eq!(s.fmeasure, 1.0);
    }
}
