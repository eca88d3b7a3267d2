//! Exact match and token F1 with the official SQuAD v1.1 evaluation script's
//! semantics (`normalize_answer`, `f1_score`, `metric_max_over_ground_truths`).

use std::collections::HashMap;

use crate::pystr;

// `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// SQuAD's `normalize_answer`: lowercase, drop ASCII punctuation, drop the articles
/// a/an/the as whole words, collapse whitespace.
pub fn normalize_answer(s: &str) -> String {
    let lowered = pystr::lower(s);
    let no_punct: String = lowered
        .chars()
        .filter(|c| !PUNCTUATION.contains(*c))
        .collect();
    pystr::collapse_spaces(&remove_articles(&no_punct))
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)` with Python's Unicode `\b`.
fn remove_articles(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !pystr::is_word_char(chars[i - 1]);
        if starts_word {
            // The alternation is tried in order; only one candidate can end at a boundary.
            let hit = ["a", "an", "the"].iter().find_map(|article| {
                let n = article.chars().count();
                let end = i + n;
                let matches = end <= chars.len()
                    && chars[i..end].iter().copied().eq(article.chars())
                    && (end == chars.len() || !pystr::is_word_char(chars[end]));
                matches.then_some(n)
            });
            if let Some(n) = hit {
                out.push(' ');
                i += n;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Whether the normalized answers are equal (SQuAD `exact_match_score`).
pub fn exact_match(prediction: &str, ground_truth: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(ground_truth)
}

/// SQuAD `f1_score`: F1 of the multiset overlap of normalized tokens.
pub fn token_f1(prediction: &str, ground_truth: &str) -> f64 {
    let pred = normalize_answer(prediction);
    let truth = normalize_answer(ground_truth);
    let pred_tokens: Vec<&str> = pystr::split(&pred).collect();
    let truth_tokens: Vec<&str> = pystr::split(&truth).collect();
    let mut truth_counts: HashMap<&str, usize> = HashMap::new();
    for t in &truth_tokens {
        *truth_counts.entry(t).or_default() += 1;
    }
    let mut num_same = 0usize;
    for t in &pred_tokens {
        if let Some(c) = truth_counts.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                num_same += 1;
            }
        }
    }
    if num_same == 0 {
        return 0.0;
    }
    // Same operation order as the script so the floats are bit-identical.
    let precision = 1.0 * num_same as f64 / pred_tokens.len() as f64;
    let recall = 1.0 * num_same as f64 / truth_tokens.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// `metric_max_over_ground_truths(exact_match_score, ...)`; false with no references.
pub fn exact_match_max(prediction: &str, ground_truths: &[String]) -> bool {
    ground_truths.iter().any(|g| exact_match(prediction, g))
}

/// `metric_max_over_ground_truths(f1_score, ...)`; 0 with no references.
pub fn token_f1_max(prediction: &str, ground_truths: &[String]) -> f64 {
    ground_truths
        .iter()
        .map(|g| token_f1(prediction, g))
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_squad() {
        assert_eq!(
            normalize_answer("The  Cat, a dog & AN apple!"),
            "cat dog apple"
        );
        assert_eq!(normalize_answer("theatre anthem"), "theatre anthem");
        assert_eq!(normalize_answer("a a a"), "");
        // "a-the" loses the hyphen first, so "athe" is one word and stays.
        assert_eq!(normalize_answer("a-the"), "athe");
    }

    #[test]
    fn f1_counts_overlap() {
        assert!((token_f1("the cat sat", "a cat sat down") - 0.8).abs() < 1e-12);
        assert_eq!(token_f1("", ""), 0.0);
        assert!(exact_match("", "the"));
    }
}
