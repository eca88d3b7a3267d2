//! The state as data: it survives serialization exactly, decisions are deterministic,
//! and no sequence of requests (any algorithm, any limit, time going backwards) can
//! break the invariants.

use colony_ratelimit::{check, Algorithm, BucketState, Decision, Limit, Status};
use proptest::prelude::*;

fn any_algo() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::TokenBucket),
        Just(Algorithm::LeakyBucket),
        Just(Algorithm::SlidingWindow)
    ]
}

/// A limit valid for `algo`.
fn limit_for(algo: Algorithm) -> impl Strategy<Value = Limit> {
    (1u64..=20, 1u64..=3000, proptest::option::of(1u64..=40)).prop_map(move |(limit, d, burst)| {
        let burst = if algo == Algorithm::SlidingWindow {
            None
        } else {
            burst
        };
        Limit {
            limit,
            duration_ms: d,
            burst,
        }
    })
}

/// One request: algorithm, limit, hits and a time step that may go backwards.
fn request() -> impl Strategy<Value = (Algorithm, Limit, u64, i64)> {
    any_algo().prop_flat_map(|a| (Just(a), limit_for(a), 0u64..=45, -500i64..3000))
}

fn roundtrip(state: &BucketState) -> BucketState {
    let bytes = rmp_serde::to_vec_named(state).unwrap();
    rmp_serde::from_slice(&bytes).unwrap()
}

/// Runs `steps` of (ms to wait, hits) on one bucket; `noise` adds, before each step, a
/// peek and a request larger than any capacity at a time between the steps.
fn run(algo: Algorithm, limit: &Limit, steps: &[(u64, u64)], noise: bool) -> Vec<Decision> {
    let mut state = None;
    let mut t = 0;
    let mut out = Vec::new();
    for &(wait, hits) in steps {
        if noise {
            check(&mut state, algo, limit, 0, t + wait / 2).unwrap();
            check(&mut state, algo, limit, 1000, t + wait / 2).unwrap();
        }
        t += wait;
        out.push(check(&mut state, algo, limit, hits, t).unwrap());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary requests, switching algorithm and limit at random, with a clock that
    /// may step back: never a panic, remaining within capacity, a peek changes nothing,
    /// and after every request the state survives rmp-serde (named) exactly and
    /// continues identically.
    #[test]
    fn any_request_sequence_keeps_the_invariants(reqs in proptest::collection::vec(request(), 1..40)) {
        let mut state: Option<BucketState> = None;
        let mut copy: Option<BucketState> = None;
        let mut t: u64 = 10_000;
        for (algo, limit, hits, step) in reqs {
            t = t.saturating_add_signed(step);
            let before = state.clone();
            let p = check(&mut state, algo, &limit, 0, t).unwrap();
            prop_assert_eq!(&state, &before);
            let d = check(&mut state, algo, &limit, hits, t).unwrap();
            let d2 = check(&mut copy, algo, &limit, hits, t).unwrap();
            prop_assert_eq!(d, d2, "a decoded copy decided differently");
            prop_assert!(d.remaining <= limit.capacity());
            prop_assert!(p.remaining <= limit.capacity());
            if d.status == Status::UnderLimit && hits > 0 {
                prop_assert!(p.remaining >= hits, "admitted more than a peek said was left");
                prop_assert_eq!(d.remaining, p.remaining - hits);
            }
            let Some(s) = state.as_ref() else {
                prop_assert_eq!(hits, 0, "a check with hits must create the bucket");
                continue;
            };
            if hits > 0 {
                prop_assert_eq!(s.algorithm(), algo);
                prop_assert_eq!(s.limit(), &limit);
            }
            let decoded = roundtrip(s);
            prop_assert_eq!(&decoded, s);
            copy = Some(decoded);
        }
    }

    /// The same inputs give the same decisions, and extra peeks and rejected requests
    /// in between change none of them (bringing a state up to date is exact).
    #[test]
    fn decisions_are_deterministic(
        algo in any_algo(),
        (limit, steps) in any_algo().prop_flat_map(limit_for).prop_flat_map(|l| {
            (Just(l), proptest::collection::vec((0u64..3000, 0u64..=25), 1..50))
        }),
    ) {
        let limit = if algo == Algorithm::SlidingWindow { Limit { burst: None, ..limit } } else { limit };
        let plain = run(algo, &limit, &steps, false);
        prop_assert_eq!(&plain, &run(algo, &limit, &steps, false));
        prop_assert_eq!(&plain, &run(algo, &limit, &steps, true));
    }
}

#[test]
fn the_wire_shape_is_named_and_snake_case() {
    let limit = Limit::new(10, 1000).with_burst(15);
    let mut state = None;
    check(&mut state, Algorithm::TokenBucket, &limit, 3, 500).unwrap();
    let bytes = rmp_serde::to_vec_named(state.as_ref().unwrap()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for field in [
        "token_bucket",
        "limit",
        "duration_ms",
        "burst",
        "tokens",
        "tokens_frac",
        "updated_ms",
    ] {
        assert!(text.contains(field), "missing {field}");
    }
    let mut window = None;
    check(
        &mut window,
        Algorithm::SlidingWindow,
        &Limit::new(5, 100),
        1,
        0,
    )
    .unwrap();
    let bytes = rmp_serde::to_vec_named(window.as_ref().unwrap()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for field in ["sliding_window", "slots", "index", "count"] {
        assert!(text.contains(field), "missing {field}");
    }
    // Positional rmp-serde works too (no field is ever skipped when written).
    for s in [state.as_ref().unwrap(), window.as_ref().unwrap()] {
        let bytes = rmp_serde::to_vec(s).unwrap();
        let back: BucketState = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(&back, s);
    }
    // Decisions and algorithms serialize as the check API spells them.
    let d = check(&mut state, Algorithm::TokenBucket, &limit, 100, 500).unwrap();
    let bytes = rmp_serde::to_vec_named(&d).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("over_limit"));
    let back: Decision = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, d);
    for algo in Algorithm::ALL {
        let bytes = rmp_serde::to_vec(&algo).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains(algo.as_str()));
    }
}
