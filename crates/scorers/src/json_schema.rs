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
//! rejected rather than silently ignored. A `$ref` target outside the places
//! schemas usually live (`$defs`, `properties`, ...) is checked as a schema too.
//!
//! # Limits
//!
//! Schemas and outputs both come from tenants, so the cost of a schema is bounded
//! when it is built and the cost of each validation while it runs:
//!
//! - Building ([`JsonSchema::new`], a [`ConfigError::Schema`] naming the limit): at
//!   most [`MAX_SCHEMA_NODES`] subschemas, nested at most [`MAX_SCHEMA_DEPTH`] deep;
//!   `$ref` strings of at most 1024 bytes; at most [`MAX_PATTERNS`] distinct regexes
//!   (`pattern` values and `patternProperties` keys together), each at most
//!   [`MAX_PATTERN_LEN`] bytes and compiled within [`REGEX_SIZE_LIMIT`] and
//!   [`REGEX_DFA_SIZE_LIMIT`] (shared with the `regex` scorer, see [`crate::text`]).
//!   `type` arrays must not repeat a name.
//! - Validating ([`JsonSchema::validate`]): `$ref` results are memoized per (target
//!   subschema, instance value) within one call, so branching `$ref`s cost linear
//!   rather than exponential time. A memoized failure is reused as-is (its message
//!   cut to 512 bytes), so its message may name the location where that subschema
//!   first failed against that value rather than the current one (the verdict is
//!   the same). Every call counts
//!   steps against a budget ([`DEFAULT_VISIT_BUDGET`], or
//!   [`JsonSchema::validate_with_budget`]): one per subschema visited, one per
//!   pair of values (nested ones included) compared by `enum`, `const` and
//!   `uniqueItems` (so its O(n²) comparisons are bounded), one per name checked by
//!   `required`/`dependentRequired`, one per property key examined and per
//!   `patternProperties` regex tried, plus one per KiB of text measured or searched.
//!   Past the budget, validation stops with "schema validation exceeded its budget
//!   of N steps"; the output then fails the scorer with that detail. Locations in
//!   messages show at most 64 characters of each key and about 512 bytes in all, and
//!   `const` values at most 256 bytes.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io;

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::text::{compile_pattern, PatternError};
pub use crate::text::{MAX_PATTERN_LEN, REGEX_DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT};

// Subschema nesting deeper than this while validating (through `$ref`, combinators,
// items and properties) is treated as a `$ref` cycle.
const MAX_DEPTH: usize = 128;

/// Steps one [`JsonSchema::validate`] call may take before it gives up.
pub const DEFAULT_VISIT_BUDGET: u64 = 100_000;

/// Most distinct regexes (`pattern` values and `patternProperties` keys) in one schema.
pub const MAX_PATTERNS: usize = 32;

/// Most subschemas (objects and booleans in schema positions) in one schema.
pub const MAX_SCHEMA_NODES: usize = 10_000;

/// Deepest nesting of subschemas in one schema.
pub const MAX_SCHEMA_DEPTH: usize = 64;

// Longest `$ref` string accepted, in bytes (resolving it is linear in its length).
const MAX_REF_LEN: usize = 1024;

// How much of a key a location shows, in characters, and how long a location may
// grow, in bytes, before it is cut with "/…".
const MAX_KEY_SHOWN: usize = 64;
const MAX_LOCATION: usize = 512;
// How much of a `const` value or of a nested message a message shows, in bytes.
const MAX_VALUE_SHOWN: usize = 256;
const MAX_MESSAGE: usize = 1024;
// How much of a failure's message the memo keeps, in bytes.
const MAX_MEMO_MESSAGE: usize = 512;

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

/// A schema checked for supported keywords and limits, with its patterns compiled.
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

/// Why evaluating a subschema stopped.
#[derive(Debug, Clone)]
enum Halt {
    /// The instance is invalid there, and why.
    Invalid(String),
    /// The call is out of budget: nothing more is evaluated, and no combinator
    /// (`not`, `anyOf`, ...) may turn this into a verdict.
    Budget,
}

