//! Prompt templates: `{{name}}` placeholders filled from a case's `vars`.
//!
//! Syntax: a placeholder is `{{`, optional spaces or tabs, a name
//! (`[A-Za-z_][A-Za-z0-9_]*`), optional spaces or tabs, `}}`. Nothing else is special,
//! so braces need no escaping: `{"a": 1}`, `{ {x} }`, `{{ not a name }}` and an
//! unclosed `{{x` are all literal text, and `{{{x}}}` renders as `{` + x + `}`. The one
//! text a template cannot write literally is a placeholder itself; to produce
//! `{{name}}` in a prompt, put `{{` in a var (`"open": "{{"`) and write
//! `{{open}}name}}`.
//!
//! Rendering is one pass: a string value is inserted as-is, any other JSON value as
//! compact JSON (`3`, `true`, `null`, `["a","b"]`), and inserted text is never scanned
//! for placeholders again.

use serde_json::{Map, Value};
use thiserror::Error;

/// A template that uses a var the case does not define.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// The named var is not in the case's `vars`.
    #[error("template uses var \"{name}\" which the case does not define")]
    MissingVar {
        /// The placeholder's name.
        name: String,
    },
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

/// A parsed template, ready to render against any case's vars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source`; never fails because text that is not a placeholder is literal.
    pub fn parse(source: &str) -> Template {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(at) = rest.find("{{") {
            match placeholder(&rest[at + 2..]) {
                Some((name, used)) => {
                    literal.push_str(&rest[..at]);
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(name.to_string()));
                    rest = &rest[at + 2 + used..];
                }
                None => {
                    // Keep one `{` and look again from the next one: `{{{x}}}`.
                    literal.push_str(&rest[..=at]);
                    rest = &rest[at + 1..];
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Template { parts }
    }

    /// The distinct var names the template uses, in order of first use.
    pub fn vars(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Var(name) = part {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// The first var the template uses that `vars` lacks, if any.
    pub fn first_missing<'a>(&'a self, vars: &Map<String, Value>) -> Option<&'a str> {
        self.vars()
            .into_iter()
            .find(|name| !vars.contains_key(*name))
    }

    /// The length in bytes [`Self::render`] would produce, without building it (missing
    /// vars count as empty), so a size limit can be checked before anything is rendered.
    pub fn rendered_len(&self, vars: &Map<String, Value>) -> usize {
        let mut var_len: std::collections::HashMap<&str, usize> = Default::default();
        let mut total: usize = 0;
        for part in &self.parts {
            let n = match part {
                Part::Literal(text) => text.len(),
                Part::Var(name) => *var_len.entry(name).or_insert_with(|| match vars.get(name) {
                    Some(Value::String(s)) => s.len(),
                    Some(other) => other.to_string().len(),
                    None => 0,
                }),
            };
            total = total.saturating_add(n);
        }
        total
    }

    /// Fills every placeholder from `vars`.
    pub fn render(&self, vars: &Map<String, Value>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(name) => match vars.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => out.push_str(&other.to_string()),
                    None => return Err(TemplateError::MissingVar { name: name.clone() }),
                },
            }
        }
        Ok(out)
    }
}

/// Matches ` name }}` right after a `{{`: the name and the bytes used.
fn placeholder(s: &str) -> Option<(&str, usize)> {
    let is_blank = |c: char| c == ' ' || c == '\t';
    let after_lead = s.trim_start_matches(is_blank);
    let lead = s.len() - after_lead.len();
    let mut chars = after_lead.char_indices();
    match chars.next() {
        Some((_, c)) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return None,
    }
    let end = chars
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(after_lead.len(), |(i, _)| i);
    let name = &after_lead[..end];
    let after_name = &after_lead[end..];
    let after_trail = after_name.trim_start_matches(is_blank);
    let trail = after_name.len() - after_trail.len();
    if after_trail.starts_with("}}") {
        Some((name, lead + end + trail + 2))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn render(t: &str, v: Value) -> Result<String, TemplateError> {
        Template::parse(t).render(&vars(v))
    }

    #[test]
    fn substitutes_with_and_without_spaces() {
        let v = json!({"q": "why?", "n": 3});
        assert_eq!(
            render("Q: {{q}} ({{ n }})", v.clone()).unwrap(),
            "Q: why? (3)"
        );
        assert_eq!(render("{{\tq\t}}{{q}}", v).unwrap(), "why?why?");
    }

    #[test]
    fn non_strings_are_compact_json() {
        let v = json!({"a": [1, "x"], "o": {"k": null}, "b": true, "z": null, "f": 1.5});
        assert_eq!(
            render("{{a}}|{{o}}|{{b}}|{{z}}|{{f}}", v).unwrap(),
            r#"[1,"x"]|{"k":null}|true|null|1.5"#
        );
    }

    #[test]
    fn missing_var_is_named() {
        assert_eq!(
            render("{{ present }} {{absent}}", json!({"present": 1})),
            Err(TemplateError::MissingVar {
                name: "absent".into()
            })
        );
        let t = Template::parse("{{b}}{{a}}{{b}}");
        assert_eq!(t.vars(), vec!["b", "a"]);
        assert_eq!(t.first_missing(&vars(json!({"b": 1}))), Some("a"));
    }

    #[test]
    fn other_braces_are_literal() {
        let v = json!({"x": "X"});
        for (t, want) in [
            (r#"{"a": 1}"#, r#"{"a": 1}"#),
            ("{{{x}}}", "{X}"),
            ("{{ x y }}", "{{ x y }}"),
            ("{{1x}}", "{{1x}}"),
            ("{{x", "{{x"),
            ("{{x}", "{{x}"),
            ("{{}}", "{{}}"),
            ("}}{{", "}}{{"),
            ("{{-x}}", "{{-x}}"),
            ("{{x}}}}", "X}}"),
            ("", ""),
            ("é{{x}}ü", "éXü"),
        ] {
            assert_eq!(render(t, v.clone()).unwrap(), want, "template {t:?}");
        }
    }

    #[test]
    fn literal_placeholder_through_a_var() {
        let v = json!({"open": "{{", "x": "no"});
        assert_eq!(render("{{open}}x}}", v).unwrap(), "{{x}}");
    }

    #[test]
    fn inserted_text_is_not_rescanned() {
        let v = json!({"a": "{{b}}", "b": "B"});
        assert_eq!(render("{{a}}", v).unwrap(), "{{b}}");
    }

    proptest! {
        #[test]
        fn text_without_double_brace_is_unchanged(s in "[^{]*") {
            prop_assert_eq!(render(&s, json!({})).unwrap(), s);
        }

        #[test]
        fn string_values_are_inserted_verbatim(pre in "[a-z ]*", val in ".*", post in "[a-z ]*") {
            let t = format!("{pre}{{{{v}}}}{post}");
            prop_assert_eq!(render(&t, json!({"v": val.clone()})).unwrap(), format!("{pre}{val}{post}"));
        }

        #[test]
        fn parsing_never_panics(s in ".*") {
            let _ = Template::parse(&s).render(&Map::new());
        }
    }
}
