//! Derived numbers (throughput per second, write gaps around faults), the human summary
//! and the SVG timeline (written by hand).

use crate::checks::Check;
use crate::history::{FaultEvent, Op, Outcome};
use serde::Serialize;
use std::fmt::Write as _;

/// Operations completed in one second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bin {
    /// Second since the start.
    pub second: usize,
    /// Acknowledged operations.
    pub ok: usize,
    /// Failed or unknown operations.
    pub errors: usize,
}

/// Per-second throughput and errors.
pub fn bins(ops: &[Op], end_ms: f64) -> Vec<Bin> {
    let n = (end_ms / 1000.0).ceil().max(1.0) as usize;
    let mut bins: Vec<Bin> = (0..n)
        .map(|second| Bin {
            second,
            ..Bin::default()
        })
        .collect();
    for o in ops {
        let s = ((o.complete_ms / 1000.0) as usize).min(n - 1);
        if o.outcome == Outcome::Ok {
            bins[s].ok += 1;
        } else {
            bins[s].errors += 1;
        }
    }
    bins
}

/// The longest interval without an acknowledged write around a fault.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    /// Fault index.
    pub fault: usize,
    /// The fault kind.
    pub kind: String,
    /// The gap starts (last acknowledged write before it), ms.
    pub from_ms: f64,
    /// The gap ends (next acknowledged write), ms.
    pub to_ms: f64,
}

impl Gap {
    /// Its length in seconds.
    pub fn secs(&self) -> f64 {
        (self.to_ms - self.from_ms) / 1000.0
    }
}

/// Whether `o` is an acknowledged write of the failover probe.
fn acked_write(o: &Op) -> bool {
    o.outcome == Outcome::Ok && o.kind == "probe.write"
}

/// Per fault, the longest interval between two consecutive acknowledged writes of the
/// failover probe (which avoids the nodes taken down) that overlaps the fault (start to
/// convergence): the write unavailability of a failover.
pub fn gaps(ops: &[Op], faults: &[FaultEvent]) -> Vec<Gap> {
    let mut acks: Vec<f64> = ops
        .iter()
        .filter(|o| acked_write(o))
        .map(|o| o.complete_ms)
        .collect();
    acks.sort_by(f64::total_cmp);
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let end = f.converged_ms.unwrap_or(f.heal_ms);
            let mut best = Gap {
                fault: i,
                kind: f.kind.clone(),
                from_ms: f.start_ms,
                to_ms: f.start_ms,
            };
            for w in acks.windows(2) {
                if w[1] >= f.start_ms && w[0] <= end && w[1] - w[0] > best.to_ms - best.from_ms {
                    best.from_ms = w[0];
                    best.to_ms = w[1];
                }
            }
            best
        })
        .collect()
}

