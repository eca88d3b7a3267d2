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
    /// Partition-like faults injected (each one healed before the run ended).
    pub partitions: u64,
    /// Identity renewals (a member declared Down rejoining) of every node during a
    /// partition or until the cluster converged after its heal, counted from the node
    /// logs: `None` when they could not be read.
    pub identity_renewals: Option<u64>,
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
    let partitions = report["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"].as_str().is_some_and(is_partition_like))
        .count() as u64;
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
        partitions,
        identity_renewals: None,
        kept: None,
    }
}

/// Whether a fault kind (as named in a report) cuts nodes off from each other (delay and
/// loss impair links without cutting them).
fn is_partition_like(kind: &str) -> bool {
    use crate::fault::Kind;
    [
        Kind::Partition,
        Kind::PartitionMinority,
        Kind::NetPartition,
        Kind::NetOneWay,
    ]
    .iter()
    .any(|k| k.name() == kind)
}

/// The log line a node writes when it renews its gossip identity (`cluster/src/membership`).
const RENEWAL_LINE: &str = "rejoined with a renewed identity";

/// The Unix times (ms) of the lines holding `needle` in every `*.log` file of `dir` (JSON
/// lines with an RFC 3339 `timestamp`); `None` if the directory cannot be read.
pub fn times_in_logs(dir: &Path, needle: &str) -> Option<Vec<u64>> {
    let mut times = Vec::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).ok()?;
            times.extend(text.lines().filter(|l| l.contains(needle)).filter_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                let t = humantime::parse_rfc3339(v["timestamp"].as_str()?).ok()?;
                let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
                u64::try_from(ms).ok()
            }));
        }
    }
    Some(times)
}

/// Of `times` (Unix ms), how many fall in a partition of `report`: from its start until
/// the cluster converged after the heal (at least 5 s after the heal, when it never did).
pub fn in_partitions(report: &Value, times: &[u64]) -> u64 {
    let Some(start) = report["started_unix_ms"].as_u64() else {
        return 0;
    };
    let windows: Vec<(f64, f64)> = report["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"].as_str().is_some_and(is_partition_like))
        .filter_map(|f| {
            let from = f["start_ms"].as_f64()?;
            let heal = f["heal_ms"].as_f64()?;
            let to = f["converged_ms"].as_f64().unwrap_or(heal + 5000.0);
            Some((from, to.max(heal)))
        })
        .collect();
    times
        .iter()
        .map(|t| t.saturating_sub(start) as f64)
        .filter(|t| windows.iter().any(|(a, b)| t >= a && t <= b))
        .count() as u64
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
    /// `--tls`.
    pub tls: bool,
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
            if base.tls {
                cmd.arg("--tls");
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
            r.identity_renewals = times_in_logs(&here.join("logs"), RENEWAL_LINE)
                .map(|times| in_partitions(&parsed, &times));
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
    out.push_str(
        " uncovered over-admission | worst write gap | partitions | identity renewals |\n|---:|---:|---|",
    );
    out.push_str(&"---|".repeat(names.len()));
    out.push_str("---:|---:|---:|---:|\n");
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
            " {} | {} | {} | {} |\n",
            r.uncovered_over_admission
                .map_or("—".to_string(), |v| v.to_string()),
            r.worst_gap_s
                .map_or("—".to_string(), |v| format!("{v:.1} s")),
            r.partitions,
            r.identity_renewals
                .map_or("—".to_string(), |v| v.to_string()),
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
    let partitions: u64 = results.iter().map(|r| r.partitions).sum();
    let renewals: Option<u64> = results
        .iter()
        .filter(|r| r.partitions > 0)
        .map(|r| r.identity_renewals)
        .sum();
    let per_partition = match (renewals, partitions) {
        (Some(n), p) if p > 0 => format!(
            "{:.2} ({n} in the runs with {p} partitions)",
            n as f64 / p as f64
        ),
        _ => "—".to_string(),
    };
    out.push_str(&format!(
        "\nworst uncovered over-admission: {}; worst write gap: {}; identity renewals per partition: {per_partition}\n",
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
            t.contains("| 3 | 1 | FAIL | ok | FAIL | 24 | 3.2 s | 0 | — |"),
            "{t}"
        );
        assert!(t.contains("| 5 | 1 | ERROR (exit Some(2)) |"), "{t}");
        assert!(
            t.contains("2 of 3 runs failed; ratelimit-over-admission: 1"),
            "{t}"
        );
        assert!(t.contains("worst uncovered over-admission: 24"), "{t}");
    }

    #[test]
    fn renewals_are_read_from_the_node_logs_and_counted_per_partition() {
        let dir = std::env::temp_dir().join(format!("colony-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |ts: &str| {
            format!(
                "{{\"timestamp\":\"{ts}\",\"fields\":{{\"message\":\"declared down by the cluster; {RENEWAL_LINE}\"}}}}\n"
            )
        };
        // 2026-12-02T10:00:00Z is 1796205600000 ms.
        std::fs::write(
            dir.join("node-1.log"),
            line("2026-12-02T10:00:10.5Z")
                + "{\"timestamp\":\"x\"}\n"
                + &line("2026-12-02T10:00:30Z"),
        )
        .unwrap();
        std::fs::write(dir.join("node-2.log"), line("2026-12-02T10:00:12Z")).unwrap();
        std::fs::write(dir.join("notes.txt"), line("2026-12-02T10:00:12Z")).unwrap();
        let mut times = times_in_logs(&dir, RENEWAL_LINE).unwrap();
        times.sort_unstable();
        assert_eq!(
            times,
            [1_796_205_610_500, 1_796_205_612_000, 1_796_205_630_000]
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(times_in_logs(&dir, RENEWAL_LINE), None);

        // The run started at 10:00:00; a partition from 8 s, healed at 11 s, converged at
        // 12.5 s; a pause from 28 s to 31 s (its renewal at 30 s is not a partition's).
        let report = json!({
            "started_unix_ms": 1_796_205_600_000u64,
            "checks": [{"name": "linearizability", "ok": true}],
            "faults": [
                {"kind": "partition", "start_ms": 8000.0, "heal_ms": 11000.0, "converged_ms": 12500.0},
                {"kind": "pause", "start_ms": 28000.0, "heal_ms": 31000.0, "converged_ms": 32000.0},
                {"kind": "partition-minority", "start_ms": 40000.0, "heal_ms": 43000.0},
                {"kind": "delay", "start_ms": 50000.0, "heal_ms": 53000.0},
                {"kind": "net-one-way", "start_ms": 60000.0, "heal_ms": 63000.0}
            ]
        });
        assert_eq!(in_partitions(&report, &times), 2);
        let mut r = read_report(1, 1, Some(0), &report);
        assert_eq!(r.partitions, 3);
        r.identity_renewals = Some(6);
        let t = table("smoke", &[r]);
        assert!(t.contains("| 1 | 1 | PASS | ok | — | — | 3 | 6 |"), "{t}");
        assert!(
            t.contains("identity renewals per partition: 2.00 (6 in the runs with 3 partitions)"),
            "{t}"
        );
    }
}
