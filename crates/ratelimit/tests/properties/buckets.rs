//! Token and leaky bucket against the continuous model.

use crate::model::{admitted_in, ContinuousModel};
use colony_ratelimit::{check, Algorithm, BucketState, Decision, Limit, Status};
use proptest::prelude::*;

/// A token or leaky bucket limit: 1–20 per 1–3000 ms, burst absent or 1–40 (so
/// below, at and above the limit).
pub fn bucket_limit() -> impl Strategy<Value = Limit> {
    (1u64..=20, 1u64..=3000, proptest::option::of(1u64..=40)).prop_map(|(limit, d, burst)| Limit {
        limit,
        duration_ms: d,
        burst,
    })
}

/// Steps of (ms to wait, hits): waits from none to two durations, hits from 0 (peek)
/// to just over the capacity.
pub fn steps(limit: Limit) -> impl Strategy<Value = Vec<(u64, u64)>> {
    let d = limit.duration_ms;
    let cap = limit.burst.unwrap_or(limit.limit);
    let wait = prop_oneof![Just(0u64), 0..=d / 10 + 1, 0..=2 * d];
    proptest::collection::vec((wait, 0..=cap + 2), 1..60)
}

fn bucket_algo() -> impl Strategy<Value = Algorithm> {
    prop_oneof![Just(Algorithm::TokenBucket), Just(Algorithm::LeakyBucket)]
}

/// Checks `reset_after_ms` of a decision against the model: exact to the millisecond.
fn check_reset(
    model: &ContinuousModel,
    t: u64,
    hits: u64,
    d: &Decision,
) -> Result<(), TestCaseError> {
    let r = d.reset_after_ms;
    let at_rest = |at: u64| model.used_units(at) == 0;
    match d.status {
        Status::OverLimit if hits > 0 && hits <= model.cap => {
            prop_assert!(r > 0 && model.fits(t + r, hits) && !model.fits(t + r - 1, hits));
        }
        Status::OverLimit if hits == 0 => {
            prop_assert!(r > 0 && model.fits(t + r, 1) && !model.fits(t + r - 1, 1));
        }
        _ => prop_assert!(at_rest(t + r) && (r == 0 || !at_rest(t + r - 1))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Decisions, remaining and reset times match the model exactly; a peek changes
    /// nothing; and in every closed interval [a, b] the hits admitted are at most
    /// `cap + limit * (b - a) / dur` (checked in integers: admitted * dur <= cap * dur
    /// + limit * (b - a)), so at most `cap + limit` = burst + limit in any window of
    /// one duration.
    #[test]
    fn matches_the_model_and_never_over_admits(
        algo in bucket_algo(),
        (limit, steps) in bucket_limit().prop_flat_map(|l| (Just(l), steps(l))),
        start in 0u64..1_000_000,
    ) {
        let mut model = ContinuousModel::new(&limit);
        let mut state: Option<BucketState> = None;
        let mut t = start;
        for (wait, hits) in steps {
            t += wait;
            let before = state.clone();
            let peek = check(&mut state, algo, &limit, 0, t).unwrap();
            prop_assert_eq!(&state, &before, "a peek changed the state");
            prop_assert_eq!(peek.remaining, model.remaining(t));
            prop_assert_eq!(peek.status == Status::UnderLimit, model.remaining(t) > 0);
            check_reset(&model, t, 0, &peek)?;

            let fits = hits > 0 && model.fits(t, hits);
            let d = check(&mut state, algo, &limit, hits, t).unwrap();
            if fits {
                model.admit(t, hits);
            }
            prop_assert_eq!(d.status == Status::UnderLimit, fits || hits == 0 && model.remaining(t) > 0);
            prop_assert_eq!(d.remaining, model.remaining(t));
            prop_assert_eq!(d.limit, limit.limit);
            check_reset(&model, t, hits, &d)?;
        }
        let adm = &model.admitted;
        for a in adm {
            for b in adm.iter().filter(|b| b.at >= a.at) {
                let n = u128::from(admitted_in(adm, a.at, b.at));
                let bound = u128::from(model.cap) * u128::from(model.dur)
                    + u128::from(limit.limit) * u128::from(b.at - a.at);
                prop_assert!(n * u128::from(model.dur) <= bound);
            }
            let window = admitted_in(adm, a.at, a.at + limit.duration_ms);
            prop_assert!(window <= model.cap + limit.limit);
        }
    }

    /// Refill rate: `x` ms after emptying, exactly `floor(limit * x / dur)` hits are
    /// back (capped at the capacity); a whole burst fits again after
    /// `ceil(cap * dur / limit)` ms and not a millisecond earlier.
    #[test]
    fn refills_at_the_stated_rate(
        algo in bucket_algo(),
        limit in bucket_limit(),
        x in 0u64..10_000,
        t0 in 0u64..1_000_000,
    ) {
        let cap = limit.burst.unwrap_or(limit.limit);
        let mut state = None;
        let d = check(&mut state, algo, &limit, cap, t0).unwrap();
        prop_assert_eq!((d.status, d.remaining), (Status::UnderLimit, 0));
        let back = check(&mut state, algo, &limit, 0, t0 + x).unwrap().remaining;
        prop_assert_eq!(back, (limit.limit * x / limit.duration_ms).min(cap));

        let full = (cap * limit.duration_ms).div_ceil(limit.limit);
        prop_assert_eq!(d.reset_after_ms, full);
        let mut early = state.clone();
        let e = check(&mut early, algo, &limit, cap, t0 + full - 1).unwrap();
        prop_assert_eq!(e.status, Status::OverLimit);
        let d = check(&mut state, algo, &limit, cap, t0 + full).unwrap();
        prop_assert_eq!(d.status, Status::UnderLimit);
    }
}