type Outcome = Result<(), Halt>;

/// The state of one `validate` call.
#[derive(Debug)]
struct Run {
    /// `$ref` results by (target subschema address, instance value address).
    memo: HashMap<(usize, usize), Result<(), String>>,
    /// Steps taken so far.
    visits: u64,
    /// Steps allowed.
    budget: u64,
    /// Above 0 while validating a value built on the fly (a property name for
    /// `propertyNames`): its address is reused by later values, so it is not memoized.
    transient: u32,
}

impl Run {
    fn new(budget: u64) -> Self {
        Self {
            memo: HashMap::new(),
            visits: 0,
            budget,
            transient: 0,
        }
    }

    /// Count `steps` more; stop once over budget.
    fn charge(&mut self, steps: u64) -> Result<(), Halt> {
        self.visits = self.visits.saturating_add(steps);
        if self.visits > self.budget {
            Err(Halt::Budget)
        } else {
            Ok(())
        }
    }
}

/// Steps charged for scanning `bytes` of text: one per KiB.
fn kib(bytes: usize) -> u64 {
    (bytes / 1024) as u64
}

fn addr(v: &Value) -> usize {
    v as *const Value as usize
}

fn invalid(m: String) -> Outcome {
    Err(Halt::Invalid(m))
}

impl JsonSchema {
    /// How many distinct regexes the schema compiled.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Check `schema` against the supported keywords and the limits, and compile its patterns.
    pub fn new(schema: Value) -> Result<Self, ConfigError> {
        let patterns = {
            let mut checker = Checker {
                root: &schema,
                patterns: HashMap::new(),
                nodes: 0,
                seen: HashSet::new(),
                refs: Vec::new(),
            };
            checker.check(&schema, "", 0)?;
            // `$ref` targets outside the places `check` walks are schemas too. Checking
            // them may find more `$ref`s; the node limit bounds the loop.
            let mut i = 0;
            while let Some((target, path)) = checker.refs.get(i).cloned() {
                i += 1;
                checker.check(target, &path, 0)?;
            }
            checker.patterns
        };
        Ok(Self {
            root: schema,
            patterns,
        })
    }

    /// Whether `instance` is valid, within [`DEFAULT_VISIT_BUDGET`] steps; on failure, where and why.
    pub fn validate(&self, instance: &Value) -> Result<(), String> {
        self.validate_with_budget(instance, DEFAULT_VISIT_BUDGET)
    }

    /// As [`JsonSchema::validate`], within `budget` steps.
    pub fn validate_with_budget(&self, instance: &Value, budget: u64) -> Result<(), String> {
        self.run(instance, budget).0
    }

    /// The verdict and the steps it took.
    fn run(&self, instance: &Value, budget: u64) -> (Result<(), String>, u64) {
        let mut run = Run::new(budget);
        let verdict = match self.validate_at(&mut run, &self.root, instance, "", 0) {
            Ok(()) => Ok(()),
            Err(Halt::Invalid(m)) => Err(m),
            Err(Halt::Budget) => Err(format!(
                "schema validation exceeded its budget of {budget} steps"
            )),
        };
        (verdict, run.visits)
    }

    /// Whether `inst` is valid against `schema` (`Ok(false)` when not), stopping
    /// only when out of budget.
    fn passes(
        &self,
        run: &mut Run,
        schema: &Value,
        inst: &Value,
        at: &str,
        depth: usize,
    ) -> Result<bool, Halt> {
        match self.validate_at(run, schema, inst, at, depth) {
            Ok(()) => Ok(true),
            Err(Halt::Invalid(_)) => Ok(false),
            Err(Halt::Budget) => Err(Halt::Budget),
        }
    }

