//! Strict validation of a spec body: serde decoding (unknown keys, wrong types,
//! unknown scorer types) stops at the first error; the semantic checks after it
//! (ranges, references between fields, templates against every case, scorer settings)
//! report every problem they find, up to [`MAX_REPORTED_ERRORS`]. Each error carries a
//! JSON pointer to the offending field.

use std::collections::BTreeMap;

use colony_scorers::numeric::{extract_number, Pick};
use colony_scorers::{ConfigError, ScorerKind, ScorerSpec};
use serde_json::Value;

use crate::error::{push_token, SpecError, SpecErrors};
use crate::limits::SpecLimits;
use crate::spec::{CaseSpec, EvalSpec, ProviderKind, ProviderSpec, BUILTIN_ECHO, BUILTIN_MOCK};
use crate::template::Template;
use crate::validated::{NamedScorer, PromptTemplate, ValidatedSpec};

/// The most errors one rejection lists (the rest are dropped).
pub const MAX_REPORTED_ERRORS: usize = 50;

/// Longest provider id.
pub const MAX_PROVIDER_ID_LEN: usize = 64;

/// Parses and checks an evaluation spec body, building its scorers.
pub fn validate(body: &Value, limits: &SpecLimits) -> Result<ValidatedSpec, SpecErrors> {
    // Cheap size check before decoding a possibly huge array.
    if let Some(cases) = body.get("cases").and_then(Value::as_array) {
        if cases.len() > limits.max_cases {
            return Err(SpecErrors::one(SpecError::new(
                "/cases",
                format!(
                    "{} cases is more than the limit of {}",
                    cases.len(),
                    limits.max_cases
                ),
            )));
        }
    }
    let spec: EvalSpec = serde_path_to_error::deserialize(body)
        .map_err(|e| SpecErrors::one(decode_error(e.path(), e.inner())))?;
    let mut errs = Errors::default();
    check_providers(&spec, limits, &mut errs);
    let prompt = check_prompt(&spec, &mut errs);
    let scorers = check_scorers(&spec, limits, &mut errs);
    check_cases(&spec, limits, prompt.as_ref(), &mut errs);
    check_run(&spec, limits, &mut errs);
    match (errs.0.is_empty(), prompt) {
        (true, Some(prompt)) => Ok(ValidatedSpec {
            spec,
            scorers,
            prompt,
        }),
        _ => {
            errs.0.truncate(MAX_REPORTED_ERRORS);
            if errs.0.is_empty() {
                errs.push("", "invalid spec");
            }
            Err(SpecErrors { errors: errs.0 })
        }
    }
}

#[derive(Default)]
struct Errors(Vec<SpecError>);

impl Errors {
    fn push(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecError::new(pointer, message));
    }
}

/// Turns a serde error and its path into a pointer at the offending field: unknown
/// and missing fields point at the field itself (serde reports them on the object),
/// and a scorer's unknown `type` at `/scorers/N/type`.
fn decode_error(path: &serde_path_to_error::Path, err: &serde_json::Error) -> SpecError {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for seg in path.iter() {
        pointer = match seg {
            Segment::Seq { index } => push_token(&pointer, &index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => push_token(&pointer, key),
            Segment::Unknown => push_token(&pointer, "?"),
        };
    }
    let message = err.to_string();
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('`'))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    let is_scorer = {
        let mut tokens = pointer.split('/').skip(1);
        tokens.next() == Some("scorers")
            && tokens.next().is_some_and(|i| i.parse::<usize>().is_ok())
            && tokens.next().is_none()
    };
    if let Some(field) = quoted("unknown field ").or_else(|| quoted("missing field ")) {
        // The path already ends at an unknown key except inside a scorer, whose
        // deserializer reports it on the scorer object.
        if !pointer.ends_with(&push_token("", &field)) {
            pointer = push_token(&pointer, &field);
        }
    } else if is_scorer && message.starts_with("unknown variant") {
        pointer = push_token(&pointer, "type");
    } else if is_scorer {
        // colony-scorers reports `weight must be a number` on the scorer object.
        for key in ["weight", "threshold"] {
            if message.starts_with(&format!("{key} must")) {
                pointer = push_token(&pointer, key);
            }
        }
    }
    SpecError::new(pointer, message)
}

