//! Scorer configuration: parsing, validation up front, and the verdicts of the
//! non-reference scorers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use colony_scorers::{ConfigError, Score, ScoreInput, Scorer, ScorerKind, ScorerSpec};
use serde_json::json;

fn spec(v: serde_json::Value) -> ScorerSpec {
    serde_json::from_value(v).unwrap()
}

fn scorer(v: serde_json::Value) -> Scorer {
    spec(v).build().unwrap()
}

fn score(s: &Scorer, output: &str, refs: &[&str]) -> Score {
    let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
    s.score(&ScoreInput::new(output, &refs))
}

#[test]
fn every_type_parses_and_round_trips() {
    let all = [
        json!({"type": "exact_match"}),
        json!({"type": "token_f1", "threshold": 0.8}),
        json!({"type": "contains", "value": "x"}),
        json!({"type": "icontains"}),
        json!({"type": "starts_with", "value": "yes"}),
        json!({"type": "regex", "pattern": "^\\d+$"}),
        json!({"type": "json_valid"}),
        json!({"type": "json_schema", "schema": {"type": "object"}}),
        json!({"type": "levenshtein", "weight": 2.0}),
        json!({"type": "bleu"}),
        json!({"type": "chrf"}),
        json!({"type": "rouge1", "use_stemmer": true}),
        json!({"type": "rouge2"}),
        json!({"type": "rougeL"}),
        json!({"type": "numeric", "abs_tol": 0.01, "pick": "first"}),
        json!({"type": "latency_ms", "max": 1500.0}),
        json!({"type": "cost_usd", "max": 0.02}),
    ];
    for v in all {
        let s = spec(v.clone());
        s.build().unwrap_or_else(|e| panic!("{v}: {e}"));
        let back: ScorerSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s, "{v}");
    }
    assert!(matches!(
        spec(json!({"type": "rougeL"})).kind,
        ScorerKind::RougeL { use_stemmer: false }
    ));
}

#[test]
fn unknown_keys_and_types_are_rejected() {
    for v in [
        json!({"type": "bleu", "tokenize": "intl"}),
        json!({"type": "contains", "value": "x", "case": false}),
        json!({"type": "blue"}),
        json!({"type": "bleu", "weight": "heavy"}),
        json!({"type": "latency_ms"}),
    ] {
        assert!(
            serde_json::from_value::<ScorerSpec>(v.clone()).is_err(),
            "{v}"
        );
    }
}

#[test]
fn bad_settings_fail_at_build_time() {
    let err = |v| spec(v).build().unwrap_err();
    assert!(matches!(
        err(json!({"type": "regex", "pattern": "("})),
        ConfigError::Regex { .. }
    ));
    assert!(matches!(
        err(json!({"type": "json_schema", "schema": {"type": "int"}})),
        ConfigError::Schema { .. }
    ));
    assert!(matches!(
        err(json!({"type": "json_schema", "schema": {"minimum": "0"}})),
        ConfigError::Schema { .. }
    ));
    assert!(matches!(
        err(json!({"type": "bleu", "threshold": 1.5})),
        ConfigError::Number { .. }
    ));
    assert!(matches!(
        err(json!({"type": "bleu", "weight": -1})),
        ConfigError::Number { .. }
    ));
    assert!(matches!(
        err(json!({"type": "cost_usd", "max": -0.1})),
        ConfigError::Number { .. }
    ));
    assert!(matches!(
        err(json!({"type": "numeric", "rel_tol": -1})),
        ConfigError::Number { .. }
    ));
}

#[test]
fn defaults_for_weight_and_threshold() {
    let s = scorer(json!({"type": "bleu"}));
    assert_eq!((s.weight(), s.threshold()), (1.0, 0.5));
    let s = scorer(json!({"type": "contains", "value": "x", "weight": 3}));
    assert_eq!((s.weight(), s.threshold()), (3.0, 1.0));
}

