//! Runs `tests/reference/stats_reference.py` (numpy, SciPy, statsmodels, sacrebleu) in
//! the pinned reference environment (`colony-pyref`: a virtualenv under `target/`,
//! provisioned on first use) and requires every result to agree: floats to 1e-9, counts
//! and p-value counts exactly. `COLONY_SKIP_PYTHON_REFERENCE=1` skips it, and says so.

#![allow(clippy::unwrap_used)]

mod support;

#[test]
fn statistics_agree_with_python_reference_libraries() {
    if colony_pyref::skipped() {
        println!("skipped: COLONY_SKIP_PYTHON_REFERENCE=1 (the reference check against numpy/scipy/statsmodels/sacrebleu did not run)");
        return;
    }
    let stdout = colony_pyref::run_script("tests/reference/stats_reference.py", &[])
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(versions) = stdout.lines().next() {
        println!("reference: {versions}");
    }
    let (tally, failures) = support::check_all(&stdout);
    for (kind, ok, total, diff) in &tally {
        println!("{kind}: {ok}/{total} agree, max |diff| {diff:e}");
    }
    assert!(
        tally.iter().map(|t| t.2).sum::<usize>() > 100,
        "too few reference cases"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
