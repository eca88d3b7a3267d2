//! Checks the scorers against `golden.jsonl`, a small set of cases written by
//! `tests/reference/scorers_reference.py --per-kind 4` and checked in, so the
//! crate is verified against the reference packages even without Python.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;

#[test]
fn scorers_agree_with_checked_in_golden_cases() {
    let report = cases::check_all(include_str!("golden.jsonl"));
    eprintln!("agreement per kind: {}", report.summary());
    assert!(
        report.total.values().sum::<usize>() >= 50,
        "golden file too small: {}",
        report.summary()
    );
    assert!(
        report.mismatches.is_empty(),
        "mismatches:\n{}",
        report.mismatches.join("\n")
    );
}
