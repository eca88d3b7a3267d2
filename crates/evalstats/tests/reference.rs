//! Runs `tests/reference/stats_reference.py` (numpy, SciPy, statsmodels, sacrebleu)
//! and requires every result to agree: floats to 1e-9, counts and p-value counts
//! exactly. Set `COLONY_SKIP_PYTHON_REFERENCE=1` to skip when Python is unavailable.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "pip install -r tests/reference/requirements-stats.txt";

#[test]
fn statistics_agree_with_python_reference_libraries() {
    if std::env::var("COLONY_SKIP_PYTHON_REFERENCE").as_deref() == Ok("1") {
        println!("skipped: COLONY_SKIP_PYTHON_REFERENCE=1 (the reference check against numpy/scipy/statsmodels/sacrebleu did not run)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let script = root.join("tests/reference/stats_reference.py");
    let output = Command::new("python3")
        .arg(&script)
        .current_dir(&root)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run python3 ({e}); install Python 3 and then `{INSTALL_HINT}`, \
             or set COLONY_SKIP_PYTHON_REFERENCE=1 to skip this check"
        ),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let missing = stderr.contains("ModuleNotFoundError") || stderr.contains("ImportError");
        panic!(
            "{} failed ({}){}:\n{stderr}",
            script.display(),
            output.status,
            if missing {
                format!(" — a Python package is missing: run `{INSTALL_HINT}` (or set COLONY_SKIP_PYTHON_REFERENCE=1 to skip)")
            } else {
                String::new()
            }
        );
    }
    let stdout = String::from_utf8(output.stdout).unwrap();
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
