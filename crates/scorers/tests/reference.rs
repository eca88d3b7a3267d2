//! Runs `tests/reference/scorers_reference.py` (the Python packages the scorers
//! imitate) in the pinned reference environment (`colony-pyref`: a virtualenv under
//! `target/`, provisioned on first use) and requires agreement on every generated case.
//! `COLONY_SKIP_PYTHON_REFERENCE=1` skips it, and says so.
//! `COLONY_REFERENCE_PER_KIND=N` and `COLONY_REFERENCE_SEED=S` pass `--per-kind`
//! and `--seed` to the script for a larger or different sample.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;

#[test]
fn scorers_agree_with_python_reference_packages() {
    if colony_pyref::skipped() {
        eprintln!("skipped: COLONY_SKIP_PYTHON_REFERENCE=1 (the golden-file test still runs)");
        return;
    }
    let mut args = Vec::new();
    for (var, flag) in [
        ("COLONY_REFERENCE_PER_KIND", "--per-kind"),
        ("COLONY_REFERENCE_SEED", "--seed"),
    ] {
        if let Ok(v) = std::env::var(var) {
            args.extend([flag.to_string(), v]);
        }
    }
    let stdout = colony_pyref::run_script("tests/reference/scorers_reference.py", &args)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = cases::check_all(&stdout);
    eprintln!("agreement per kind: {}", report.summary());
    assert!(
        report.total.values().sum::<usize>() > 1000,
        "too few cases: {}",
        report.summary()
    );
    assert!(
        report.mismatches.is_empty(),
        "{} mismatches ({}):\n{}",
        report.mismatches.len(),
        report.summary(),
        report
            .mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
