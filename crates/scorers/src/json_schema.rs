//! A small JSON Schema (draft 2020-12) validator: the assertion keywords evaluation
//! suites use, checked up front so a bad schema is a configuration error rather
//! than every output failing.
//!
//! Supported: `type`, `enum`, `const`, `properties`, `patternProperties`,
//! `additionalProperties`, `required`, `propertyNames`, `dependentRequired`,
//! `minProperties`/`maxProperties`, `prefixItems`, `items`, `contains`
//! (+ `minContains`/`maxContains`), `minItems`/`maxItems`, `uniqueItems`,
//! `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`, `multipleOf`,
//! `minLength`/`maxLength` (in code points), `pattern` (Rust `regex` syntax, searched
//! unanchored), `allOf`/`anyOf`/`oneOf`/`not`, `if`/`then`/`else`, and `$ref` to
//! `#` or a JSON pointer inside the same document (`#/$defs/x`). `format` and other
//! annotations are ignored, as 2020-12 does by default. Keywords whose meaning we
//! do not implement (`unevaluatedProperties`, `$dynamicRef`, remote `$ref`, ...) are
//! rejected rather than silently ignored.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::ConfigError;

// `$ref` chains deeper than this are treated as a cycle.
const MAX_DEPTH: usize = 128;

const UNSUPPORTED: &[&str] = &[
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentSchemas",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "$anchor",
    "dependencies",
    "additionalItems",
];

const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// A schema checked for supported keywords, with its patterns compiled.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    root: Value,
    patterns: HashMap<String, Regex>,
}

fn bad(path: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Schema {
        path: if path.is_empty() {
            "#".into()
        } else {
            format!("#{path}")
        },
        message: msg.into(),
    }
}

impl JsonSchema {
    /// Check `schema` and compile its patterns.
    pub fn new(schema: Value) -> Result<Self, ConfigError> {
        let mut patterns = HashMap::new();
        check(&schema, &schema, "", &mut patterns)?;
        Ok(Self {
            root: schema,
            patterns,
        })
    }

    /// Whether `instance` is valid; on failure, where and why.
    pub fn validate(&self, instance: &Value) -> Result<(), String> {
        self.validate_at(&self.root, instance, "", 0)
    }

