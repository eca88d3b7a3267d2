//! Checks one reference case (a JSON line written by
//! `tests/reference/stats_reference.py`) against the crate.

use colony_evalstats::{
    bootstrap_mean_ci, mcnemar_exact_p, normal_quantile, paired_bootstrap, wilson_interval,
    win_tie_loss, BootstrapConfig, McNemar, NumpyRng, StatsError, Summary,
};
use serde_json::Value;
use std::cell::Cell;

thread_local! {
    /// Largest absolute float difference seen in the case being checked.
    static MAX_DIFF: Cell<f64> = const { Cell::new(0.0) };
}

/// Agreement required for every floating-point result.
pub const TOLERANCE: f64 = 1e-9;

fn f(v: &Value, key: &str) -> Result<f64, String> {
    v[key]
        .as_f64()
        .ok_or_else(|| format!("{key} is not a number"))
}

fn u(v: &Value, key: &str) -> Result<u64, String> {
    v[key]
        .as_u64()
        .ok_or_else(|| format!("{key} is not an unsigned integer"))
}

fn floats(v: &Value, key: &str) -> Result<Vec<f64>, String> {
    v[key]
        .as_array()
        .ok_or_else(|| format!("{key} is not an array"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| format!("{key} holds a non-number"))
        })
        .collect()
}

fn bools(v: &Value, key: &str) -> Result<Vec<bool>, String> {
    v[key]
        .as_array()
        .ok_or_else(|| format!("{key} is not an array"))?
        .iter()
        .map(|x| x.as_bool().ok_or_else(|| format!("{key} holds a non-bool")))
        .collect()
}

fn close(what: &str, got: f64, want: f64) -> Result<(), String> {
    if got != want {
        MAX_DIFF.with(|m| m.set(m.get().max((got - want).abs())));
    }
    if (got - want).abs() <= TOLERANCE || got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {got:e}, reference {want:e} (diff {:e})",
            (got - want).abs()
        ))
    }
}

fn close_opt(what: &str, got: Option<f64>, want: &Value) -> Result<(), String> {
    match (got, want.as_f64()) {
        (None, None) if want.is_null() => Ok(()),
        (Some(g), Some(w)) => close(what, g, w),
        _ => Err(format!("{what}: got {got:?}, reference {want}")),
    }
}

fn eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, reference {want:?}"))
    }
}

fn expect_error<T: std::fmt::Debug>(
    got: Result<T, StatsError>,
    want: StatsError,
) -> Result<(), String> {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(format!("expected error {want:?}, got {other:?}")),
    }
}

/// The function a case checks (its `kind`), for per-function tallies.
pub fn kind(case: &Value) -> &str {
    case["kind"].as_str().unwrap_or("?")
}

