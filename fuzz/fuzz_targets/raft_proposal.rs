//! Raft proposals (crates/core/src/command.rs): `Proposal::decode`, which reads a
//! command of this or any older format and refuses newer ones.
//!
//! Proposals also arrive inside AppendEntries and forwarded writes (see `internal_body`);
//! this target fuzzes the command decoder alone, without the envelope in the way.
//!
//! When a decode succeeds: the format is not newer than `COMMAND_FORMAT`, `encode`
//! succeeds, the encoding decodes to an equal proposal (checked with `==` unless the
//! proposal holds a NaN, which is not equal to itself) and re-encodes to the same bytes.
#![no_main]

use colony_core::command::{Proposal, COMMAND_FORMAT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Proposal::decode(data) else {
        return;
    };
    assert!(p.format <= COMMAND_FORMAT, "accepted a newer format");
    let bytes = match p.encode() {
        Ok(b) => b,
        Err(e) => panic!("a decoded proposal does not encode: {e}"),
    };
    let q = match Proposal::decode(&bytes) {
        Ok(q) => q,
        Err(e) => panic!("an encoded proposal does not decode: {e}"),
    };
    // A NaN (a tier's budget or a price is an f64) makes `p != p`: compare bytes only then.
    #[allow(clippy::eq_op)]
    let reflexive = p == p;
    if reflexive {
        assert_eq!(q, p, "decode(encode(p)) != p");
    }
    let again = match q.encode() {
        Ok(b) => b,
        Err(e) => panic!("a re-decoded proposal does not encode: {e}"),
    };
    assert_eq!(again, bytes, "encode(decode(encode(p))) != encode(p)");
});
