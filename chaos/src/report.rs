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

/// One legend entry of the timeline.
#[derive(Debug, Clone, Copy)]
enum Legend {
    /// A line of this colour, then text.
    Line(&'static str, &'static str),
    /// A bar of this colour, then text.
    Bar(&'static str, &'static str),
    /// Text only.
    Text(&'static str),
}

/// Width of a legend swatch.
const SWATCH: f64 = 20.0;

/// Height of a legend row.
const LEGEND_ROW: f64 = 16.0;

/// Space between legend entries.
const LEGEND_GAP: f64 = 24.0;

/// Estimated width of one character at the timeline's 11 px sans-serif (generous: most
/// fonts average 5.5-6.2 px; an overestimate only wraps earlier).
const CHAR_WIDTH: f64 = 6.6;

impl Legend {
    fn width(self) -> f64 {
        let chars = |t: &str| t.chars().count() as f64 * CHAR_WIDTH;
        match self {
            Legend::Line(_, t) | Legend::Bar(_, t) => SWATCH + 4.0 + chars(t),
            Legend::Text(t) => chars(t),
        }
    }
}

/// The timeline's legend.
const LEGEND: [Legend; 4] = [
    Legend::Line("#1565c0", "acknowledged ops/s"),
    Legend::Line("#c62828", "failed/unknown ops/s"),
    Legend::Bar(
        "#d32f2f",
        "longest gap without an acknowledged write (failover)",
    ),
    Legend::Text("bands: fault (dark) then recovery until convergence (light)"),
];

/// Where each legend entry of width `widths[i]` goes: (x, row), left to right from
/// `from`, starting a new row when the next entry would pass `to`.
fn legend_layout(widths: &[f64], from: f64, to: f64) -> Vec<(f64, usize)> {
    let (mut x, mut row) = (from, 0);
    let mut out = Vec::with_capacity(widths.len());
    for &wd in widths {
        if x > from && x + wd > to {
            x = from;
            row += 1;
        }
        out.push((x, row));
        x += wd + LEGEND_GAP;
    }
    out
}

/// The SVG timeline: faults as bands (start to heal, then heal to convergence lighter),
/// write gaps as red bars, acknowledged operations and errors per second as lines.
pub fn svg(bins: &[Bin], faults: &[FaultEvent], gaps: &[Gap], title: &str) -> String {
    let w = 1000.0f64;
    let (left, right, top, ph) = (60.0, 20.0, 40.0, 320.0);
    let pw = w - left - right;
    // The legend flows into as many rows as it needs below the axis labels.
    let legend = legend_layout(&LEGEND.map(|e| e.width()), left, w - right);
    let rows = legend.iter().map(|(_, r)| r + 1).max().unwrap_or(1);
    let legend_top = top + ph + 34.0;
    let h = legend_top + LEGEND_ROW * (rows - 1) as f64 + 20.0;
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
    for (i, (entry, (ex, row))) in LEGEND.iter().zip(legend).enumerate() {
        let ly = legend_top + LEGEND_ROW * row as f64;
        let (text_x, text) = match entry {
            Legend::Line(color, text) => {
                let _ = writeln!(
                    s,
                    r##"<line x1="{ex:.1}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="2"/>"##,
                    ex + SWATCH
                );
                (ex + SWATCH + 4.0, text)
            }
            Legend::Bar(color, text) => {
                let _ = writeln!(
                    s,
                    r##"<rect x="{ex:.1}" y="{}" width="{SWATCH}" height="6" fill="{color}"/>"##,
                    ly - 3.0
                );
                (ex + SWATCH + 4.0, text)
            }
            Legend::Text(text) => (ex, text),
        };
        let _ = writeln!(
            s,
            r##"<text x="{text_x:.1}" y="{}" data-legend="{i}">{}</text>"##,
            ly + 4.0,
            esc(text)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_legend_wraps_instead_of_running_past_the_edge() {
        let widths = LEGEND.map(|e| e.width());
        let layout = legend_layout(&widths, 60.0, 980.0);
        for ((x, _), wd) in layout.iter().zip(widths) {
            assert!(x + wd <= 980.0, "an entry ends at {}", x + wd);
        }
        assert!(layout.iter().any(|(_, row)| *row > 0), "it needs two rows");
        // A narrow legend area gives each entry a row of its own.
        let narrow = legend_layout(&[300.0, 300.0, 300.0], 0.0, 400.0);
        assert_eq!(narrow, [(0.0, 0), (0.0, 1), (0.0, 2)]);
    }

    #[test]
    fn the_svg_is_tall_enough_for_every_legend_row() {
        let svg = svg(&[], &[], &[], "t");
        let height: f64 = svg
            .split("height=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        let last_text_y: f64 = svg
            .lines()
            .filter(|l| l.contains("data-legend"))
            .filter_map(|l| l.split(" y=\"").nth(1)?.split('"').next()?.parse().ok())
            .fold(0.0, f64::max);
        assert!(last_text_y + 4.0 <= height, "{last_text_y} vs {height}");
        assert!(svg.contains("convergence (light)</text>"), "{svg}");
    }
}