    fn validate_at(
        &self,
        schema: &Value,
        inst: &Value,
        at: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("{at}: $ref nesting too deep"));
        }
        let obj = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(format!("{}: false schema", loc(at))),
            Value::Object(o) => o,
            _ => return Ok(()),
        };
        let fail = |m: String| Err(format!("{}: {m}", loc(at)));
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let target = resolve(&self.root, r)
                .ok_or_else(|| format!("{}: unresolvable $ref {r}", loc(at)))?;
            self.validate_at(target, inst, at, depth + 1)?;
        }
        if let Some(t) = obj.get("type") {
            let ok = match t {
                Value::String(s) => is_type(inst, s),
                Value::Array(a) => a.iter().filter_map(Value::as_str).any(|s| is_type(inst, s)),
                _ => true,
            };
            if !ok {
                return fail(format!("expected type {t}"));
            }
        }
        if let Some(Value::Array(options)) = obj.get("enum") {
            if !options.iter().any(|o| json_eq(o, inst)) {
                return fail("not one of the enum values".into());
            }
        }
        if let Some(c) = obj.get("const") {
            if !json_eq(c, inst) {
                return fail(format!("expected const {c}"));
            }
        }
        match inst {
            Value::Number(_) => self.validate_number(obj, inst, at)?,
            Value::String(s) => self.validate_string(obj, s, at)?,
            Value::Array(a) => self.validate_array(obj, a, at, depth)?,
            Value::Object(o) => self.validate_object(obj, o, at, depth)?,
            _ => {}
        }
        if let Some(Value::Array(subs)) = obj.get("allOf") {
            for s in subs {
                self.validate_at(s, inst, at, depth + 1)?;
            }
        }
        if let Some(Value::Array(subs)) = obj.get("anyOf") {
            if !subs
                .iter()
                .any(|s| self.validate_at(s, inst, at, depth + 1).is_ok())
            {
                return fail("matches none of anyOf".into());
            }
        }
        if let Some(Value::Array(subs)) = obj.get("oneOf") {
            let n = subs
                .iter()
                .filter(|s| self.validate_at(s, inst, at, depth + 1).is_ok())
                .count();
            if n != 1 {
                return fail(format!("matches {n} of oneOf, not exactly one"));
            }
        }
        if let Some(s) = obj.get("not") {
            if self.validate_at(s, inst, at, depth + 1).is_ok() {
                return fail("matches the not schema".into());
            }
        }
        if let Some(cond) = obj.get("if") {
            let branch = if self.validate_at(cond, inst, at, depth + 1).is_ok() {
                "then"
            } else {
                "else"
            };
            if let Some(s) = obj.get(branch) {
                self.validate_at(s, inst, at, depth + 1)?;
            }
        }
        Ok(())
    }

    fn validate_number(
        &self,
        obj: &Map<String, Value>,
        inst: &Value,
        at: &str,
    ) -> Result<(), String> {
        let x = inst.as_f64().unwrap_or(f64::NAN);
        let num = |k: &str| obj.get(k).and_then(Value::as_f64);
        let fail = |m: String| Err(format!("{}: {m}", loc(at)));
        if let Some(m) = num("minimum") {
            if x < m {
                return fail(format!("{x} is less than the minimum {m}"));
            }
        }
        if let Some(m) = num("maximum") {
            if x > m {
                return fail(format!("{x} is more than the maximum {m}"));
            }
        }
        if let Some(m) = num("exclusiveMinimum") {
            if x <= m {
                return fail(format!("{x} is not more than {m}"));
            }
        }
        if let Some(m) = num("exclusiveMaximum") {
            if x >= m {
                return fail(format!("{x} is not less than {m}"));
            }
        }
        if let Some(d) = obj.get("multipleOf") {
            let ok = match (inst.as_i64(), d.as_i64()) {
                (Some(a), Some(b)) if b != 0 => a % b == 0,
                _ => {
                    let q = x / d.as_f64().unwrap_or(f64::NAN);
                    q.is_finite() && q.trunc() == q
                }
            };
            if !ok {
                return fail(format!("{x} is not a multiple of {d}"));
            }
        }
        Ok(())
    }

    fn validate_string(&self, obj: &Map<String, Value>, s: &str, at: &str) -> Result<(), String> {
        let len = s.chars().count() as u64;
        let fail = |m: String| Err(format!("{}: {m}", loc(at)));
        if let Some(m) = obj.get("minLength").and_then(Value::as_u64) {
            if len < m {
                return fail(format!("shorter than {m} characters"));
            }
        }
        if let Some(m) = obj.get("maxLength").and_then(Value::as_u64) {
            if len > m {
                return fail(format!("longer than {m} characters"));
            }
        }
        if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
            if !self.patterns.get(p).is_some_and(|re| re.is_match(s)) {
                return fail(format!("does not match pattern {p}"));
            }
        }
        Ok(())
    }

    fn validate_array(
        &self,
        obj: &Map<String, Value>,
        a: &[Value],
        at: &str,
        depth: usize,
    ) -> Result<(), String> {
        let fail = |m: String| Err(format!("{}: {m}", loc(at)));
        let n = a.len() as u64;
        if let Some(m) = obj.get("minItems").and_then(Value::as_u64) {
            if n < m {
                return fail(format!("fewer than {m} items"));
            }
        }
        if let Some(m) = obj.get("maxItems").and_then(Value::as_u64) {
            if n > m {
                return fail(format!("more than {m} items"));
            }
        }
        if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
            for i in 0..a.len() {
                if a[i + 1..].iter().any(|b| json_eq(&a[i], b)) {
                    return fail("items are not unique".into());
                }
            }
        }
        let prefix = match obj.get("prefixItems") {
            Some(Value::Array(p)) => p.as_slice(),
            _ => &[],
        };
        for (i, item) in a.iter().enumerate() {
            let sub = prefix.get(i).or_else(|| obj.get("items"));
            if let Some(s) = sub {
                self.validate_at(s, item, &format!("{at}/{i}"), depth + 1)?;
            }
        }
        if let Some(c) = obj.get("contains") {
            let hits = a
                .iter()
                .enumerate()
                .filter(|(i, item)| {
                    self.validate_at(c, item, &format!("{at}/{i}"), depth + 1)
                        .is_ok()
                })
                .count() as u64;
            let min = obj.get("minContains").and_then(Value::as_u64).unwrap_or(1);
            if hits < min {
                return fail(format!("fewer than {min} items match contains"));
            }
            if let Some(max) = obj.get("maxContains").and_then(Value::as_u64) {
                if hits > max {
                    return fail(format!("more than {max} items match contains"));
                }
            }
        }
        Ok(())
    }

    fn validate_object(
        &self,
        obj: &Map<String, Value>,
        o: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<(), String> {
        let fail = |m: String| Err(format!("{}: {m}", loc(at)));
        let n = o.len() as u64;
        if let Some(m) = obj.get("minProperties").and_then(Value::as_u64) {
            if n < m {
                return fail(format!("fewer than {m} properties"));
            }
        }
        if let Some(m) = obj.get("maxProperties").and_then(Value::as_u64) {
            if n > m {
                return fail(format!("more than {m} properties"));
            }
        }
        if let Some(Value::Array(req)) = obj.get("required") {
            for k in req.iter().filter_map(Value::as_str) {
                if !o.contains_key(k) {
                    return fail(format!("missing required property {k:?}"));
                }
            }
        }
        if let Some(Value::Object(deps)) = obj.get("dependentRequired") {
            for (k, needed) in deps {
                if o.contains_key(k) {
                    for d in needed
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if !o.contains_key(d) {
                            return fail(format!("property {k:?} requires {d:?}"));
                        }
                    }
                }
            }
        }
        let props = obj.get("properties").and_then(Value::as_object);
        let pattern_props = obj.get("patternProperties").and_then(Value::as_object);
        for (k, v) in o {
            let here = format!("{at}/{k}");
            if let Some(names) = obj.get("propertyNames") {
                self.validate_at(names, &Value::String(k.clone()), &here, depth + 1)?;
            }
            let mut matched = false;
            if let Some(s) = props.and_then(|p| p.get(k)) {
                matched = true;
                self.validate_at(s, v, &here, depth + 1)?;
            }
            for (p, s) in pattern_props.into_iter().flatten() {
                if self.patterns.get(p).is_some_and(|re| re.is_match(k)) {
                    matched = true;
                    self.validate_at(s, v, &here, depth + 1)?;
                }
            }
            if !matched {
                if let Some(s) = obj.get("additionalProperties") {
                    self.validate_at(s, v, &here, depth + 1)
                        .map_err(|e| format!("additional property {k:?} not allowed ({e})"))?;
                }
            }
        }
        Ok(())
    }
}