    fn validate_ref(
        &self,
        run: &mut Run,
        target: &Value,
        inst: &Value,
        at: &str,
        depth: usize,
    ) -> Outcome {
        if run.transient > 0 {
            return self.validate_at(run, target, inst, at, depth + 1);
        }
        let key = (addr(target), addr(inst));
        if let Some(known) = run.memo.get(&key) {
            return known.clone().map_err(Halt::Invalid);
        }
        match self.validate_at(run, target, inst, at, depth + 1) {
            Ok(()) => {
                run.memo.insert(key, Ok(()));
                Ok(())
            }
            Err(Halt::Invalid(m)) => {
                run.memo
                    .insert(key, Err(clip_bytes(&m, MAX_MEMO_MESSAGE).into_owned()));
                Err(Halt::Invalid(m))
            }
            Err(Halt::Budget) => Err(Halt::Budget),
        }
    }

    fn validate_at(
        &self,
        run: &mut Run,
        schema: &Value,
        inst: &Value,
        at: &str,
        depth: usize,
    ) -> Outcome {
        run.charge(1)?;
        if depth > MAX_DEPTH {
            return invalid(format!("{}: $ref nesting too deep", loc(at)));
        }
        let obj = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return invalid(format!("{}: false schema", loc(at))),
            Value::Object(o) => o,
            _ => return Ok(()),
        };
        let fail = |m: String| -> Outcome { invalid(format!("{}: {m}", loc(at))) };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let Some(target) = resolve(&self.root, r) else {
                return invalid(format!("{}: unresolvable $ref {r}", loc(at)));
            };
            self.validate_ref(run, target, inst, at, depth)?;
        }
        if let Some(t) = obj.get("type") {
            let ok = match t {
                Value::String(s) => is_type(inst, s),
                Value::Array(a) => a.iter().filter_map(Value::as_str).any(|s| is_type(inst, s)),
                _ => true,
            };
            if !ok {
                return fail(format!("expected type {}", shown(t)));
            }
        }
        if let Some(Value::Array(options)) = obj.get("enum") {
            let mut found = false;
            for o in options {
                let mut steps = 0;
                let same = eq_steps(o, inst, &mut steps);
                run.charge(steps)?;
                if same {
                    found = true;
                    break;
                }
            }
            if !found {
                return fail("not one of the enum values".into());
            }
        }
        if let Some(c) = obj.get("const") {
            let mut steps = 0;
            let same = eq_steps(c, inst, &mut steps);
            run.charge(steps)?;
            if !same {
                return fail(format!("expected const {}", shown(c)));
            }
        }
        match inst {
            Value::Number(_) => self.validate_number(obj, inst, at)?,
            Value::String(s) => self.validate_string(run, obj, s, at)?,
            Value::Array(a) => self.validate_array(run, obj, a, at, depth)?,
            Value::Object(o) => self.validate_object(run, obj, o, at, depth)?,
            _ => {}
        }
        if let Some(Value::Array(subs)) = obj.get("allOf") {
            for s in subs {
                self.validate_at(run, s, inst, at, depth + 1)?;
            }
        }
        if let Some(Value::Array(subs)) = obj.get("anyOf") {
            let mut any = false;
            for s in subs {
                if self.passes(run, s, inst, at, depth + 1)? {
                    any = true;
                    break;
                }
            }
            if !any {
                return fail("matches none of anyOf".into());
            }
        }
        if let Some(Value::Array(subs)) = obj.get("oneOf") {
            let mut n = 0usize;
            for s in subs {
                if self.passes(run, s, inst, at, depth + 1)? {
                    n += 1;
                }
            }
            if n != 1 {
                return fail(format!("matches {n} of oneOf, not exactly one"));
            }
        }
        if let Some(s) = obj.get("not") {
            if self.passes(run, s, inst, at, depth + 1)? {
                return fail("matches the not schema".into());
            }
        }
        if let Some(cond) = obj.get("if") {
            let branch = if self.passes(run, cond, inst, at, depth + 1)? {
                "then"
            } else {
                "else"
            };
            if let Some(s) = obj.get(branch) {
                self.validate_at(run, s, inst, at, depth + 1)?;
            }
        }
        Ok(())
    }

    fn validate_number(&self, obj: &Map<String, Value>, inst: &Value, at: &str) -> Outcome {
        let x = inst.as_f64().unwrap_or(f64::NAN);
        let num = |k: &str| obj.get(k).and_then(Value::as_f64);
        let fail = |m: String| -> Outcome { invalid(format!("{}: {m}", loc(at))) };
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

    fn validate_string(
        &self,
        run: &mut Run,
        obj: &Map<String, Value>,
        s: &str,
        at: &str,
    ) -> Outcome {
        let fail = |m: String| -> Outcome { invalid(format!("{}: {m}", loc(at))) };
        let min = obj.get("minLength").and_then(Value::as_u64);
        let max = obj.get("maxLength").and_then(Value::as_u64);
        if min.is_some() || max.is_some() {
            run.charge(kib(s.len()))?;
            let len = s.chars().count() as u64;
            if let Some(m) = min {
                if len < m {
                    return fail(format!("shorter than {m} characters"));
                }
            }
            if let Some(m) = max {
                if len > m {
                    return fail(format!("longer than {m} characters"));
                }
            }
        }
        if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
            run.charge(kib(s.len()))?;
            if !self.patterns.get(p).is_some_and(|re| re.is_match(s)) {
                return fail(format!("does not match pattern {p}"));
            }
        }
        Ok(())
    }

    fn validate_array(
        &self,
        run: &mut Run,
        obj: &Map<String, Value>,
        a: &[Value],
        at: &str,
        depth: usize,
    ) -> Outcome {
        let fail = |m: String| -> Outcome { invalid(format!("{}: {m}", loc(at))) };
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
            // O(n²) comparisons, each charged, so a long array runs out of budget
            // instead of running on.
            for i in 0..a.len() {
                for b in &a[i + 1..] {
                    let mut steps = 0;
                    let same = eq_steps(&a[i], b, &mut steps);
                    run.charge(steps)?;
                    if same {
                        return fail("items are not unique".into());
                    }
                }
            }
        }
        let prefix = match obj.get("prefixItems") {
            Some(Value::Array(p)) => p.as_slice(),
            _ => &[],
        };
        let items = obj.get("items");
        for (i, item) in a.iter().enumerate() {
            // Past `prefixItems` with no `items`, nothing applies to the rest.
            let Some(s) = prefix.get(i).or(items) else {
                break;
            };
            self.validate_at(run, s, item, &child(at, &i.to_string()), depth + 1)?;
        }
        if let Some(c) = obj.get("contains") {
            let mut hits = 0u64;
            for (i, item) in a.iter().enumerate() {
                if self.passes(run, c, item, &child(at, &i.to_string()), depth + 1)? {
                    hits += 1;
                }
            }
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
        run: &mut Run,
        obj: &Map<String, Value>,
        o: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Outcome {
        let fail = |m: String| -> Outcome { invalid(format!("{}: {m}", loc(at))) };
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
                run.charge(1)?;
                if !o.contains_key(k) {
                    return fail(format!(
                        "missing required property {:?}",
                        clip(k, MAX_KEY_SHOWN)
                    ));
                }
            }
        }
        if let Some(Value::Object(deps)) = obj.get("dependentRequired") {
            for (k, needed) in deps {
                run.charge(1)?;
                if o.contains_key(k) {
                    for d in needed
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        run.charge(1)?;
                        if !o.contains_key(d) {
                            return fail(format!(
                                "property {:?} requires {:?}",
                                clip(k, MAX_KEY_SHOWN),
                                clip(d, MAX_KEY_SHOWN)
                            ));
                        }
                    }
                }
            }
        }
        let props = obj.get("properties").and_then(Value::as_object);
        let pattern_props = obj.get("patternProperties").and_then(Value::as_object);
        let additional = obj.get("additionalProperties");
        let names = obj.get("propertyNames");
        if props.is_none() && pattern_props.is_none() && additional.is_none() && names.is_none() {
            return Ok(());
        }
        for (k, v) in o {
            run.charge(1 + kib(k.len()))?;
            let here = child(at, k);
            if let Some(names) = names {
                let name = Value::String(k.clone());
                run.transient += 1;
                let r = self.validate_at(run, names, &name, &here, depth + 1);
                run.transient -= 1;
                r?;
            }
            let mut matched = false;
            if let Some(s) = props.and_then(|p| p.get(k)) {
                matched = true;
                self.validate_at(run, s, v, &here, depth + 1)?;
            }
            for (p, s) in pattern_props.into_iter().flatten() {
                run.charge(1 + kib(k.len()))?;
                if self.patterns.get(p).is_some_and(|re| re.is_match(k)) {
                    matched = true;
                    self.validate_at(run, s, v, &here, depth + 1)?;
                }
            }
            if !matched {
                if let Some(s) = additional {
                    self.validate_at(run, s, v, &here, depth + 1)
                        .map_err(|e| match e {
                            Halt::Invalid(e) => Halt::Invalid(format!(
                                "additional property {:?} not allowed ({})",
                                clip(k, MAX_KEY_SHOWN),
                                clip_bytes(&e, MAX_MESSAGE)
                            )),
                            Halt::Budget => Halt::Budget,
                        })?;
                }
            }
        }
        Ok(())
    }
}

