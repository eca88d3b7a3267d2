//! Checks reference cases (JSON lines written by
//! `tests/reference/scorers_reference.py`) against colony-scorers; shared by the
//! golden-file test and the live Python reference test.

use std::collections::BTreeMap;

use colony_scorers::json_schema::JsonSchema;
use colony_scorers::rouge::{self, RougeType};
use colony_scorers::{bleu, chrf, levenshtein, porter, squad, text, BleuStats, ChrfStats};
use serde_json::Value;

const TOL: f64 = 1e-9;

/// Per kind: how many cases agreed and the mismatches (case text and why).
#[derive(Debug, Default)]
pub struct Report {
    pub agreed: BTreeMap<String, usize>,
    pub total: BTreeMap<String, usize>,
    pub mismatches: Vec<String>,
}

impl Report {
    pub fn summary(&self) -> String {
        self.total
            .iter()
            .map(|(k, t)| format!("{k}: {}/{t}", self.agreed.get(k).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} is not a string in {v}"))
        .to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("not a string: {x}"))
                .to_string()
        })
        .collect()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number in {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL
}

fn check_f(errs: &mut Vec<String>, what: &str, ours: f64, want: f64) {
    if !close(ours, want) {
        errs.push(format!("{what}: ours {ours:?}, reference {want:?}"));
    }
}

fn bleu_stats(v: &Value) -> BleuStats {
    let n: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    BleuStats {
        sys_len: n[0],
        ref_len: n[1],
        correct: [n[2], n[3], n[4], n[5]],
        total: [n[6], n[7], n[8], n[9]],
    }
}

fn chrf_flat(s: &ChrfStats) -> Vec<u64> {
    (0..chrf::CHAR_ORDER)
        .flat_map(|i| [s.hyp[i], s.reference[i], s.matched[i]])
        .collect()
}

/// Check one case; returns its kind and what disagreed.
pub fn check_case(c: &Value) -> (String, Vec<String>) {
    let kind = s(c, "kind");
    let mut errs = Vec::new();
    match kind.as_str() {
        "squad" => {
            let (p, g) = (s(c, "prediction"), strings(&c["references"]));
            let em = squad::exact_match_max(&p, &g);
            if Some(em) != c["exact_match"].as_bool() {
                errs.push(format!("exact_match: ours {em}"));
            }
            check_f(&mut errs, "f1", squad::token_f1_max(&p, &g), f(c, "f1"));
        }
        "bleu" => {
            let (h, r) = (s(c, "hypothesis"), strings(&c["references"]));
            let tok = bleu::tokenize_13a(&h);
            if tok != s(c, "tokenized") {
                errs.push(format!("tokenized: ours {tok:?}"));
            }
            let stats = bleu::sentence_stats(&h, &r);
            if stats != bleu_stats(&c["stats"]) {
                errs.push(format!("stats: ours {stats:?}"));
            }
            check_f(
                &mut errs,
                "score",
                bleu::sentence_bleu(&h, &r),
                f(c, "score"),
            );
        }
        "chrf" => {
            let (h, r) = (s(c, "hypothesis"), strings(&c["references"]));
            let stats = chrf::sentence_stats(&h, &r);
            let want: Vec<u64> = c["stats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            if chrf_flat(&stats) != want {
                errs.push(format!("stats: ours {:?}", chrf_flat(&stats)));
            }
            check_f(
                &mut errs,
                "score",
                chrf::sentence_chrf(&h, &r),
                f(c, "score"),
            );
            check_f(
                &mut errs,
                "score_eps",
                chrf::sentence_chrf_eps(&h, &r),
                f(c, "score_eps"),
            );
        }
        "corpus" => {
            let hyps = strings(&c["hypotheses"]);
            let refs: Vec<Vec<String>> = c["references"]
                .as_array()
                .unwrap()
                .iter()
                .map(strings)
                .collect();
            let b: Vec<BleuStats> = hyps
                .iter()
                .zip(&refs)
                .map(|(h, r)| bleu::sentence_stats(h, r))
                .collect();
            check_f(&mut errs, "bleu", bleu::corpus_bleu(&b), f(c, "bleu"));
            let ch: Vec<ChrfStats> = hyps
                .iter()
                .zip(&refs)
                .map(|(h, r)| chrf::sentence_stats(h, r))
                .collect();
            check_f(&mut errs, "chrf", chrf::corpus_chrf(&ch), f(c, "chrf"));
            let ce: Vec<ChrfStats> = hyps
                .iter()
                .zip(&refs)
                .map(|(h, r)| chrf::sentence_stats_eps(h, r))
                .collect();
            let sum: ChrfStats = ce.into_iter().sum();
            check_f(&mut errs, "chrf_eps", sum.score_eps(), f(c, "chrf_eps"));
        }
        "rouge" => {
            let (p, t) = (s(c, "prediction"), strings(&c["targets"]));
            let stem = c["use_stemmer"].as_bool().unwrap();
            for (name, kind) in [
                ("rouge1", RougeType::Rouge1),
                ("rouge2", RougeType::Rouge2),
                ("rougeL", RougeType::RougeL),
            ] {
                let ours = rouge::score_multi(kind, &t, &p, stem);
                let want = c[name].as_array().unwrap();
                for (i, (o, w)) in [ours.precision, ours.recall, ours.fmeasure]
                    .iter()
                    .zip(want)
                    .enumerate()
                {
                    check_f(&mut errs, &format!("{name}[{i}]"), *o, w.as_f64().unwrap());
                }
            }
        }
        "porter" => {
            let ours = porter::stem(&s(c, "word"));
            if ours != s(c, "stem") {
                errs.push(format!("stem: ours {ours:?}"));
            }
        }
        "levenshtein" => {
            let (a, b) = (s(c, "a"), s(c, "b"));
            let d = levenshtein::distance(&a, &b) as u64;
            if Some(d) != c["distance"].as_u64() {
                errs.push(format!("distance: ours {d}"));
            }
            check_f(
                &mut errs,
                "similarity",
                levenshtein::normalized_similarity(&a, &b),
                f(c, "similarity"),
            );
        }
        "icontains" => {
            let ours = text::icontains(&s(c, "output"), &s(c, "needle"));
            if Some(ours) != c["expected"].as_bool() {
                errs.push(format!("icontains: ours {ours}"));
            }
        }
        "json_schema" => match JsonSchema::new(c["schema"].clone()) {
            Err(e) => errs.push(format!("schema rejected: {e}")),
            Ok(schema) => {
                let ours = schema.validate(&c["instance"]);
                if Some(ours.is_ok()) != c["valid"].as_bool() {
                    errs.push(format!("valid: ours {ours:?}"));
                }
            }
        },
        other => errs.push(format!("unknown case kind {other}")),
    }
    (kind, errs)
}

/// Check every case in `jsonl` (a `meta` line is skipped).
pub fn check_all(jsonl: &str) -> Report {
    let mut report = Report::default();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let c: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad case line {line}: {e}"));
        if c["kind"] == "meta" {
            continue;
        }
        let (kind, errs) = check_case(&c);
        *report.total.entry(kind.clone()).or_default() += 1;
        if errs.is_empty() {
            *report.agreed.entry(kind).or_default() += 1;
        } else {
            report
                .mismatches
                .push(format!("{line}\n    {}", errs.join("\n    ")));
        }
    }
    report
}