fn check_providers(spec: &EvalSpec, limits: &SpecLimits, errs: &mut Errors) {
    if spec.providers.is_empty() {
        errs.push("/providers", "at least one provider is required");
    }
    if spec.providers.len() > limits.max_providers {
        errs.push(
            "/providers",
            format!(
                "{} providers is more than the limit of {}",
                spec.providers.len(),
                limits.max_providers
            ),
        );
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in spec.providers.iter().enumerate() {
        let at = format!("/providers/{i}");
        if !valid_id(&p.id) {
            errs.push(
                format!("{at}/id"),
                format!("must be 1 to {MAX_PROVIDER_ID_LEN} characters of A-Z a-z 0-9 . _ -"),
            );
        } else if let Some(first) = seen.insert(&p.id, i) {
            errs.push(
                format!("{at}/id"),
                format!(
                    "duplicate provider id {:?} (also /providers/{first}/id)",
                    p.id
                ),
            );
            seen.insert(&p.id, first);
        }
        check_provider(p, &at, limits, errs);
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PROVIDER_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_provider(p: &ProviderSpec, at: &str, limits: &SpecLimits, errs: &mut Errors) {
    let mock = p.kind == ProviderKind::Builtin && p.model == BUILTIN_MOCK;
    match p.kind {
        ProviderKind::Openai => {
            match &p.base_url {
                None => errs.push(format!("{at}/base_url"), "required for kind openai"),
                Some(url) if !valid_base_url(url) => errs.push(
                    format!("{at}/base_url"),
                    "must be an http:// or https:// URL with a host",
                ),
                Some(_) => {}
            }
            if p.model.trim().is_empty() {
                errs.push(format!("{at}/model"), "must not be empty");
            }
            if let Some(name) = &p.credential {
                if colony_core::credential::check_name(name).is_err() {
                    errs.push(
                        format!("{at}/credential"),
                        "must be a credential name: 1 to 64 characters of A-Z a-z 0-9 . _ -",
                    );
                }
            }
        }
        ProviderKind::Builtin => {
            if p.model != BUILTIN_ECHO && p.model != BUILTIN_MOCK {
                errs.push(
                    format!("{at}/model"),
                    format!(
                        "builtin model must be {BUILTIN_ECHO:?} or {BUILTIN_MOCK:?}, got {:?}",
                        p.model
                    ),
                );
            }
            if p.base_url.is_some() {
                errs.push(
                    format!("{at}/base_url"),
                    "builtin providers take no base_url",
                );
            }
            if p.credential.is_some() {
                errs.push(
                    format!("{at}/credential"),
                    "builtin providers take no credential",
                );
            }
        }
    }
    if p.api_key_env.is_some() {
        errs.push(
            format!("{at}/api_key_env"),
            "api_key_env is no longer accepted (a spec may not read the node's environment): \
             store the key with PUT /v1/credentials/{name} and name it here with \"credential\"",
        );
    }
    let params = &p.params;
    let at = format!("{at}/params");
    let range = |errs: &mut Errors, name: &str, v: Option<f64>, lo: f64, hi: f64| {
        if let Some(v) = v {
            if !(lo..=hi).contains(&v) {
                errs.push(
                    format!("{at}/{name}"),
                    format!("must be within [{lo}, {hi}]"),
                );
            }
        }
    };
    range(errs, "temperature", params.temperature, 0.0, 2.0);
    range(errs, "top_p", params.top_p, 0.0, 1.0);
    range(errs, "presence_penalty", params.presence_penalty, -2.0, 2.0);
    range(
        errs,
        "frequency_penalty",
        params.frequency_penalty,
        -2.0,
        2.0,
    );
    range(errs, "error_rate", params.error_rate, 0.0, 1.0);
    if params.max_tokens == Some(0) {
        errs.push(format!("{at}/max_tokens"), "must be at least 1");
    }
    if let Some(stop) = &params.stop {
        if stop.len() > 4 {
            errs.push(format!("{at}/stop"), "at most 4 stop sequences");
        }
        if let Some(j) = stop.iter().position(String::is_empty) {
            errs.push(format!("{at}/stop/{j}"), "must not be empty");
        }
    }
    if let Some(ms) = params.latency_ms {
        if ms > limits.max_timeout_ms {
            errs.push(
                format!("{at}/latency_ms"),
                format!("must be at most {}", limits.max_timeout_ms),
            );
        }
    }
    for (name, given) in [
        ("latency_ms", params.latency_ms.is_some()),
        ("error_rate", params.error_rate.is_some()),
    ] {
        if given && !mock {
            errs.push(
                format!("{at}/{name}"),
                "only the builtin mock model takes this parameter",
            );
        }
    }
}

/// An `http://` or `https://` URL with a host and an optional path: no user info, query
/// or fragment (they would let a spec choose what the endpoint path becomes), no spaces.
fn valid_base_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split('/').next().unwrap_or("");
            !host.is_empty()
                && !host.contains('@')
                && !url.contains(['?', '#', '\\'])
                && !url.chars().any(|c| c.is_whitespace() || c.is_control())
                && url.len() <= 2048
        }
        None => false,
    }
}

