//! Gossip datagrams (cluster/src/membership/): the HMAC framing of `auth.rs`, then foca's
//! postcard decoder (header, member updates) and Colony's metadata broadcasts (`meta.rs`),
//! through `colony_cluster::membership::decode_for_fuzz`, which builds an agent exactly as
//! `Membership::start` does (node 1 at 127.0.0.1:7946, boot 1) minus the socket.
//!
//! The fuzzer cannot forge tags, so the input is used twice:
//! 1. as one datagram off the wire (authentication rejects it unless it carries a valid tag
//!    under `SECRET`: some seeds do, sealed by fuzz/make_seeds.py);
//! 2. split on `SPLIT` into up to `MAX_DATAGRAMS` foca payloads, each sealed with `SECRET`
//!    the way a peer seals what it sends, fed in order to one agent: this is where the
//!    decoders behind the tag are fuzzed, with state carried from packet to packet.
//!
//! Checks: every sealed payload authenticates; a sealed datagram with one bit of its tag
//! flipped, or opened with another secret, does not.
#![no_main]

use colony_cluster::membership::{decode_for_fuzz, seal_for_fuzz};
use libfuzzer_sys::fuzz_target;

/// The fixed test key (also in fuzz/make_seeds.py).
const SECRET: &[u8] = b"colony-fuzz-gossip-secret";

/// Separates the foca payloads of one input (also in fuzz/make_seeds.py and the dict).
const SPLIT: &[u8] = b"|next|";

/// Most datagrams one input turns into.
const MAX_DATAGRAMS: usize = 16;

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < MAX_DATAGRAMS {
        match rest.windows(SPLIT.len()).position(|w| w == SPLIT) {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at + SPLIT.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

fn seal(payload: &[u8]) -> Vec<u8> {
    match seal_for_fuzz(SECRET, payload) {
        Some(d) => d,
        None => panic!("HMAC refused the test key"),
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. Straight off the wire.
    let _ = decode_for_fuzz(SECRET, &[data]);

    // 2. Authentic datagrams.
    let sealed: Vec<Vec<u8>> = split(data).into_iter().map(seal).collect();
    let datagrams: Vec<&[u8]> = sealed.iter().map(Vec::as_slice).collect();
    assert_eq!(
        decode_for_fuzz(SECRET, &datagrams),
        datagrams.len(),
        "a sealed datagram did not authenticate"
    );

    // 3. Tampered or wrongly keyed: never authentic.
    let first = &sealed[0];
    let mut tampered = first.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(
        decode_for_fuzz(SECRET, &[tampered.as_slice()]),
        0,
        "a bad tag passed"
    );
    assert_eq!(
        decode_for_fuzz(b"another secret", &[first.as_slice()]),
        0,
        "a packet sealed with another secret passed"
    );
});
