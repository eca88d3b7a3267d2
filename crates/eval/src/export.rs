//! Results as JSON Lines (one [`CaseResult`] per line, every field) and as CSV
//! (RFC 4180: CRLF line ends, a field quoted when it holds `,`, `"`, CR or LF, with `"`
//! doubled). CSV has fixed columns, then two per scorer in spec order: `NAME` (the
//! value) and `NAME.passed`. Absent values are empty fields; numbers use Rust's
//! shortest round-trip form. Results are written in the order given.
//!
//! CSV cells are not defused against spreadsheet formula injection (a cell starting
//! with `=`, `+`, `-` or `@`): the export is data, and altering it would corrupt it.

use std::borrow::Cow;

use thiserror::Error;

use crate::result::CaseResult;
use crate::validated::ValidatedSpec;

/// Why results could not be exported.
#[derive(Debug, Error)]
pub enum ExportError {
    /// A result could not be serialized.
    #[error("cannot serialize a result: {0}")]
    Json(#[from] serde_json::Error),
}

/// The fixed CSV columns, before the scorer columns.
pub const CSV_COLUMNS: [&str; 13] = [
    "case_index",
    "repeat",
    "provider_id",
    "passed",
    "weighted_score",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "cached",
    "attempts",
    "error",
    "output",
];

/// One JSON object per line, each line ending in `\n`.
pub fn to_jsonl(results: &[CaseResult]) -> Result<String, ExportError> {
    let mut out = String::new();
    for r in results {
        out.push_str(&serde_json::to_string(r)?);
        out.push('\n');
    }
    Ok(out)
}

/// Parses JSON Lines back into results (blank lines are skipped).
pub fn from_jsonl(text: &str) -> Result<Vec<CaseResult>, ExportError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(ExportError::from))
        .collect()
}

/// A header row and one row per result.
pub fn to_csv(spec: &ValidatedSpec, results: &[CaseResult]) -> String {
    let mut out = csv_header(spec);
    out.push_str(&csv_rows(spec, results));
    out
}

/// The CSV header row: the fixed columns, then a value and a pass column per scorer.
pub fn csv_header(spec: &ValidatedSpec) -> String {
    let names = spec.scorer_names();
    let mut header: Vec<String> = CSV_COLUMNS.iter().map(|c| c.to_string()).collect();
    for name in &names {
        header.push(name.to_string());
        header.push(format!("{name}.passed"));
    }
    let mut out = String::new();
    push_row(&mut out, header.iter().map(String::as_str));
    out
}

/// One CSV row per result, in the columns of [`csv_header`] (so an export can be written
/// a page at a time).
pub fn csv_rows(spec: &ValidatedSpec, results: &[CaseResult]) -> String {
    let names = spec.scorer_names();
    let mut out = String::new();
    for r in results {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let mut row: Vec<String> = vec![
            r.case_index.to_string(),
            r.repeat.to_string(),
            r.provider_id.clone(),
            r.passed.to_string(),
            r.weighted_score.to_string(),
            opt(r.latency_ms.map(|v| v.to_string())),
            r.usage.prompt_tokens.to_string(),
            r.usage.completion_tokens.to_string(),
            opt(r.cost_usd.map(|v| v.to_string())),
            r.cached.to_string(),
            r.attempts.to_string(),
            opt(r.error.clone()),
            opt(r.output.clone()),
        ];
        for name in &names {
            let rec = r.score(name);
            row.push(opt(rec.map(|s| s.value.to_string())));
            row.push(opt(rec.map(|s| s.passed.to_string())));
        }
        push_row(&mut out, row.iter().map(String::as_str));
    }
    out
}

fn push_row<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_field(f));
    }
    out.push_str("\r\n");
}

/// One CSV field, quoted when RFC 4180 requires it.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::result::{score_case, ProviderOutput};
    use crate::{validate, SpecLimits};
    use proptest::prelude::*;
    use serde_json::json;

    /// A strict RFC 4180 reader for the tests.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') if field.is_empty() => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') if chars.peek() == Some(&'\n') => {
                    chars.next();
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => {
                    assert!(c != '"' && c != '\n' && c != '\r', "bare {c:?} in {text:?}");
                    field.push(c);
                }
            }
        }
        assert!(
            field.is_empty() && row.is_empty() && !quoted,
            "unterminated row"
        );
        rows
    }

    fn spec() -> ValidatedSpec {
        let body = json!({
            "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
            "prompt": "{{q}}",
            "cases": [{"vars": {"q": "x"}, "reference": "x"}, {"vars": {"q": "y"}, "reference": "y"}],
            "scorers": [{"type": "contains", "value": ","}, {"type": "contains", "value": "\""}]
        });
        validate(&body, &SpecLimits::default()).unwrap()
    }

    #[test]
    fn a_csv_written_a_page_at_a_time_is_the_whole_csv() {
        let s = spec();
        let results: Vec<CaseResult> = (0..5u32)
            .map(|i| {
                let out = ProviderOutput::precomputed(&format!("out, {i}"));
                score_case(&s, (i % 2) as usize, "a", 0, Ok(out), None).unwrap()
            })
            .collect();
        let mut paged = csv_header(&s);
        for page in results.chunks(2) {
            paged.push_str(&csv_rows(&s, page));
        }
        assert_eq!(paged, to_csv(&s, &results));
        assert_eq!(parse_csv(&paged).len(), 6);
    }

    #[test]
    fn csv_escapes_and_has_scorer_columns() {
        let s = spec();
        let tricky = "say \"hi\", then\r\nleave\n";
        let results = vec![
            score_case(&s, 0, "a", 0, Ok(ProviderOutput::precomputed(tricky)), None).unwrap(),
            score_case(&s, 1, "a", 0, Err("bad, \"very\"".into()), None).unwrap(),
        ];
        let text = to_csv(&s, &results);
        assert!(text.contains("\"say \"\"hi\"\", then\r\nleave\n\""));
        let rows = parse_csv(&text);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            &rows[0][13..],
            [
                "contains",
                "contains.passed",
                "contains#2",
                "contains#2.passed"
            ]
        );
        assert!(rows.iter().all(|r| r.len() == 17));
        assert_eq!(rows[1][12], tricky);
        assert_eq!(&rows[1][13..], ["1", "true", "1", "true"]);
        assert_eq!(rows[2][11], "bad, \"very\"");
        // No output and no latency on error: empty fields.
        assert_eq!((rows[2][12].as_str(), rows[2][5].as_str()), ("", ""));
        assert_eq!(&rows[2][13..], ["0", "false", "0", "false"]);
    }

    #[test]
    fn jsonl_round_trips() {
        let s = spec();
        let results = vec![
            score_case(&s, 0, "a", 0, Ok(ProviderOutput::precomputed("a\nb")), None).unwrap(),
            score_case(&s, 1, "a", 0, Err("x".into()), None).unwrap(),
        ];
        let text = to_jsonl(&results).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        assert_eq!(from_jsonl(&text).unwrap(), results);
    }

    proptest! {
        #[test]
        fn csv_fields_round_trip(fields in proptest::collection::vec(".*|[,\"\r\n a]*", 1..6)) {
            let mut text = String::new();
            push_row(&mut text, fields.iter().map(String::as_str));
            prop_assert_eq!(parse_csv(&text), vec![fields]);
        }
    }
}
