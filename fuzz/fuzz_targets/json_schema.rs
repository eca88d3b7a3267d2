//! The `json_schema` scorer (crates/scorers/src/json_schema.rs): a tenant's schema built
//! with `JsonSchema::new` (as the spec validator does), then `validate` of an output.
//!
//! Input: two JSON documents one after the other (whitespace between them is enough), the
//! schema then the instance; a missing or unparsable instance is `null`.
//!
//! Checks, for a schema that builds:
//! - `validate` gives the same verdict twice (the `$ref` memo is per call);
//! - budgets are monotone: a verdict reached within `SMALL_BUDGET` steps is the verdict
//!   under the default budget too (validation halts when over budget, never guesses);
//! - `json_eq` is reflexive, and `{"const": instance}` accepts the instance (unless that
//!   runs out of budget).
#![no_main]

use colony_scorers::json_schema::{json_eq, JsonSchema, DEFAULT_VISIT_BUDGET};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const SMALL_BUDGET: u64 = 1_000;

/// Whether `verdict` is the scorer's "out of budget" answer for `budget`.
fn over_budget(verdict: &Result<(), String>, budget: u64) -> bool {
    let halted = format!("schema validation exceeded its budget of {budget} steps");
    matches!(verdict, Err(m) if *m == halted)
}

fuzz_target!(|data: &[u8]| {
    let mut docs = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    let Some(Ok(schema)) = docs.next() else {
        return;
    };
    let instance = match docs.next() {
        Some(Ok(v)) => v,
        _ => Value::Null,
    };
    let Ok(compiled) = JsonSchema::new(schema) else {
        return;
    };

    let verdict = compiled.validate(&instance);
    assert_eq!(
        compiled.validate(&instance).is_ok(),
        verdict.is_ok(),
        "two calls disagree"
    );

    let small = compiled.validate_with_budget(&instance, SMALL_BUDGET);
    if !over_budget(&small, SMALL_BUDGET) {
        assert_eq!(
            small.is_ok(),
            verdict.is_ok(),
            "within {SMALL_BUDGET} steps: {small:?}; within {DEFAULT_VISIT_BUDGET}: {verdict:?}"
        );
    }

    assert!(json_eq(&instance, &instance), "json_eq is not reflexive");
    if let Ok(same) = JsonSchema::new(json!({ "const": instance.clone() })) {
        let v = same.validate(&instance);
        if !over_budget(&v, DEFAULT_VISIT_BUDGET) {
            assert!(v.is_ok(), "the instance is not its own const: {v:?}");
        }
    }
});