/// Checks one case; `Err` says what disagreed.
pub fn check(case: &Value) -> Result<(), String> {
    let inp = &case["input"];
    let exp = &case["expected"];
    let error = exp["error"].as_str();
    match kind(case) {
        "versions" => Ok(()),
        "normal_quantile" => close("quantile", normal_quantile(f(inp, "p")?), f(exp, "value")?),
        "summary" => {
            let got = Summary::of(&floats(inp, "scores")?, &bools(inp, "passed")?);
            if error.is_some() {
                return expect_error(got, StatsError::Empty);
            }
            let s = got.map_err(|e| e.to_string())?;
            eq("n", s.n as u64, u(exp, "n")?)?;
            eq("passed", s.passed as u64, u(exp, "passed")?)?;
            close("mean", s.mean, f(exp, "mean")?)?;
            close("pass_rate", s.pass_rate, f(exp, "pass_rate")?)?;
            close_opt("std_dev", s.std_dev, &exp["std_dev"])?;
            close_opt("std_err", s.std_err, &exp["std_err"])
        }
        "wilson" => {
            let got = wilson_interval(u(inp, "count")?, u(inp, "nobs")?, f(inp, "confidence")?);
            if error.is_some() {
                return expect_error(got, StatsError::Empty);
            }
            let ci = got.map_err(|e| e.to_string())?;
            close("low", ci.low, f(exp, "low")?)?;
            close("high", ci.high, f(exp, "high")?)
        }
        "raw_draws" => {
            let seed = u(inp, "seed")?;
            let n = u32::try_from(u(inp, "n")?).map_err(|e| e.to_string())?;
            let mut raw = NumpyRng::new(seed);
            for (i, want) in exp["raw_u64"].as_array().into_iter().flatten().enumerate() {
                eq(&format!("raw[{i}]"), Some(raw.next_u64()), want.as_u64())?;
            }
            let mut rng = NumpyRng::new(seed);
            for (i, want) in exp["indices"].as_array().into_iter().flatten().enumerate() {
                eq(
                    &format!("index[{i}]"),
                    Some(u64::from(rng.below(n))),
                    want.as_u64(),
                )?;
            }
            Ok(())
        }
        "bootstrap_ci" => {
            let got = bootstrap_mean_ci(
                &floats(inp, "scores")?,
                f(inp, "confidence")?,
                u(inp, "resamples")? as usize,
                u(inp, "seed")?,
            );
            if error.is_some() {
                return expect_error(got, StatsError::Empty);
            }
            let ci = got.map_err(|e| e.to_string())?;
            close("mean", ci.mean, f(exp, "mean")?)?;
            close("low", ci.interval.low, f(exp, "low")?)?;
            close("high", ci.interval.high, f(exp, "high")?)
        }
        "paired_bootstrap" => {
            let config = BootstrapConfig {
                resamples: u(inp, "resamples")? as usize,
                seed: u(inp, "seed")?,
            };
            let r = paired_bootstrap(
                &floats(inp, "baseline")?,
                &floats(inp, "candidate")?,
                config,
            )
            .map_err(|e| e.to_string())?;
            // The p-value is a count: it must be exact.
            eq("p_value", r.p_value, f(exp, "p_value")?)?;
            close(
                "baseline_score",
                r.baseline_score,
                f(exp, "baseline_score")?,
            )?;
            close(
                "candidate_score",
                r.candidate_score,
                f(exp, "candidate_score")?,
            )?;
            close(
                "bootstrap mean",
                r.candidate_bootstrap_mean,
                f(exp, "candidate_bootstrap_mean")?,
            )?;
            close(
                "ci half-width",
                r.candidate_ci_half_width,
                f(exp, "candidate_ci_half_width")?,
            )
        }
        "win_tie_loss" => {
            let w = win_tie_loss(&floats(inp, "baseline")?, &floats(inp, "candidate")?)
                .map_err(|e| e.to_string())?;
            eq("wins", w.wins as u64, u(exp, "wins")?)?;
            eq("ties", w.ties as u64, u(exp, "ties")?)?;
            eq("losses", w.losses as u64, u(exp, "losses")?)
        }
        "mcnemar" => close(
            "p_value",
            mcnemar_exact_p(u(inp, "b")?, u(inp, "c")?),
            f(exp, "p_value")?,
        ),
        "mcnemar_passes" => {
            let m = McNemar::from_passes(&bools(inp, "baseline")?, &bools(inp, "candidate")?)
                .map_err(|e| e.to_string())?;
            eq(
                "table",
                [m.both_pass, m.baseline_only, m.candidate_only, m.both_fail],
                [u(exp, "a")?, u(exp, "b")?, u(exp, "c")?, u(exp, "d")?],
            )?;
            eq("statistic", m.statistic, u(exp, "statistic")?)?;
            close("p_value", m.p_value, f(exp, "p_value")?)
        }
        other => Err(format!("unknown case kind {other}")),
    }
}

/// Per-kind results: `(kind, passed, total, largest absolute float difference)`.
pub type Tally = Vec<(String, usize, usize, f64)>;

/// Checks every line of `jsonl`; returns the per-kind tally and the failures.
pub fn check_all(jsonl: &str) -> (Tally, Vec<String>) {
    let mut tally: Tally = Vec::new();
    let mut failures = Vec::new();
    for (line_no, line) in jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let case: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("line {}: not JSON: {e}", line_no + 1));
                continue;
            }
        };
        let k = kind(&case).to_string();
        MAX_DIFF.with(|m| m.set(0.0));
        let ok = match check(&case) {
            Ok(()) => true,
            Err(why) => {
                failures.push(format!(
                    "line {} ({k}, input {}): {why}",
                    line_no + 1,
                    short(&case["input"])
                ));
                false
            }
        };
        let diff = MAX_DIFF.with(Cell::get);
        match tally.iter_mut().find(|t| t.0 == k) {
            Some(t) => {
                t.1 += usize::from(ok);
                t.2 += 1;
                t.3 = t.3.max(diff);
            }
            None => tally.push((k, usize::from(ok), 1, diff)),
        }
    }
    (tally, failures)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 160 {
        format!("{}…", &s[..160])
    } else {
        s
    }
}
