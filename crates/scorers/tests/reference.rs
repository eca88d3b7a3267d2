//! Runs `tests/reference/scorers_reference.py` (the Python packages the scorers
//! imitate) and requires agreement on every generated case. Set
//! `COLONY_SKIP_PYTHON_REFERENCE=1` to skip when Python is not available.
//! `COLONY_REFERENCE_PER_KIND=N` and `COLONY_REFERENCE_SEED=S` pass `--per-kind`
//! and `--seed` to the script for a larger or different sample.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;

use std::path::PathBuf;
use std::process::Command;

const INSTALL: &str = "pip install -r tests/reference/requirements.txt";

#[test]
fn scorers_agree_with_python_reference_packages() {
    if std::env::var("COLONY_SKIP_PYTHON_REFERENCE").as_deref() == Ok("1") {
        eprintln!("skipped: COLONY_SKIP_PYTHON_REFERENCE=1 (the golden-file test still runs)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/reference/scorers_reference.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).current_dir(&root);
    for (var, flag) in [
        ("COLONY_REFERENCE_PER_KIND", "--per-kind"),
        ("COLONY_REFERENCE_SEED", "--seed"),
    ] {
        if let Ok(v) = std::env::var(var) {
            cmd.args([flag, &v]);
        }
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run python3 ({e}); install Python 3 and run `{INSTALL}`, \
             or set COLONY_SKIP_PYTHON_REFERENCE=1 to skip this check"
        ),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}): {stderr}\nrun `{INSTALL}` (or set COLONY_SKIP_PYTHON_REFERENCE=1 to skip)",
        script.display(),
        out.status
    );
    let report = cases::check_all(&String::from_utf8(out.stdout).unwrap());
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
