//! Evaluation specs (`POST /v1/evaluations`): the body parsed as the handler's `ApiJson`
//! extractor does (`colony_api::extract::parse_json`), then
//! `colony_eval::validate(&body, &SpecLimits::default())`.
//!
//! For a spec that validates, what the node does next must work too:
//! - `Plan::new` (the handler counts the work items) and rendering the prompt of the first
//!   cases (validation checked templates against every case's vars, so it must succeed);
//! - the body as stored: it goes through Raft as MessagePack (`Command::SubmitEvaluation`)
//!   and must come back equal, then validate again with `SpecLimits::unbounded()` (what the
//!   owner and the read routes do) to the same spec;
//! - the parsed spec re-serializes to JSON that validates again to the same spec.
#![no_main]

use colony_api::extract::parse_json;
use colony_eval::{validate, Plan, SpecLimits};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Cases whose prompt is rendered per input (rendering all of them would be slow).
const RENDERED_CASES: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = parse_json::<Value>(data) else {
        return;
    };
    let Ok(spec) = validate(&body, &SpecLimits::default()) else {
        return;
    };

    let _ = Plan::new(&spec).len();
    for i in 0..spec.spec().cases.len().min(RENDERED_CASES) {
        if let Err(e) = spec.render(i) {
            panic!("case {i} of a validated spec does not render: {e:?}");
        }
    }

    let packed = match rmp_serde::to_vec_named(&body) {
        Ok(p) => p,
        Err(e) => panic!("a valid spec does not encode as MessagePack: {e}"),
    };
    let stored: Value = match rmp_serde::from_slice(&packed) {
        Ok(v) => v,
        Err(e) => panic!("a stored spec does not decode: {e}"),
    };
    assert_eq!(stored, body, "the spec changed through MessagePack");
    match validate(&stored, &SpecLimits::unbounded()) {
        Ok(reread) => assert_eq!(
            reread.spec(),
            spec.spec(),
            "the stored spec reads differently"
        ),
        Err(e) => panic!("a stored spec no longer validates: {e:?}"),
    }

    let text = match serde_json::to_vec(spec.spec()) {
        Ok(t) => t,
        Err(e) => panic!("a validated spec does not serialize: {e}"),
    };
    let back: Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => panic!("a serialized spec is not JSON: {e}"),
    };
    match validate(&back, &SpecLimits::unbounded()) {
        Ok(again) => assert_eq!(again.spec(), spec.spec(), "the re-serialized spec differs"),
        Err(e) => panic!("a re-serialized spec does not validate: {e:?}\n{back}"),
    }
});