/// The human summary.
pub fn summary(
    ops: &[Op],
    faults: &[FaultEvent],
    gaps: &[Gap],
    checks: &[Check],
    header: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}");
    let mut kinds: std::collections::BTreeMap<&str, [usize; 3]> = Default::default();
    for o in ops {
        let e = kinds.entry(o.kind.as_str()).or_default();
        e[match o.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
        }] += 1;
    }
    let _ = writeln!(s, "\noperations (ok / failed / unknown):");
    for (k, [ok, fail, info]) in &kinds {
        let _ = writeln!(s, "  {k:<20} {ok:>6} / {fail:>4} / {info:>4}");
    }
    let _ = writeln!(s, "\ntimeline:");
    for (f, g) in faults.iter().zip(gaps) {
        let conv = match f.converged_ms {
            Some(c) => format!(
                "converged at {:>5.1}s ({:.1} s after heal, leader n{})",
                c / 1000.0,
                (c - f.heal_ms) / 1000.0,
                f.leader_after.unwrap_or(0)
            ),
            None => "NOT converged".to_string(),
        };
        let _ = writeln!(
            s,
            "  {:>5.1}s  {:<16} {}  healed {:>5.1}s  {conv}; longest write gap {:.2} s{}",
            f.start_ms / 1000.0,
            f.kind,
            f.targets(),
            f.heal_ms / 1000.0,
            g.secs(),
            if f.note.is_empty() {
                String::new()
            } else {
                format!(" [{}]", f.note)
            }
        );
    }
    let _ = writeln!(s, "\ncheckers:");
    for c in checks {
        let _ = writeln!(
            s,
            "  [{}] {:<28} {}",
            if c.ok { "PASS" } else { "FAIL" },
            c.name,
            c.summary
        );
        if !c.ok {
            if let Some(ps) = c.details["problems"].as_array() {
                for p in ps.iter().take(10) {
                    let _ = writeln!(s, "         - {}", p.as_str().unwrap_or(""));
                }
            }
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG timeline: faults as bands (start to heal, then heal to convergence lighter),
/// write gaps as red bars, acknowledged operations and errors per second as lines.
pub fn svg(bins: &[Bin], faults: &[FaultEvent], gaps: &[Gap], title: &str) -> String {
    let (w, h) = (1000.0f64, 420.0f64);
    let (left, right, top, bottom) = (60.0, 20.0, 40.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let secs = bins.len().max(1) as f64;
    let x = |ms: f64| left + (ms / 1000.0 / secs) * pw;
    let ymax = bins
        .iter()
        .map(|b| b.ok.max(b.errors))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y = |v: f64| top + ph - v / ymax * (ph - 30.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"##
    );
    let _ = writeln!(s, r##"<rect width="{w}" height="{h}" fill="white"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="20" font-size="14">{}</text>"##,
        esc(title)
    );
    let colors = [
        ("kill9-restart", "#e57373"),
        ("kill-leader", "#ba68c8"),
        ("pause", "#ffb74d"),
        ("graceful-restart", "#64b5f6"),
        ("partition", "#81c784"),
        ("kill-minority", "#c62828"),
        ("partition-minority", "#2e7d32"),
    ];
    for f in faults {
        let c = colors
            .iter()
            .find(|(k, _)| *k == f.kind)
            .map_or("#bdbdbd", |(_, c)| c);
        let (x0, x1) = (x(f.start_ms), x(f.heal_ms));
        let x2 = x(f.converged_ms.unwrap_or(f.heal_ms));
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{ph}" fill="{c}" opacity="0.45"><title>{} {}</title></rect>"##,
            (x1 - x0).max(1.0),
            f.kind,
            f.targets()
        );
        let _ = writeln!(
            s,
            r##"<rect x="{x1:.1}" y="{top}" width="{:.1}" height="{ph}" fill="{c}" opacity="0.18"/>"##,
            (x2 - x1).max(0.0)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{}" fill="#333">{} {}</text>"##,
            x0 + 2.0,
            top + 12.0,
            f.kind,
            f.targets()
        );
    }
    for g in gaps {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{}" width="{:.1}" height="6" fill="#d32f2f"><title>no acknowledged write for {:.2} s</title></rect>"##,
            x(g.from_ms),
            top + ph - 6.0,
            (x(g.to_ms) - x(g.from_ms)).max(1.0),
            g.secs()
        );
    }
    let line = |field: fn(&Bin) -> usize| -> String {
        bins.iter()
            .map(|b| {
                format!(
                    "{:.1},{:.1}",
                    x((b.second as f64 + 0.5) * 1000.0),
                    y(field(b) as f64)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1565c0" stroke-width="1.5"/>"##,
        line(|b| b.ok)
    );
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#c62828" stroke-width="1.5"/>"##,
        line(|b| b.errors)
    );
    // Axes.
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#000"/>"##,
        top + ph,
        left + pw,
        top + ph
    );
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#000"/>"##,
        top + ph
    );
    let step = if secs > 120.0 { 20 } else { 10 };
    for t in (0..=bins.len()).step_by(step) {
        let xt = x(t as f64 * 1000.0);
        let _ = writeln!(
            s,
            r##"<text x="{xt:.1}" y="{}" text-anchor="middle">{t}s</text>"##,
            top + ph + 14.0
        );
    }
    for frac in [0.0, 0.5, 1.0] {
        let v = ymax * frac;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{v:.0}/s</text>"##,
            left - 4.0,
            y(v) + 4.0
        );
    }
    let ly = h - 20.0;
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{ly}" x2="{}" y2="{ly}" stroke="#1565c0" stroke-width="2"/><text x="{}" y="{}">acknowledged ops/s</text>"##,
        left + 20.0,
        left + 24.0,
        ly + 4.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="#c62828" stroke-width="2"/><text x="{}" y="{}">failed/unknown ops/s</text>"##,
        left + 160.0,
        left + 180.0,
        left + 184.0,
        ly + 4.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{}" width="20" height="6" fill="#d32f2f"/><text x="{}" y="{}">longest gap without an acknowledged write (failover)</text>"##,
        left + 320.0,
        ly - 3.0,
        left + 344.0,
        ly + 4.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}">bands: fault (dark) then recovery until convergence (light)</text>"##,
        left + 640.0,
        ly + 4.0
    );
    s.push_str("</svg>\n");
    s
}