/// `s` cut to `max` characters, with "…" when cut.
fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
    }
}

/// `s` cut to at most `max` bytes (on a character boundary), with "…" when cut.
fn clip_bytes(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// The location of `segment` (a key or an index) under `at`, with the key cut to
/// [`MAX_KEY_SHOWN`] characters and the whole cut with "/…" past [`MAX_LOCATION`]
/// bytes, so building locations stays cheap whatever the keys.
fn child(at: &str, segment: &str) -> String {
    if at.ends_with("/…") {
        return at.to_string();
    }
    if at.len() >= MAX_LOCATION {
        return format!("{at}/…");
    }
    format!("{at}/{}", clip(segment, MAX_KEY_SHOWN))
}

/// `v` as compact JSON, cut to [`MAX_VALUE_SHOWN`] bytes (serializing stops there).
fn shown(v: &Value) -> String {
    struct Capped(Vec<u8>);
    impl io::Write for Capped {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = MAX_VALUE_SHOWN.saturating_sub(self.0.len());
            if room == 0 {
                return Err(io::Error::other("value shown in full"));
            }
            let n = buf.len().min(room);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = Capped(Vec::new());
    let whole = serde_json::to_writer(&mut w, v).is_ok();
    let mut s = String::from_utf8_lossy(&w.0).into_owned();
    if !whole {
        s.push('…');
    }
    s
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
    eq_steps(a, b, &mut 0)
}

/// [`json_eq`], adding to `steps` one per pair of values compared and one per KiB
/// of equal-length strings compared.
fn eq_steps(a: &Value, b: &Value, steps: &mut u64) -> bool {
    *steps = steps.saturating_add(1);
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(i), Some(j), _, _) => i == j,
                (_, _, Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return false;
            }
            for (p, q) in x.iter().zip(y) {
                if !eq_steps(p, q, steps) {
                    return false;
                }
            }
            true
        }
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return false;
            }
            for (k, v) in x {
                let Some(w) = y.get(k) else {
                    return false;
                };
                if !eq_steps(v, w, steps) {
                    return false;
                }
            }
            true
        }
        (Value::String(x), Value::String(y)) => {
            if x.len() == y.len() {
                *steps = steps.saturating_add(kib(x.len()));
            }
            x == y
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

/// A JSON pointer token for `name` (`~` and `/` escaped).
fn token(name: &str) -> Cow<'_, str> {
    if name.contains(['~', '/']) {
        Cow::Owned(name.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The state of checking one schema.
#[derive(Debug)]
struct Checker<'s> {
    root: &'s Value,
    patterns: HashMap<String, Regex>,
    /// Subschemas checked so far.
    nodes: usize,
    /// Addresses of the subschemas checked so far.
    seen: HashSet<usize>,
    /// Every `$ref` target found, with its JSON pointer (no `#`).
    refs: Vec<(&'s Value, String)>,
}

impl<'s> Checker<'s> {
    fn check(&mut self, schema: &'s Value, path: &str, depth: usize) -> Result<(), ConfigError> {
        if !self.seen.insert(addr(schema)) {
            return Ok(());
        }
        self.nodes += 1;
        if self.nodes > MAX_SCHEMA_NODES {
            return Err(bad(
                path,
                format!("the schema has more than {MAX_SCHEMA_NODES} subschemas, the limit"),
            ));
        }
        if depth > MAX_SCHEMA_DEPTH {
            return Err(bad(
                path,
                format!("subschemas are nested more than {MAX_SCHEMA_DEPTH} deep, the limit"),
            ));
        }
        let obj = match schema {
            Value::Bool(_) => return Ok(()),
            Value::Object(o) => o,
            _ => return Err(bad(path, "a schema must be an object or a boolean")),
        };
        for (k, v) in obj {
            let here = format!("{path}/{}", token(k));
            if UNSUPPORTED.contains(&k.as_str()) {
                return Err(bad(&here, format!("keyword {k:?} is not supported")));
            }
            match k.as_str() {
                "$ref" => {
                    let r = v.as_str().ok_or_else(|| bad(&here, "must be a string"))?;
                    if r.len() > MAX_REF_LEN {
                        return Err(bad(
                            &here,
                            format!(
                                "is {} bytes long, over the limit of {MAX_REF_LEN} bytes",
                                r.len()
                            ),
                        ));
                    }
                    let Some(target) = resolve(self.root, r) else {
                        return Err(bad(
                            &here,
                            format!("cannot resolve {r:?} (only same-document refs are supported)"),
                        ));
                    };
                    let pointer = r
                        .strip_prefix('#')
                        .and_then(percent_decode)
                        .unwrap_or_default();
                    self.refs.push((target, pointer));
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
                    for (i, n) in names.iter().enumerate() {
                        if !n.as_str().is_some_and(|s| TYPES.contains(&s)) {
                            return Err(bad(&here, format!("unknown type {}", shown(n))));
                        }
                        if names[..i].contains(n) {
                            return Err(bad(&here, format!("type {n} is listed twice")));
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
                        let there = format!("{here}/{}", token(name));
                        if k == "patternProperties" {
                            self.compile(name, &there)?;
                        }
                        self.check(s, &there, depth + 1)?;
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
                    self.check(v, &here, depth + 1)?;
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                    let a = v
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .ok_or_else(|| bad(&here, "must be a non-empty array"))?;
                    for (i, s) in a.iter().enumerate() {
                        self.check(s, &format!("{here}/{i}"), depth + 1)?;
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
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum"
                    if !v.is_number() =>
                {
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
                    self.compile(p, &here)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Compile `pattern` once, within [`MAX_PATTERNS`] and the regex limits.
    fn compile(&mut self, pattern: &str, path: &str) -> Result<(), ConfigError> {
        if self.patterns.contains_key(pattern) {
            return Ok(());
        }
        if self.patterns.len() >= MAX_PATTERNS {
            return Err(bad(
                path,
                format!("the schema has more than {MAX_PATTERNS} distinct patterns, the limit"),
            ));
        }
        let re = compile_pattern(pattern).map_err(|e| {
            bad(
                path,
                match e {
                    PatternError::Invalid(e) => format!("invalid pattern: {e}"),
                    other => format!("pattern {}", other.detail()),
                },
            )
        })?;
        self.patterns.insert(pattern.to_string(), re);
        Ok(())
    }
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

    fn build(schema: Value) -> JsonSchema {
        match JsonSchema::new(schema) {
            Ok(s) => s,
            Err(e) => panic!("schema rejected: {e}"),
        }
    }

    fn rejected(schema: Value) -> (String, String) {
        match JsonSchema::new(schema) {
            Ok(_) => panic!("schema accepted"),
            Err(ConfigError::Schema { path, message }) => (path, message),
            Err(e) => panic!("not a schema error: {e}"),
        }
    }

    /// `a0 .. a{levels-1}` each `anyOf` two `$ref`s to the next; the last one a string.
    fn ref_bomb(levels: usize) -> Value {
        let mut defs = Map::new();
        for i in 0..levels {
            let next = Value::String(format!("#/$defs/a{}", i + 1));
            defs.insert(
                format!("a{i}"),
                json!({"anyOf": [{"$ref": next.clone()}, {"$ref": next}]}),
            );
        }
        defs.insert(format!("a{levels}"), json!({"type": "string"}));
        json!({"$defs": Value::Object(defs), "$ref": "#/$defs/a0"})
    }

    #[test]
    fn branching_refs_are_memoized() {
        let s = build(ref_bomb(30));
        // 2^30 paths without the memo; a few steps per level with it.
        let (verdict, visits) = s.run(&json!(1), DEFAULT_VISIT_BUDGET);
        let why = verdict.err().unwrap_or_default();
        assert!(why.contains("matches none of anyOf"), "{why}");
        assert!(visits < 500, "{visits} steps");
        assert!(s.validate_with_budget(&json!("x"), 10_000).is_ok());
        let why = s
            .validate_with_budget(&json!(1), 10_000)
            .err()
            .unwrap_or_default();
        assert!(why.contains("matches none of anyOf"), "{why}");
    }

    #[test]
    fn the_budget_stops_validation_and_no_combinator_hides_it() {
        let eight = json!([true, true, true, true, true, true, true, true]);
        let s = build(json!({"not": {"allOf": eight.clone()}}));
        assert!(s.validate(&json!(1)).is_err());
        let why = s
            .validate_with_budget(&json!(1), 5)
            .err()
            .unwrap_or_default();
        assert_eq!(why, "schema validation exceeded its budget of 5 steps");
        // Running out inside the first branch must not fall through to the second.
        let s = build(json!({"anyOf": [{"allOf": eight}, true]}));
        assert!(s.validate(&json!(1)).is_ok());
        let why = s
            .validate_with_budget(&json!(1), 5)
            .err()
            .unwrap_or_default();
        assert!(why.contains("exceeded its budget"), "{why}");
    }

    #[test]
    fn unique_items_comparisons_count_against_the_budget() {
        let s = build(json!({"uniqueItems": true}));
        assert!(s.validate(&json!([1, 2, 3])).is_ok());
        assert!(s.validate(&json!([1, 2, 1.0])).is_err());
        // 600 distinct items: 179,700 comparisons.
        let long = Value::Array((0..600).map(|i| json!(i)).collect());
        let why = s.validate(&long).err().unwrap_or_default();
        assert!(why.contains("exceeded its budget"), "{why}");
        assert!(s.validate_with_budget(&long, 200_000).is_ok());
    }

    #[test]
    fn pattern_bombs_fail_at_build() {
        let mut bombs = Map::new();
        for i in 0..100 {
            bombs.insert(format!("\\w{{200}}N{i}"), json!(true));
        }
        let (path, message) = rejected(json!({"patternProperties": Value::Object(bombs)}));
        assert!(path.starts_with("#/patternProperties/"), "{path}");
        assert!(
            message.contains(&format!("limit of {REGEX_SIZE_LIMIT} bytes")),
            "{message}"
        );
        let (path, message) = rejected(json!({"properties": {"a": {"pattern": "\\w{200}N"}}}));
        assert_eq!(path, "#/properties/a/pattern");
        assert!(message.contains("limit"), "{message}");
    }

    #[test]
    fn pattern_count_and_length_are_capped() {
        let mut props = Map::new();
        for i in 0..MAX_PATTERNS {
            props.insert(format!("p{i}"), json!({"pattern": format!("^a{i}$")}));
        }
        // The same pattern again is not another one.
        props.insert("again".into(), json!({"pattern": "^a0$"}));
        assert!(JsonSchema::new(json!({"properties": Value::Object(props.clone())})).is_ok());
        props.insert("extra".into(), json!({"pattern": "^b$"}));
        let (_, message) = rejected(json!({"properties": Value::Object(props)}));
        assert!(
            message.contains(&format!("more than {MAX_PATTERNS} distinct patterns")),
            "{message}"
        );
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        let (path, message) = rejected(json!({"properties": {"x": {"pattern": long}}}));
        assert_eq!(path, "#/properties/x/pattern");
        assert!(
            message.contains(&format!("over the limit of {MAX_PATTERN_LEN} bytes")),
            "{message}"
        );
        assert!(JsonSchema::new(json!({"pattern": "a".repeat(MAX_PATTERN_LEN)})).is_ok());
    }

    #[test]
    fn schema_size_and_depth_are_capped() {
        let wide = Value::Array(vec![Value::Bool(true); MAX_SCHEMA_NODES]);
        let (_, message) = rejected(json!({"allOf": wide}));
        assert!(
            message.contains(&format!("more than {MAX_SCHEMA_NODES} subschemas")),
            "{message}"
        );
        let mut deep = json!(true);
        for _ in 0..MAX_SCHEMA_DEPTH {
            deep = json!({"not": deep});
        }
        assert!(JsonSchema::new(deep.clone()).is_ok());
        let (_, message) = rejected(json!({"not": deep}));
        assert!(
            message.contains(&format!("nested more than {MAX_SCHEMA_DEPTH} deep")),
            "{message}"
        );
        let (_, message) = rejected(json!({"$ref": format!("#/{}", "a".repeat(MAX_REF_LEN))}));
        assert!(message.contains("over the limit"), "{message}");
        let (_, message) = rejected(json!({"type": ["string", "string"]}));
        assert!(message.contains("listed twice"), "{message}");
    }

    #[test]
    fn property_names_through_refs_are_not_confused() {
        // Property names are built on the fly, at reused addresses: never memoized.
        let s = build(json!({
            "propertyNames": {"$ref": "#/$defs/short"},
            "$defs": {"short": {"maxLength": 3}}
        }));
        assert!(s.validate(&json!({"ab": 1, "cd": 2})).is_ok());
        assert!(s.validate(&json!({"ab": 1, "toolong": 2})).is_err());
        assert!(s.validate(&json!({"toolong": 1, "zz": 2})).is_err());
    }

    #[test]
    fn ref_targets_are_checked_as_schemas() {
        let (path, _) = rejected(json!({"$ref": "#/x", "x": {"type": "strng"}}));
        assert_eq!(path, "#/x/type");
        let s = build(json!({"$ref": "#/x", "x": {"pattern": "^a"}}));
        assert!(s.validate(&json!("abc")).is_ok());
        assert!(s.validate(&json!("b")).is_err());
    }

    #[test]
    fn messages_stay_short_whatever_the_instance() {
        let s = build(json!({"additionalProperties": {"additionalProperties": false}}));
        let key = "k".repeat(100_000);
        let mut inner = Map::new();
        inner.insert(key.clone(), json!(1));
        let mut outer = Map::new();
        outer.insert(key, Value::Object(inner));
        let why = s.validate(&Value::Object(outer)).err().unwrap_or_default();
        assert!(why.contains("not allowed"), "{why}");
        assert!(why.len() < 2_000, "{} bytes", why.len());
        let s = build(json!({"const": "x".repeat(10_000)}));
        let why = s.validate(&json!("y")).err().unwrap_or_default();
        assert!(why.contains("expected const"), "{why}");
        assert!(why.len() < 1_000, "{} bytes", why.len());
    }
}
