//! BLEU exactly as sacrebleu 2.x with its defaults: the `13a` tokenizer, case
//! sensitive, `smooth_method='exp'`, n-grams up to 4, closest reference length
//! (ties go to the shorter reference). Sentence BLEU uses the effective order, as
//! `sacrebleu.sentence_bleu` does; corpus BLEU sums [`BleuStats`] over segments and
//! does not, as `sacrebleu.corpus_bleu` does not. Scores are on sacrebleu's 0–100 scale.

use std::collections::HashMap;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::pystr;

/// Highest n-gram order counted.
pub const MAX_NGRAM_ORDER: usize = 4;

/// One segment's (or a sum of segments') sufficient statistics for BLEU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BleuStats {
    /// Hypothesis length in tokens.
    pub sys_len: u64,
    /// Length of the reference closest in length to the hypothesis.
    pub ref_len: u64,
    /// Clipped n-gram matches per order (1..=4).
    pub correct: [u64; MAX_NGRAM_ORDER],
    /// Hypothesis n-grams per order (1..=4).
    pub total: [u64; MAX_NGRAM_ORDER],
}

impl AddAssign for BleuStats {
    fn add_assign(&mut self, o: Self) {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_NGRAM_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

impl Add for BleuStats {
    type Output = Self;
    fn add(mut self, o: Self) -> Self {
        self += o;
        self
    }
}

impl std::iter::Sum for BleuStats {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// sacrebleu's `13a` tokenizer (mteval-v13a), applied after `rstrip()` as BLEU does.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = pystr::rstrip(line)
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut chars: Vec<char> = Vec::with_capacity(line.len() + 2);
    chars.push(' ');
    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 '
    for c in line.chars() {
        let symbol = matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/');
        if symbol {
            chars.extend([' ', c, ' ']);
        } else {
            chars.push(c);
        }
    }
    chars.push(' ');
    let digit = |c: char| c.is_ascii_digit();
    let punct = |c: char| c == '.' || c == ',';
    // ([^0-9])([\.,]) -> '\1 \2 '
    let chars = sub_pairs(
        &chars,
        |a, b| !digit(a) && punct(b),
        |a, b| vec![a, ' ', b, ' '],
    );
    // ([\.,])([^0-9]) -> ' \1 \2'
    let chars = sub_pairs(
        &chars,
        |a, b| punct(a) && !digit(b),
        |a, b| vec![' ', a, ' ', b],
    );
    // ([0-9])(-) -> '\1 \2 '
    let chars = sub_pairs(
        &chars,
        |a, b| digit(a) && b == '-',
        |a, b| vec![a, ' ', b, ' '],
    );
    let s: String = chars.into_iter().collect();
    pystr::collapse_spaces(&s)
}

/// `re.sub` for a two-character pattern: scan left to right, replace
/// non-overlapping matches.
fn sub_pairs(
    chars: &[char],
    is_match: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> Vec<char>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && is_match(chars[i], chars[i + 1]) {
            out.extend(replace(chars[i], chars[i + 1]));
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

type Ngrams<'a> = HashMap<&'a [&'a str], u64>;

fn ngrams<'a>(tokens: &'a [&'a str]) -> Ngrams<'a> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_NGRAM_ORDER {
        for w in tokens.windows(n) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

/// sacrebleu's segment statistics of `hypothesis` against `references`
/// (reference n-gram counts are the maximum over references).
pub fn sentence_stats(hypothesis: &str, references: &[String]) -> BleuStats {
    let hyp = tokenize_13a(hypothesis);
    let hyp_tokens: Vec<&str> = pystr::split(&hyp).collect();
    let refs: Vec<String> = references.iter().map(|r| tokenize_13a(r)).collect();
    let ref_tokens: Vec<Vec<&str>> = refs.iter().map(|r| pystr::split(r).collect()).collect();
    let mut ref_ngrams: Ngrams<'_> = HashMap::new();
    for tokens in &ref_tokens {
        for (g, c) in ngrams(tokens) {
            let e = ref_ngrams.entry(g).or_insert(0);
            *e = (*e).max(c);
        }
    }
    let hyp_len = hyp_tokens.len() as u64;
    let ref_len = closest_ref_len(hyp_len, ref_tokens.iter().map(|t| t.len() as u64));
    let mut stats = BleuStats {
        sys_len: hyp_len,
        ref_len,
        ..BleuStats::default()
    };
    for (g, c) in ngrams(&hyp_tokens) {
        let n = g.len() - 1;
        stats.total[n] += c;
        if let Some(r) = ref_ngrams.get(g) {
            stats.correct[n] += c.min(*r);
        }
    }
    stats
}

/// sacrebleu `_get_closest_ref_len`; -1 (here 0) when there are no references.
fn closest_ref_len(hyp_len: u64, ref_lens: impl Iterator<Item = u64>) -> u64 {
    let mut best: Option<(u64, u64)> = None;
    for len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            Some((d, l)) if diff > d || (diff == d && len >= l) => Some((d, l)),
            _ => Some((diff, len)),
        };
    }
    best.map_or(0, |(_, l)| l)
}

/// sacrebleu `my_log`: log with log(0) floored.
fn my_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

impl BleuStats {
    /// sacrebleu `BLEU.compute_bleu` with `smooth_method='exp'`; 0–100.
    pub fn score(&self, effective_order: bool) -> f64 {
        let (sys_len, ref_len) = (self.sys_len as f64, self.ref_len as f64);
        let mut bp = 1.0;
        if self.sys_len < self.ref_len {
            bp = if self.sys_len > 0 {
                (1.0 - ref_len / sys_len).exp()
            } else {
                0.0
            };
        }
        if self.correct.iter().all(|c| *c == 0) {
            return 0.0;
        }
        let mut precisions = [0.0; MAX_NGRAM_ORDER];
        let mut smooth_mteval = 1.0;
        let mut eff_order = MAX_NGRAM_ORDER;
        for (n, precision) in precisions.iter_mut().enumerate() {
            let (correct, total) = (self.correct[n], self.total[n]);
            if total == 0 {
                break;
            }
            if effective_order {
                eff_order = n + 1;
            }
            *precision = if correct == 0 {
                smooth_mteval *= 2.0;
                100.0 / (smooth_mteval * total as f64)
            } else {
                100.0 * correct as f64 / total as f64
            };
        }
        let log_sum = precisions[..eff_order]
            .iter()
            .fold(0.0, |acc, p| acc + my_log(*p));
        bp * (log_sum / eff_order as f64).exp()
    }
}

/// `sacrebleu.sentence_bleu(hypothesis, references).score`.
pub fn sentence_bleu(hypothesis: &str, references: &[String]) -> f64 {
    sentence_stats(hypothesis, references).score(true)
}

/// `sacrebleu.corpus_bleu` from per-segment statistics (0 for an empty corpus).
pub fn corpus_bleu(stats: &[BleuStats]) -> f64 {
    stats.iter().copied().sum::<BleuStats>().score(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_like_13a() {
        assert_eq!(
            tokenize_13a("Hello, world! It's 3.5 km-long."),
            "Hello , world ! It's 3.5 km-long ."
        );
        assert_eq!(tokenize_13a("a&amp;b 12-3"), "a & b 12 - 3");
    }

    #[test]
    fn identical_is_100() {
        let r = vec!["the cat sat on the mat".to_string()];
        assert!((sentence_bleu("the cat sat on the mat", &r) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn ties_prefer_shorter_reference() {
        assert_eq!(closest_ref_len(5, [6, 4].into_iter()), 4);
        assert_eq!(closest_ref_len(5, [4, 6].into_iter()), 4);
    }
}