#[test]
fn text_scorers() {
    let c = scorer(json!({"type": "contains"}));
    assert!(score(&c, "the answer is Paris.", &["Lyon", "Paris"]).passed);
    assert!(!score(&c, "the answer is paris.", &["Paris"]).passed);
    assert!(
        score(
            &scorer(json!({"type": "icontains"})),
            "the answer is paris.",
            &["PARIS"]
        )
        .passed
    );
    let sw = scorer(json!({"type": "starts_with", "value": "Yes"}));
    assert!(score(&sw, "Yes, because", &[]).passed);
    assert!(!score(&sw, " Yes", &[]).passed);
    let re = scorer(json!({"type": "regex", "pattern": "\\b\\d{3}\\b"}));
    assert!(score(&re, "code 123 ok", &[]).passed);
    assert!(!score(&re, "code 1234", &[]).passed);
    let jv = scorer(json!({"type": "json_valid"}));
    assert_eq!(score(&jv, "[1, 2]", &[]).value, 1.0);
    assert_eq!(score(&jv, "[1, 2", &[]).value, 0.0);
}

#[test]
fn json_schema_scorer_reports_why() {
    let s = scorer(json!({"type": "json_schema", "schema": {
        "type": "object", "required": ["answer"],
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}}
    }}));
    assert!(score(&s, r#"{"answer": "42", "confidence": 0.9}"#, &[]).passed);
    let bad = score(&s, r#"{"answer": "42", "confidence": 1.5}"#, &[]);
    assert!(!bad.passed);
    assert!(bad.detail.unwrap().contains("confidence"));
    let not_json = score(&s, "answer: 42", &[]);
    assert!(not_json.detail.unwrap().contains("not JSON"));
}

#[test]
fn reference_scorers_without_references_fail_with_a_reason() {
    for t in [
        "exact_match",
        "token_f1",
        "bleu",
        "chrf",
        "rouge1",
        "rougeL",
        "levenshtein",
        "contains",
    ] {
        let s = score(&scorer(json!({"type": t})), "anything", &[]);
        assert!(!s.passed && s.value == 0.0, "{t}");
        assert!(s.detail.is_some(), "{t}");
    }
}

#[test]
fn graded_scorers_take_the_best_reference() {
    let s = scorer(json!({"type": "levenshtein"}));
    assert_eq!(score(&s, "kitten", &["sitting", "kitten"]).value, 1.0);
    let b = scorer(json!({"type": "bleu"}));
    let v = score(&b, "the cat sat on the mat", &["the cat sat on the mat"]).value;
    assert!((v - 1.0).abs() < 1e-12);
}

#[test]
fn numeric_scorer() {
    let s = scorer(json!({"type": "numeric"}));
    assert!(score(&s, "So the total is 1,250.", &["1250"]).passed);
    assert!(!score(&s, "So the total is 1,251.", &["1250"]).passed);
    assert!(!score(&s, "no idea", &["1250"]).passed);
    let tol = scorer(json!({"type": "numeric", "expected": 9.875, "abs_tol": 0.01}));
    assert!(score(&tol, "about 9.88 metres", &[]).passed);
    let first = scorer(json!({"type": "numeric", "expected": 2, "pick": "first"}));
    assert!(score(&first, "2 apples, 3 pears", &[]).passed);
}

#[test]
fn latency_and_cost_pass_at_or_under_the_max() {
    let s = scorer(json!({"type": "latency_ms", "max": 100}));
    let refs: Vec<String> = Vec::new();
    let mut input = ScoreInput::new("", &refs);
    assert!(!s.score(&input).passed);
    input.latency_ms = Some(100.0);
    assert!(s.score(&input).passed);
    input.latency_ms = Some(100.5);
    assert!(!s.score(&input).passed);
    let c = scorer(json!({"type": "cost_usd", "max": 0.01}));
    input.cost_usd = Some(0.005);
    assert!(c.score(&input).passed);
}