/// The parsed templates with the pointer of each, or `None` when `prompt`/`messages`
/// are both absent, both present or empty.
fn check_prompt(spec: &EvalSpec, errs: &mut Errors) -> Option<PromptTemplate> {
    match (&spec.prompt, &spec.messages) {
        (None, None) => {
            errs.push("/prompt", "one of prompt or messages is required");
            None
        }
        (Some(_), Some(_)) => {
            errs.push("/messages", "give either prompt or messages, not both");
            None
        }
        (Some(p), None) => {
            if p.is_empty() {
                errs.push("/prompt", "must not be empty");
                return None;
            }
            Some(PromptTemplate::Text(Template::parse(p)))
        }
        (None, Some(ms)) => {
            if ms.is_empty() {
                errs.push("/messages", "at least one message is required");
                return None;
            }
            Some(PromptTemplate::Messages(
                ms.iter()
                    .map(|m| (m.role, Template::parse(&m.content)))
                    .collect(),
            ))
        }
    }
}

/// Each template of the prompt with its pointer.
fn templates(prompt: &PromptTemplate) -> Vec<(String, &Template)> {
    match prompt {
        PromptTemplate::Text(t) => vec![("/prompt".to_string(), t)],
        PromptTemplate::Messages(ms) => ms
            .iter()
            .enumerate()
            .map(|(i, (_, t))| (format!("/messages/{i}/content"), t))
            .collect(),
    }
}

/// The `type` tag of a scorer spec (`bleu`, `rougeL`, ...).
pub(crate) fn scorer_type(spec: &ScorerSpec) -> String {
    serde_json::to_value(&spec.kind)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "scorer".to_string())
}

fn check_scorers(spec: &EvalSpec, limits: &SpecLimits, errs: &mut Errors) -> Vec<NamedScorer> {
    if spec.scorers.is_empty() {
        errs.push("/scorers", "at least one scorer is required");
    }
    if spec.scorers.len() > limits.max_scorers {
        errs.push(
            "/scorers",
            format!(
                "{} scorers is more than the limit of {}",
                spec.scorers.len(),
                limits.max_scorers
            ),
        );
    }
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<NamedScorer> = Vec::new();
    for (i, s) in spec.scorers.iter().enumerate() {
        let kind = scorer_type(s);
        let k = count.entry(kind.clone()).or_insert(0);
        *k += 1;
        let name = if *k == 1 {
            kind.clone()
        } else {
            format!("{kind}#{k}")
        };
        match s.build() {
            Ok(scorer) => out.push(NamedScorer { name, kind, scorer }),
            Err(e) => {
                let at = format!("/scorers/{i}");
                let (pointer, message) = match &e {
                    ConfigError::Regex { .. } => (format!("{at}/pattern"), e.to_string()),
                    ConfigError::Schema { path, message } => (
                        format!("{at}/schema{}", path.trim_start_matches('#')),
                        format!("invalid json schema: {message}"),
                    ),
                    ConfigError::Number { field, .. } => (push_token(&at, field), e.to_string()),
                    ConfigError::Limit { field, .. } => (push_token(&at, field), e.to_string()),
                };
                errs.push(pointer, message);
            }
        }
    }
    // Each regex is bounded in compiled size; the count bounds what one spec holds.
    let regexes: usize = out.iter().map(|s| s.scorer.regex_count()).sum();
    if regexes > MAX_REGEXES_PER_SPEC {
        errs.push(
            "/scorers",
            format!(
                "the scorers compile {regexes} regexes, more than the limit of \
                 {MAX_REGEXES_PER_SPEC} per spec"
            ),
        );
    }
    out
}

