//! The committed golden cases (`tests/golden.jsonl`, written by
//! `tests/reference/stats_reference.py --golden`), checked without Python.

#![allow(clippy::unwrap_used)]

mod support;

#[test]
fn golden_cases_agree_with_the_reference_libraries() {
    let text = include_str!("golden.jsonl");
    let (tally, failures) = support::check_all(text);
    for (kind, ok, total, diff) in &tally {
        println!("{kind}: {ok}/{total} agree, max |diff| {diff:e}");
    }
    assert!(
        tally.iter().map(|t| t.2).sum::<usize>() >= 40,
        "golden file too small"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
