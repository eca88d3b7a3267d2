//! `colony-chaos --sweep SEEDS [--repeat N]`: one scenario run for every seed, N times
//! each, every run a child process of this binary (its own cluster, ports and temp dirs).
//! A failing run's report, timeline, node logs and output are kept under the sweep
//! directory (`<scenario>-seed<S>-run<R>/`); a passing run's are removed. The table at the
//! end has a row per run and a column per checker, and the worst figures of the sweep.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Most runs one sweep may ask for (seeds x repeat): a typo such as `1-2000` would
/// otherwise occupy the machine for days.
pub const MAX_RUNS: usize = 1000;

/// Parses `1-20`, `7`, `1,3,9-12` into seeds, in the order given, without repeats.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>> {
    let mut seeds: Vec<u64> = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            bail!("empty item in seed list {text:?} (e.g. 1-20 or 1,3,9-12)");
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (parse_one(a, text)?, parse_one(b, text)?),
            None => {
                let s = parse_one(part, text)?;
                (s, s)
            }
        };
        if lo > hi {
            bail!("seed range {part:?} runs backwards");
        }
        if hi - lo >= MAX_RUNS as u64 {
            bail!("seed range {part:?} has more than {MAX_RUNS} seeds");
        }
        for s in lo..=hi {
            if !seeds.contains(&s) {
                seeds.push(s);
            }
        }
    }
    if seeds.len() > MAX_RUNS {
        bail!("{} seeds: at most {MAX_RUNS}", seeds.len());
    }
    Ok(seeds)
}

fn parse_one(s: &str, whole: &str) -> Result<u64> {
    s.trim()
        .parse()
        .with_context(|| format!("{s:?} in seed list {whole:?} is not a number"))
}

/// One checker's result in one run.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Checker name.
    pub name: String,
    /// Passed.
    pub ok: bool,
}

/// What one run of the sweep gave.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Its seed.
    pub seed: u64,
    /// Which repetition (1-based).
    pub run: u32,
    /// Exit code of the run: 0 passed, 1 a checker failed, 2 the run could not be done.
    pub code: Option<i32>,
    /// The checkers, when the report was written.
    pub checks: Vec<CheckResult>,
    /// Admissions beyond a bucket's limit outside every fault's bound.
    pub uncovered_over_admission: Option<u64>,
    /// Largest write gap, seconds.
    pub worst_gap_s: Option<f64>,
    /// Where its files were kept (failed runs only).
    pub kept: Option<PathBuf>,
}

impl RunResult {
    /// Passed: exit 0 and every checker passed.
    pub fn passed(&self) -> bool {
        self.code == Some(0) && self.checks.iter().all(|c| c.ok)
    }
}

/// Reads a run's results from its JSON report.
pub fn read_report(seed: u64, run: u32, code: Option<i32>, report: &Value) -> RunResult {
    let checks = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| CheckResult {
            name: c["name"].as_str().unwrap_or("?").to_string(),
            ok: c["ok"].as_bool().unwrap_or(false),
        })
        .collect();
    let uncovered = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "ratelimit-over-admission")
        .and_then(|c| c["details"]["uncovered_over_admission"].as_u64());
    let worst_gap_s = report["write_gaps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["secs"].as_f64())
        .reduce(f64::max);
    RunResult {
        seed,
        run,
        code,
        checks,
        uncovered_over_admission: uncovered,
        worst_gap_s,
        kept: None,
    }
}

/// The arguments every run gets besides its seed and output paths.
#[derive(Debug, Clone)]
pub struct Base {
    /// The scenario.
    pub scenario: String,
    /// `--duration`, as given.
    pub duration: String,
    /// `--nodes`.
    pub nodes: usize,
    /// `--colony`.
    pub colony: PathBuf,
    /// `--net`.
    pub net: String,
    /// `--upgrade-to`.
    pub upgrade_to: Option<PathBuf>,
}

