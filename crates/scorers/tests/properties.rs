//! Invariants of the scorers over arbitrary text: ranges, identity, and the metric
//! properties of Levenshtein distance.
#![allow(clippy::unwrap_used)]

use colony_scorers::rouge::{self, RougeType};
use colony_scorers::{bleu, chrf, levenshtein, porter, squad, BleuStats, ScoreInput, ScorerSpec};
use proptest::prelude::*;

// Small alphabets make overlaps likely; the general one covers any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ab ,.]{0,24}",
        "(the|cat|a|sat|dog|ran|,|\\.| ){0,12}",
        "\\PC{0,30}",
    ]
}

fn refs() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 1..4)
}

fn unit(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

// sacrebleu itself returns e.g. 100.00000000000004 for a perfect match.
fn percent(x: f64) -> bool {
    (0.0..=100.0 + 1e-9).contains(&x)
}

proptest! {
    #[test]
    fn scores_stay_in_range(h in text(), r in refs()) {
        prop_assert!(unit(squad::token_f1_max(&h, &r)));
        prop_assert!(percent(bleu::sentence_bleu(&h, &r)));
        prop_assert!(percent(chrf::sentence_chrf(&h, &r)));
        prop_assert!(percent(chrf::sentence_chrf_eps(&h, &r)));
        for k in [RougeType::Rouge1, RougeType::Rouge2, RougeType::RougeL] {
            let s = rouge::score_multi(k, &r, &h, true);
            prop_assert!(unit(s.precision) && unit(s.recall) && unit(s.fmeasure));
        }
        prop_assert!(unit(levenshtein::normalized_similarity(&h, &r[0])));
        for t in ["bleu", "chrf", "token_f1", "rougeL", "levenshtein"] {
            let spec: ScorerSpec = serde_json::from_value(serde_json::json!({"type": t})).unwrap();
            let v = spec.build().unwrap().score(&ScoreInput::new(&h, &r)).value;
            prop_assert!(unit(v), "{} gave {}", t, v);
        }
    }

    #[test]
    fn identical_texts_score_one(t in text()) {
        let r = vec![t.clone()];
        prop_assert!(squad::exact_match(&t, &t));
        prop_assert_eq!(levenshtein::distance(&t, &t), 0);
        prop_assert_eq!(levenshtein::normalized_similarity(&t, &t), 1.0);
        if !squad::normalize_answer(&t).is_empty() {
            prop_assert!((squad::token_f1(&t, &t) - 1.0).abs() < 1e-12);
        }
        if !bleu::tokenize_13a(&t).is_empty() {
            prop_assert!((bleu::sentence_bleu(&t, &r) - 100.0).abs() < 1e-9);
        }
        if t.chars().any(|c| !c.is_whitespace()) {
            prop_assert!((chrf::sentence_chrf(&t, &r) - 100.0).abs() < 1e-9);
        }
        if !rouge::tokenize(&t, false).is_empty() {
            prop_assert_eq!(rouge::score(RougeType::RougeL, &t, &t, false).fmeasure, 1.0);
        }
    }

    #[test]
    fn levenshtein_is_a_metric(a in text(), b in text(), c in text()) {
        let d = levenshtein::distance;
        prop_assert_eq!(d(&a, &b), d(&b, &a));
        prop_assert!(d(&a, &c) <= d(&a, &b) + d(&b, &c));
        prop_assert!(d(&a, &b) <= a.chars().count().max(b.chars().count()));
        prop_assert_eq!(d(&a, &b) == 0, a == b);
    }

    #[test]
    fn corpus_of_one_segment_matches_its_statistics(h in text(), r in refs()) {
        let s = bleu::sentence_stats(&h, &r);
        prop_assert_eq!(bleu::corpus_bleu(&[s]), s.score(false));
        let sum: BleuStats = [s, BleuStats::default()].into_iter().sum();
        prop_assert_eq!(sum, s);
        let c = chrf::sentence_stats(&h, &r);
        prop_assert_eq!(chrf::corpus_chrf(&[c]), chrf::sentence_chrf(&h, &r));
    }

    #[test]
    fn porter_never_grows_much_or_empties(w in "[a-z]{1,20}") {
        let s = porter::stem(&w);
        prop_assert!(!s.is_empty());
        prop_assert!(s.len() <= w.len() + 1);
    }
}
