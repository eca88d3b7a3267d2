//! Actor-transport payloads: the versioned `Wire<T>` envelope (crates/limiter/src/wire.rs)
//! that ractor_cluster hands to the Router as raw bytes from a peer.
//!
//! Every input is decoded, through `BytesConvertable::from_bytes` as the node does, as each
//! payload and reply type of the frozen `RouterMsg` protocol. When a decode succeeds:
//! - the value re-encodes (`into_bytes` never falls back to its empty "failed" payload),
//!   the encoding decodes again and re-encodes to the same bytes;
//! - every bucket state it carries (handoff, replicas, pull answers: installed as they come,
//!   not validated) goes through what the owner does next with it: `is_at_rest`, a peek
//!   and a check under a valid limit of each algorithm (which must not fail), and a check
//!   under the state's own, possibly invalid, limit.
//!
//! The input is also framed as the one argument of a `Replicate` cast and decoded with the
//! derive-generated `RouterMsg::deserialize` (ractor_cluster's length-prefixed framing), and
//! given to it unframed. Call variants are left out: decoding one spawns a reply-port task,
//! which needs a running tokio runtime; their arguments go through the same `from_bytes`.
#![no_main]

use colony_limiter::types::PullAnswer;
use colony_limiter::wire::{
    BucketBatch, CheckBatch, CheckReply, HandoffAck, LeaseReply, LeaseRequest, PullReply,
    PullRequest, RouterMsg, Wire,
};
use colony_ratelimit::{Algorithm, BucketState, Limit};
use libfuzzer_sys::fuzz_target;
use ractor::message::SerializedMessage;
use ractor::{BytesConvertable, Message};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::type_name;

/// Decodes `data` as a `Wire<T>`; on success checks the encode/decode round trip and
/// returns the value.
fn roundtrip<T: Serialize + DeserializeOwned>(data: &[u8]) -> Option<T> {
    let first = <Wire<T> as BytesConvertable>::from_bytes(data.to_vec())
        .0
        .ok()?;
    let bytes = <Wire<T> as BytesConvertable>::into_bytes(Wire(Ok(first)));
    assert!(
        !bytes.is_empty(),
        "a decoded {} does not encode",
        type_name::<T>()
    );
    let again = match <Wire<T> as BytesConvertable>::from_bytes(bytes.clone()).0 {
        Ok(v) => v,
        Err(e) => panic!("a re-encoded {} does not decode: {e}", type_name::<T>()),
    };
    let bytes2 = <Wire<T> as BytesConvertable>::into_bytes(Wire(Ok(again)));
    assert_eq!(
        bytes,
        bytes2,
        "{}: encode(decode(encode(x))) != encode(x)",
        type_name::<T>()
    );
    <Wire<T> as BytesConvertable>::from_bytes(bytes2).0.ok()
}

const ALGORITHMS: [Algorithm; 3] = [
    Algorithm::TokenBucket,
    Algorithm::LeakyBucket,
    Algorithm::SlidingWindow,
];

/// What a node does with a bucket state a peer sent it.
fn exercise(state: &BucketState) {
    let now = state.updated_ms();
    for t in [
        0,
        now,
        now.saturating_add(1),
        now.saturating_add(3_600_000),
        u64::MAX,
    ] {
        let _ = state.is_at_rest(t);
    }
    let valid = Limit::new(10, 1000);
    for algorithm in ALGORITHMS {
        let mut s = state.clone();
        assert!(
            s.peek(algorithm, &valid, now).is_ok(),
            "peek under a valid limit failed"
        );
        let checked = s.check(algorithm, &valid, 1, now.saturating_add(1));
        assert!(
            checked.is_ok(),
            "check under a valid limit failed: {checked:?}"
        );
        let _ = s.check(algorithm, &valid, u64::MAX, now.saturating_add(2));
        let _ = s.is_at_rest(u64::MAX);
    }
    let mut s = state.clone();
    let (algorithm, own) = (s.algorithm(), *s.limit());
    let _ = s.check(algorithm, &own, 1, now);
}

fn exercise_answers(answers: &[PullAnswer]) {
    for a in answers {
        if let PullAnswer::State(s) = a {
            exercise(s);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Requests a node receives.
    let _ = roundtrip::<CheckBatch>(data);
    let _ = roundtrip::<LeaseRequest>(data);
    let _ = roundtrip::<PullRequest>(data);
    if let Some(batch) = roundtrip::<BucketBatch>(data) {
        for b in &batch.buckets {
            exercise(&b.state);
        }
    }
    // Replies a node receives to its own calls.
    let _ = roundtrip::<CheckReply>(data);
    let _ = roundtrip::<LeaseReply>(data);
    let _ = roundtrip::<HandoffAck>(data);
    if let Some(reply) = roundtrip::<PullReply>(data) {
        exercise_answers(&reply.answers);
    }

    // ractor_cluster's framing of a cast: one u64 big-endian length, then the argument.
    let mut framed = (data.len() as u64).to_be_bytes().to_vec();
    framed.extend_from_slice(data);
    let msg = <RouterMsg as Message>::deserialize(SerializedMessage::Cast {
        variant: "Replicate".to_string(),
        args: framed,
        metadata: None,
    });
    // `from_bytes` cannot fail (a bad payload is carried as `Err` inside the Wire), so a
    // well-framed argument always gives the message.
    assert!(
        matches!(msg, Ok(RouterMsg::Replicate(_))),
        "a framed Replicate did not decode"
    );
    let _ = <RouterMsg as Message>::deserialize(SerializedMessage::Cast {
        variant: "Replicate".to_string(),
        args: data.to_vec(),
        metadata: None,
    });
});