fn loc(at: &str) -> String {
    if at.is_empty() {
        "$".into()
    } else {
        format!("${at}")
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        // 2020-12: any number with a zero fractional part is an integer.
        "integer" => {
            v.is_i64()
                || v.is_u64()
                || v.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => false,
    }
}

/// JSON Schema equality: numbers by value (1 == 1.0), everything else structurally.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(i), Some(j), _, _) => i == j,
                (_, _, Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Resolve a same-document reference: `#` or `#/json/pointer`.
fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let pointer = r.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    let decoded = percent_decode(pointer)?;
    root.pointer(&decoded)
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn check(
    root: &Value,
    schema: &Value,
    path: &str,
    patterns: &mut HashMap<String, Regex>,
) -> Result<(), ConfigError> {
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(bad(path, "a schema must be an object or a boolean")),
    };
    let sub = |k: &str| format!("{path}/{k}");
    for (k, v) in obj {
        let here = sub(k);
        if UNSUPPORTED.contains(&k.as_str()) {
            return Err(bad(&here, format!("keyword {k:?} is not supported")));
        }
        match k.as_str() {
            "$ref" => {
                let r = v.as_str().ok_or_else(|| bad(&here, "must be a string"))?;
                if resolve(root, r).is_none() {
                    return Err(bad(
                        &here,
                        format!("cannot resolve {r:?} (only same-document refs are supported)"),
                    ));
                }
            }
            "type" => {
                let names: Vec<&Value> = match v {
                    Value::Array(a) if !a.is_empty() => a.iter().collect(),
                    Value::String(_) => vec![v],
                    _ => {
                        return Err(bad(
                            &here,
                            "must be a type name or a non-empty array of them",
                        ))
                    }
                };
                for n in names {
                    if !n.as_str().is_some_and(|s| TYPES.contains(&s)) {
                        return Err(bad(&here, format!("unknown type {n}")));
                    }
                }
            }
            "enum" if !v.is_array() => {
                return Err(bad(&here, "must be an array"));
            }
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                let m = v
                    .as_object()
                    .ok_or_else(|| bad(&here, "must be an object"))?;
                for (name, s) in m {
                    if k == "patternProperties" {
                        compile(name, &here, patterns)?;
                    }
                    check(root, s, &format!("{here}/{name}"), patterns)?;
                }
            }
            "additionalProperties"
            | "items"
            | "contains"
            | "propertyNames"
            | "not"
            | "if"
            | "then"
            | "else" => {
                if v.is_array() && k == "items" {
                    return Err(bad(&here, "array-form items is draft-07; use prefixItems"));
                }
                check(root, v, &here, patterns)?;
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                let a = v
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| bad(&here, "must be a non-empty array"))?;
                for (i, s) in a.iter().enumerate() {
                    check(root, s, &format!("{here}/{i}"), patterns)?;
                }
            }
            "required" => {
                let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
                if !ok {
                    return Err(bad(&here, "must be an array of strings"));
                }
            }
            "dependentRequired" => {
                let ok = v.as_object().is_some_and(|m| {
                    m.values()
                        .all(|a| a.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
                });
                if !ok {
                    return Err(bad(&here, "must map names to arrays of strings"));
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" if !v.is_number() => {
                return Err(bad(&here, "must be a number"));
            }
            "multipleOf" if !v.as_f64().is_some_and(|d| d > 0.0) => {
                return Err(bad(&here, "must be a number greater than 0"));
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
            | "maxProperties" | "minContains" | "maxContains" => {
                let whole = v.as_u64().is_some()
                    || v.as_f64().is_some_and(|f| f >= 0.0 && f.fract() == 0.0);
                if !whole {
                    return Err(bad(&here, "must be a non-negative integer"));
                }
            }
            "uniqueItems" if !v.is_boolean() => {
                return Err(bad(&here, "must be a boolean"));
            }
            "pattern" => {
                let p = v.as_str().ok_or_else(|| bad(&here, "must be a string"))?;
                compile(p, &here, patterns)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn compile(
    pattern: &str,
    path: &str,
    patterns: &mut HashMap<String, Regex>,
) -> Result<(), ConfigError> {
    if !patterns.contains_key(pattern) {
        let re = Regex::new(pattern).map_err(|e| bad(path, format!("invalid pattern: {e}")))?;
        patterns.insert(pattern.to_string(), re);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid(schema: Value, inst: Value) -> bool {
        match JsonSchema::new(schema) {
            Ok(s) => s.validate(&inst).is_ok(),
            Err(e) => panic!("schema rejected: {e}"),
        }
    }

    #[test]
    fn object_with_required_and_types() {
        let s = json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}, "required": ["a"], "additionalProperties": false});
        assert!(valid(s.clone(), json!({"a": 2})));
        assert!(valid(s.clone(), json!({"a": 2.0})));
        assert!(!valid(s.clone(), json!({"a": 0})));
        assert!(!valid(s.clone(), json!({})));
        assert!(!valid(s, json!({"a": 1, "b": 2})));
    }

    #[test]
    fn refs_and_combinators() {
        let s = json!({"$defs": {"n": {"type": "number"}}, "oneOf": [{"$ref": "#/$defs/n"}, {"type": "string"}]});
        assert!(valid(s.clone(), json!(1)));
        assert!(valid(s.clone(), json!("x")));
        assert!(!valid(s, json!(null)));
    }

    #[test]
    fn bad_schemas_are_config_errors() {
        assert!(JsonSchema::new(json!({"type": "strng"})).is_err());
        assert!(JsonSchema::new(json!({"pattern": "("})).is_err());
        assert!(JsonSchema::new(json!({"required": "a"})).is_err());
        assert!(JsonSchema::new(json!({"$ref": "http://x/y"})).is_err());
        assert!(JsonSchema::new(json!({"unevaluatedProperties": false})).is_err());
    }
}