/// Most compiled regexes (`regex` scorers and schema patterns together) in one spec.
pub const MAX_REGEXES_PER_SPEC: usize = 32;

/// What a scorer needs from every case's references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    Reference,
    NumericReference,
}

fn needs(kind: &ScorerKind) -> Needs {
    match kind {
        ScorerKind::ExactMatch {}
        | ScorerKind::TokenF1 {}
        | ScorerKind::Levenshtein {}
        | ScorerKind::Bleu {}
        | ScorerKind::Chrf {}
        | ScorerKind::Rouge1 { .. }
        | ScorerKind::Rouge2 { .. }
        | ScorerKind::RougeL { .. }
        | ScorerKind::Contains { value: None }
        | ScorerKind::Icontains { value: None }
        | ScorerKind::StartsWith { value: None } => Needs::Reference,
        ScorerKind::Numeric { expected: None, .. } => Needs::NumericReference,
        _ => Needs::Nothing,
    }
}

fn check_cases(
    spec: &EvalSpec,
    limits: &SpecLimits,
    prompt: Option<&PromptTemplate>,
    errs: &mut Errors,
) {
    if spec.cases.is_empty() {
        errs.push("/cases", "at least one case is required");
    }
    let work = spec
        .cases
        .len()
        .saturating_mul(spec.providers.len())
        .saturating_mul(spec.repeat().max(1) as usize);
    if work > limits.max_work_items {
        errs.push(
            "/cases",
            format!(
                "cases x providers x repeat is {work}, more than the limit of {}",
                limits.max_work_items
            ),
        );
    }
    let templates = prompt.map(templates).unwrap_or_default();
    let sizes = Sizes {
        prompt: limits.max_prompt_bytes,
        reference: limits.max_reference_bytes,
        output: limits.max_output_bytes,
    };
    let needs: Vec<(usize, Needs, String)> = spec
        .scorers
        .iter()
        .enumerate()
        .map(|(i, s)| (i, needs(&s.kind), scorer_type(s)))
        .filter(|(_, n, _)| *n != Needs::Nothing)
        .collect();
    for (i, case) in spec.cases.iter().enumerate() {
        if errs.0.len() >= MAX_REPORTED_ERRORS {
            return;
        }
        check_case(spec, i, case, &templates, &needs, errs);
        check_case_sizes(i, case, &templates, &sizes, errs);
    }
}

/// Byte limits of one case.
struct Sizes {
    prompt: usize,
    reference: usize,
    output: usize,
}

/// A case's rendered prompt, references and precomputed outputs against the limits:
/// checked without rendering, so an oversized prompt costs nothing to refuse.
fn check_case_sizes(
    i: usize,
    case: &CaseSpec,
    templates: &[(String, &Template)],
    sizes: &Sizes,
    errs: &mut Errors,
) {
    let at = format!("/cases/{i}");
    let prompt: usize = templates.iter().fold(0usize, |n, (_, t)| {
        n.saturating_add(t.rendered_len(&case.vars))
    });
    if prompt > sizes.prompt {
        errs.push(
            format!("{at}/vars"),
            format!(
                "the rendered prompt is {prompt} bytes, more than the limit of {} (evaluations.max_prompt_bytes)",
                sizes.prompt
            ),
        );
    }
    let refs: usize = case
        .reference
        .iter()
        .chain(case.references.iter().flatten())
        .fold(0usize, |n, r| n.saturating_add(r.len()));
    if refs > sizes.reference {
        let field = if case.reference.is_some() {
            "reference"
        } else {
            "references"
        };
        errs.push(
            format!("{at}/{field}"),
            format!(
                "references are {refs} bytes, more than the limit of {} (evaluations.max_reference_bytes)",
                sizes.reference
            ),
        );
    }
    for (id, out) in case.outputs.iter().flatten() {
        if out.len() > sizes.output {
            errs.push(
                push_token(&format!("{at}/outputs"), id),
                format!(
                    "output is {} bytes, more than the limit of {} (evaluations.max_output_bytes)",
                    out.len(),
                    sizes.output
                ),
            );
        }
    }
}

