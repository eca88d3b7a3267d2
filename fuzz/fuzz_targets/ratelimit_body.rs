//! The body of `POST /v1/ratelimit/check` (crates/api/src/routes/ratelimit.rs):
//! `CheckBody`, decoded with `colony_api::extract::parse_json`, what the handler's
//! `ApiJson<CheckBody>` extractor calls.
//!
//! `parse_json` tries a plain `serde_json::from_slice` first and, on failure, parses again
//! with `serde_path_to_error` to name the failing field: the check is that both passes
//! agree, i.e. `parse_json` accepts exactly what `serde_json::from_slice` accepts.
//! (`CheckBody`'s fields are private, so nothing past the decode is reachable from here.)
#![no_main]

use colony_api::extract::parse_json;
use colony_api::routes::CheckBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let handler = parse_json::<CheckBody>(data);
    let plain = serde_json::from_slice::<CheckBody>(data);
    assert_eq!(
        handler.is_ok(),
        plain.is_ok(),
        "parse_json and serde_json disagree (serde_json: {:?})",
        plain.as_ref().err()
    );
});