/// Runs the sweep; returns every run's result (the caller prints the table).
pub fn run(base: &Base, seeds: &[u64], repeat: u32, dir: &Path) -> Result<Vec<RunResult>> {
    let total = seeds.len() * repeat as usize;
    if total > MAX_RUNS {
        bail!("{total} runs: at most {MAX_RUNS}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let me = std::env::current_exe().context("finding this binary")?;
    let mut results = Vec::with_capacity(total);
    for &seed in seeds {
        for run in 1..=repeat {
            let here = dir.join(format!("{}-seed{seed}-run{run}", base.scenario));
            if here.exists() {
                std::fs::remove_dir_all(&here)
                    .with_context(|| format!("removing {}", here.display()))?;
            }
            std::fs::create_dir_all(here.join("logs"))
                .with_context(|| format!("creating {}", here.display()))?;
            let output = std::fs::File::create(here.join("output.txt"))
                .with_context(|| format!("creating {}/output.txt", here.display()))?;
            let report = here.join("report.json");
            let mut cmd = Command::new(&me);
            cmd.args(["--scenario", &base.scenario, "--duration", &base.duration])
                .args([
                    "--seed",
                    &seed.to_string(),
                    "--nodes",
                    &base.nodes.to_string(),
                ])
                .arg("--colony")
                .arg(&base.colony)
                .args(["--net", &base.net])
                .arg("--report")
                .arg(&report)
                .arg("--svg")
                .arg(here.join("timeline.svg"))
                .arg("--log-dir")
                .arg(here.join("logs"))
                .stdin(Stdio::null())
                .stdout(output.try_clone().context("duplicating a file handle")?)
                .stderr(output);
            if let Some(to) = &base.upgrade_to {
                cmd.arg("--upgrade-to").arg(to);
            }
            eprintln!(
                "sweep: {} seed {seed} run {run} ({} of {total})",
                base.scenario,
                results.len() + 1
            );
            let status = cmd
                .status()
                .with_context(|| format!("running {}", me.display()))?;
            let parsed = std::fs::read(&report)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .unwrap_or(Value::Null);
            let mut r = read_report(seed, run, status.code(), &parsed);
            if r.passed() {
                std::fs::remove_dir_all(&here)
                    .with_context(|| format!("removing {}", here.display()))?;
            } else {
                r.kept = Some(here);
            }
            eprintln!(
                "sweep:   {}{}",
                if r.passed() { "PASS" } else { "FAIL" },
                r.kept
                    .as_ref()
                    .map_or(String::new(), |k| format!(" (kept in {})", k.display()))
            );
            results.push(r);
        }
    }
    Ok(results)
}

/// The sweep's table (markdown), then the worst figures and failures per checker.
pub fn table(scenario: &str, results: &[RunResult]) -> String {
    let mut names: Vec<String> = Vec::new();
    for r in results {
        for c in &r.checks {
            if !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        }
    }
    let mut out = format!("\nsweep of {scenario}: {} runs\n\n", results.len());
    out.push_str("| seed | run | result |");
    for n in &names {
        out.push_str(&format!(" {n} |"));
    }
    out.push_str(" uncovered over-admission | worst write gap |\n|---:|---:|---|");
    out.push_str(&"---|".repeat(names.len()));
    out.push_str("---:|---:|\n");
    for r in results {
        let result = match (r.passed(), r.code) {
            (true, _) => "PASS".to_string(),
            (false, Some(1)) => "FAIL".to_string(),
            (false, code) => format!("ERROR (exit {code:?})"),
        };
        out.push_str(&format!("| {} | {} | {result} |", r.seed, r.run));
        for n in &names {
            let cell = match r.checks.iter().find(|c| &c.name == n) {
                Some(c) if c.ok => "ok",
                Some(_) => "FAIL",
                None => "—",
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push_str(&format!(
            " {} | {} |\n",
            r.uncovered_over_admission
                .map_or("—".to_string(), |v| v.to_string()),
            r.worst_gap_s
                .map_or("—".to_string(), |v| format!("{v:.1} s"))
        ));
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    out.push_str(&format!("\n{failed} of {} runs failed", results.len()));
    for n in &names {
        let k = results
            .iter()
            .filter(|r| r.checks.iter().any(|c| &c.name == n && !c.ok))
            .count();
        if k > 0 {
            out.push_str(&format!("; {n}: {k}"));
        }
    }
    let worst_over = results
        .iter()
        .filter_map(|r| r.uncovered_over_admission)
        .max();
    let worst_gap = results
        .iter()
        .filter_map(|r| r.worst_gap_s)
        .reduce(f64::max);
    out.push_str(&format!(
        "\nworst uncovered over-admission: {}; worst write gap: {}\n",
        worst_over.map_or("—".to_string(), |v| v.to_string()),
        worst_gap.map_or("—".to_string(), |v| format!("{v:.1} s"))
    ));
    for r in results.iter().filter(|r| r.kept.is_some()) {
        if let Some(k) = &r.kept {
            out.push_str(&format!(
                "kept: seed {} run {}: {}\n",
                r.seed,
                r.run,
                k.display()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_lists() {
        assert_eq!(parse_seeds("1-5").unwrap(), [1, 2, 3, 4, 5]);
        assert_eq!(parse_seeds("7").unwrap(), [7]);
        assert_eq!(parse_seeds("1,3, 9-11,3").unwrap(), [1, 3, 9, 10, 11]);
        for bad in ["", "1,,2", "5-1", "a", "1-b", "0-5000"] {
            assert!(parse_seeds(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_report_gives_checks_and_worst_figures() {
        let report = json!({
            "checks": [
                {"name": "linearizability", "ok": true},
                {"name": "ratelimit-over-admission", "ok": false,
                 "details": {"uncovered_over_admission": 24}}
            ],
            "write_gaps": [{"secs": 1.5}, {"secs": 3.25}]
        });
        let r = read_report(3, 1, Some(1), &report);
        assert!(!r.passed());
        assert_eq!(r.uncovered_over_admission, Some(24));
        assert_eq!(r.worst_gap_s, Some(3.25));
        let ok = read_report(
            4,
            1,
            Some(0),
            &json!({"checks": [{"name": "linearizability", "ok": true}]}),
        );
        assert!(ok.passed());
        // A run that wrote no report (exit 2) is a failure, with no checks.
        let broken = read_report(5, 1, Some(2), &Value::Null);
        assert!(!broken.passed() && broken.checks.is_empty());
        let t = table("smoke", &[r, ok, broken]);
        assert!(
            t.contains("| 3 | 1 | FAIL | ok | FAIL | 24 | 3.2 s |"),
            "{t}"
        );
        assert!(t.contains("| 5 | 1 | ERROR (exit Some(2)) |"), "{t}");
        assert!(
            t.contains("2 of 3 runs failed; ratelimit-over-admission: 1"),
            "{t}"
        );
        assert!(t.contains("worst uncovered over-admission: 24"), "{t}");
    }
}