fn check_case(
    spec: &EvalSpec,
    i: usize,
    case: &CaseSpec,
    templates: &[(String, &Template)],
    needs: &[(usize, Needs, String)],
    errs: &mut Errors,
) {
    let at = format!("/cases/{i}");
    for (pointer, t) in templates {
        if let Some(name) = t.first_missing(&case.vars) {
            errs.push(
                format!("{at}/vars"),
                format!("missing var {name:?} used by {pointer}"),
            );
        }
    }
    if case.reference.is_some() && case.references.is_some() {
        errs.push(
            format!("{at}/references"),
            "give either reference or references, not both",
        );
    }
    if case.references.as_ref().is_some_and(Vec::is_empty) {
        errs.push(format!("{at}/references"), "must not be empty");
    }
    let refs = case.references();
    for (s, need, kind) in needs {
        match need {
            Needs::Reference if refs.is_empty() => errs.push(
                at.clone(),
                format!("scorer /scorers/{s} ({kind}) needs a reference or references"),
            ),
            Needs::NumericReference => {
                let field = if case.reference.is_some() {
                    "reference"
                } else {
                    "references/0"
                };
                match refs.first() {
                    None => errs.push(
                        at.clone(),
                        format!(
                            "scorer /scorers/{s} ({kind}) needs a reference or its expected value"
                        ),
                    ),
                    Some(r) if extract_number(r, Pick::First).is_none() => errs.push(
                        format!("{at}/{field}"),
                        format!("scorer /scorers/{s} ({kind}) needs a number in the reference"),
                    ),
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    if let Some(outputs) = &case.outputs {
        for id in outputs.keys() {
            if !spec.providers.iter().any(|p| &p.id == id) {
                errs.push(
                    push_token(&format!("{at}/outputs"), id),
                    format!("no provider has id {id:?}"),
                );
            }
        }
    }
}

fn check_run(spec: &EvalSpec, limits: &SpecLimits, errs: &mut Errors) {
    let mut between = |name: &str, v: Option<u64>, lo: u64, hi: u64| {
        if let Some(v) = v {
            if v < lo || v > hi {
                errs.push(format!("/{name}"), format!("must be within [{lo}, {hi}]"));
            }
        }
    };
    between(
        "concurrency",
        spec.concurrency.map(u64::from),
        1,
        u64::from(limits.max_concurrency),
    );
    between(
        "repeat",
        spec.repeat.map(u64::from),
        1,
        u64::from(limits.max_repeat),
    );
    between("timeout_ms", spec.timeout_ms, 1, limits.max_timeout_ms);
    between(
        "max_retries",
        spec.max_retries.map(u64::from),
        0,
        u64::from(limits.max_retries),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "providers": [
                {"id": "a", "kind": "builtin", "model": "echo"},
                {"id": "b", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                 "model": "gpt", "params": {"temperature": 0.0, "max_tokens": 16, "seed": 7},
                 "credential": "openai"}
            ],
            "prompt": "Q: {{question}}",
            "cases": [
                {"vars": {"question": "2+2?"}, "reference": "4"},
                {"vars": {"question": "3+3?"}, "references": ["6", "six"], "outputs": {"a": "6"}}
            ],
            "scorers": [{"type": "exact_match"}, {"type": "regex", "pattern": "\\d"}, {"type": "bleu"}, {"type": "bleu", "weight": 2}]
        })
    }

    fn errors(body: &Value) -> Vec<(String, String)> {
        errors_with(body, &SpecLimits::default())
    }

    fn errors_with(body: &Value, limits: &SpecLimits) -> Vec<(String, String)> {
        validate(body, limits)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| (e.pointer, e.message))
            .collect()
    }

    fn pointers(body: &Value) -> Vec<String> {
        errors(body).into_iter().map(|(p, _)| p).collect()
    }

    fn with(mut body: Value, pointer: &str, value: Value) -> Value {
        if let Some(slot) = body.pointer_mut(pointer) {
            *slot = value;
            return body;
        }
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        body.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.to_string(), value);
        body
    }

    fn without(mut body: Value, pointer: &str) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        body.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key);
        body
    }

    #[test]
    fn the_base_spec_is_valid() {
        let v = validate(&base(), &SpecLimits::default()).unwrap();
        assert_eq!(
            v.scorer_names(),
            vec!["exact_match", "regex", "bleu", "bleu#2"]
        );
        assert_eq!(v.spec().repeat(), 1);
        assert_eq!(v.spec().concurrency(), crate::spec::DEFAULT_CONCURRENCY);
        assert_eq!(v.scorers()[3].scorer.weight(), 2.0);
    }

    #[test]
    fn unknown_fields_point_at_the_field() {
        assert_eq!(pointers(&with(base(), "/colour", json!(1))), ["/colour"]);
        assert_eq!(
            pointers(&with(base(), "/providers/1/params/temprature", json!(1))),
            ["/providers/1/params/temprature"]
        );
        assert_eq!(
            pointers(&with(base(), "/cases/1/expected", json!("6"))),
            ["/cases/1/expected"]
        );
        let e = errors(&with(base(), "/scorers/1/flags", json!("i")));
        assert_eq!(e[0].0, "/scorers/1/flags");
        assert!(e[0].1.contains("unknown field"), "{e:?}");
    }

    #[test]
    fn type_errors_point_at_the_value() {
        assert_eq!(
            pointers(&with(base(), "/providers/0/kind", json!("anthropic"))),
            ["/providers/0/kind"]
        );
        assert_eq!(
            pointers(&with(base(), "/cases/1/references/1", json!(6))),
            ["/cases/1/references/1"]
        );
        assert_eq!(pointers(&with(base(), "/repeat", json!(-1))), ["/repeat"]);
        assert_eq!(
            pointers(&with(base(), "/scorers/3/weight", json!("x"))),
            ["/scorers/3/weight"]
        );
        assert_eq!(pointers(&json!([])), [""]);
    }

    #[test]
    fn missing_fields_point_at_the_field() {
        assert_eq!(pointers(&without(base(), "/providers")), ["/providers"]);
        assert_eq!(
            pointers(&without(base(), "/providers/1/model")),
            ["/providers/1/model"]
        );
        assert_eq!(
            pointers(&without(base(), "/scorers/1/pattern")),
            ["/scorers/1/pattern"]
        );
    }

    #[test]
    fn unknown_scorer_type() {
        let e = errors(&with(base(), "/scorers/2", json!({"type": "meteor"})));
        assert_eq!(e[0].0, "/scorers/2/type");
        assert!(e[0].1.contains("meteor"), "{e:?}");
    }

    #[test]
    fn bad_regex() {
        let e = errors(&with(base(), "/scorers/1/pattern", json!("(unclosed")));
        assert_eq!(e[0].0, "/scorers/1/pattern");
        assert!(e[0].1.contains("invalid regex"), "{e:?}");
    }

    #[test]
    fn invalid_json_schema() {
        let body = with(
            base(),
            "/scorers/0",
            json!({"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "nonsense"}}}}),
        );
        let e = errors(&body);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].0.starts_with("/scorers/0/schema"), "{e:?}");
    }

    #[test]
    fn bad_scorer_numbers() {
        assert_eq!(
            pointers(&with(base(), "/scorers/0/threshold", json!(1.5))),
            ["/scorers/0/threshold"]
        );
        assert_eq!(
            pointers(&with(
                base(),
                "/scorers/0",
                json!({"type": "latency_ms", "max": -1})
            )),
            ["/scorers/0/max"]
        );
    }

    #[test]
    fn template_vars_missing_from_a_case() {
        let body = with(base(), "/cases/1/vars", json!({"q": "x"}));
        let e = errors(&body);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "/cases/1/vars");
        assert!(
            e[0].1.contains("\"question\"") && e[0].1.contains("/prompt"),
            "{e:?}"
        );

        let body = with(
            without(base(), "/prompt"),
            "/messages",
            json!([{"role": "system", "content": "be brief {{tone}}"}, {"role": "user", "content": "{{question}}"}]),
        );
        let e = errors(&body);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].1.contains("/messages/0/content"));
        assert_eq!(e[1].0, "/cases/1/vars");
    }

    #[test]
    fn outputs_naming_an_unknown_provider() {
        let body = with(base(), "/cases/1/outputs", json!({"a": "6", "c/d": "6"}));
        assert_eq!(pointers(&body), ["/cases/1/outputs/c~1d"]);
    }

    #[test]
    fn too_many_cases() {
        let limits = SpecLimits {
            max_cases: 1,
            ..SpecLimits::default()
        };
        let e = errors_with(&base(), &limits);
        assert_eq!(e[0].0, "/cases");
        assert!(e[0].1.contains("limit of 1"));
        let limits = SpecLimits {
            max_work_items: 3,
            ..SpecLimits::default()
        };
        assert_eq!(errors_with(&base(), &limits)[0].0, "/cases");
    }

    #[test]
    fn api_key_env_is_refused_and_names_its_replacement() {
        let e = errors(&with(
            base(),
            "/providers/1/api_key_env",
            json!("COLONY_ADMIN_TOKEN"),
        ));
        assert_eq!(e[0].0, "/providers/1/api_key_env");
        assert!(e[0].1.contains("credential"), "{}", e[0].1);
        assert!(!e[0].1.contains("COLONY_ADMIN_TOKEN"));
    }

    #[test]
    fn sizes_are_checked_before_anything_is_rendered() {
        // 1000 placeholders of a 10 KB var would render 10 MB per case.
        let body = json!({
            "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
            "prompt": "{{v}}".repeat(1000),
            "cases": [{"vars": {"v": "x".repeat(10_000)}, "reference": "r".repeat(70_000)}],
            "scorers": [{"type": "exact_match"}]
        });
        let e = errors(&body);
        assert_eq!(e[0].0, "/cases/0/vars");
        assert!(
            e[0].1.contains("evaluations.max_prompt_bytes"),
            "{}",
            e[0].1
        );
        assert_eq!(e[1].0, "/cases/0/reference");
        for url in ["http://h/v1?x=1", "http://h/v1#f", "http://u:p@h/v1"] {
            assert_eq!(
                pointers(&with(base(), "/providers/1/base_url", json!(url))),
                ["/providers/1/base_url"],
                "{url}"
            );
        }
    }

    #[test]
    fn provider_checks() {
        let dup = with(base(), "/providers/1/id", json!("a"));
        let e = errors(&dup);
        assert_eq!(e[0].0, "/providers/1/id");
        assert!(e[0].1.contains("duplicate"));
        assert_eq!(
            pointers(&with(base(), "/providers/0/id", json!("a b"))),
            ["/providers/0/id", "/cases/1/outputs/a"]
        );
        assert_eq!(
            pointers(&with(base(), "/providers/0/model", json!("gpt"))),
            ["/providers/0/model"]
        );
        assert_eq!(
            pointers(&with(base(), "/providers/0/base_url", json!("http://x"))),
            ["/providers/0/base_url"]
        );
        assert_eq!(
            pointers(&without(base(), "/providers/1/base_url")),
            ["/providers/1/base_url"]
        );
        assert_eq!(
            pointers(&with(base(), "/providers/1/base_url", json!("ftp://x"))),
            ["/providers/1/base_url"]
        );
        assert_eq!(
            pointers(&with(base(), "/providers/1/credential", json!("a/b"))),
            ["/providers/1/credential"]
        );
        assert_eq!(
            pointers(&with(base(), "/providers/1/params/temperature", json!(3))),
            ["/providers/1/params/temperature"]
        );
        assert_eq!(
            pointers(&with(base(), "/providers/1/params/error_rate", json!(0.1))),
            ["/providers/1/params/error_rate"]
        );
        assert_eq!(
            pointers(&with(base(), "/providers", json!([]))),
            ["/providers", "/cases/1/outputs/a"]
        );
        let mock = with(
            base(),
            "/providers/0",
            json!({"id": "m", "kind": "builtin", "model": "mock", "params": {"latency_ms": 5, "error_rate": 0.25}}),
        );
        let mock = with(mock, "/cases/1/outputs", json!({"m": "6"}));
        validate(&mock, &SpecLimits::default()).unwrap();
        assert_eq!(
            pointers(&with(mock, "/providers/0/params/error_rate", json!(2))),
            ["/providers/0/params/error_rate"]
        );
    }

    #[test]
    fn prompt_and_messages_exactly_one() {
        assert_eq!(pointers(&without(base(), "/prompt")), ["/prompt"]);
        let both = with(
            base(),
            "/messages",
            json!([{"role": "user", "content": "x"}]),
        );
        assert_eq!(pointers(&both), ["/messages"]);
        assert_eq!(pointers(&with(base(), "/prompt", json!(""))), ["/prompt"]);
        let empty = with(without(base(), "/prompt"), "/messages", json!([]));
        assert_eq!(pointers(&empty), ["/messages"]);
        let bad_role = with(
            without(base(), "/prompt"),
            "/messages",
            json!([{"role": "tool", "content": "x"}]),
        );
        assert_eq!(pointers(&bad_role), ["/messages/0/role"]);
    }

    #[test]
    fn references_checks() {
        let both = with(base(), "/cases/0/references", json!(["4"]));
        assert_eq!(pointers(&both), ["/cases/0/references"]);
        let none = without(base(), "/cases/0/reference");
        let e = errors(&none);
        // exact_match, bleu and bleu#2 need references.
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().all(|(p, _)| p == "/cases/0"));
        let numeric = with(base(), "/scorers", json!([{"type": "numeric"}]));
        let e = errors(&with(numeric, "/cases/0/reference", json!("four")));
        assert_eq!(e[0].0, "/cases/0/reference");
    }

    #[test]
    fn run_settings_ranges() {
        for (field, bad) in [
            ("/concurrency", json!(0)),
            ("/concurrency", json!(65)),
            ("/repeat", json!(0)),
            ("/repeat", json!(11)),
            ("/timeout_ms", json!(0)),
            ("/max_retries", json!(11)),
        ] {
            assert_eq!(pointers(&with(base(), field, bad)), [field]);
        }
        for (field, good) in [("/concurrency", 64), ("/repeat", 3), ("/max_retries", 0)] {
            validate(&with(base(), field, json!(good)), &SpecLimits::default()).unwrap();
        }
    }

    #[test]
    fn a_spec_holds_a_bounded_number_of_compiled_regexes() {
        // 16 schema scorers of 32 patterns each would hold 512 compiled regexes.
        let props: serde_json::Map<String, Value> = (0..30)
            .map(|i| (format!("^k{i}$"), json!({"type": "string"})))
            .collect();
        let scorer = json!({"type": "json_schema", "schema": {"patternProperties": props}});
        let mut body = base();
        body["scorers"] = json!([scorer.clone(), scorer]);
        let e = errors(&body);
        assert!(
            e.iter()
                .any(|(p, m)| p == "/scorers" && m.contains("60 regexes")),
            "{e:?}"
        );
        body["scorers"] = json!([scorer_with_one()]);
        assert!(validate(&body, &SpecLimits::default()).is_ok());
    }

    fn scorer_with_one() -> Value {
        json!({"type": "regex", "pattern": "^P"})
    }

    #[test]
    fn several_semantic_errors_are_reported_together() {
        let body = with(base(), "/repeat", json!(0));
        let body = with(body, "/providers/0/model", json!("nope"));
        let body = with(body, "/scorers/1/pattern", json!("["));
        assert_eq!(
            pointers(&body),
            ["/providers/0/model", "/scorers/1/pattern", "/repeat"]
        );
    }

    proptest::proptest! {
        #[test]
        fn a_case_missing_a_var_is_pointed_at(n in 1usize..30, seed in 0usize..1000) {
            let bad = seed % n;
            let cases: Vec<Value> = (0..n)
                .map(|i| if i == bad { json!({"vars": {"other": 1}, "reference": "4"}) }
                         else { json!({"vars": {"question": i}, "reference": "4"}) })
                .collect();
            let body = with(base(), "/cases", Value::Array(cases));
            let e = errors(&body);
            proptest::prop_assert_eq!(e.len(), 1);
            proptest::prop_assert_eq!(&e[0].0, &format!("/cases/{bad}/vars"));
        }
    }
}
