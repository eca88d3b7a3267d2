//! The sliding window against the timestamp model and its stated bounds.

use crate::model::{admitted_in, WindowModel};
use colony_ratelimit::{check, Algorithm, BucketState, Decision, Limit, Status};
use proptest::prelude::*;

/// A window limit: 1–20 per 1–3000 ms, burst absent or equal to the limit.
pub fn window_limit() -> impl Strategy<Value = Limit> {
    (1u64..=20, 1u64..=3000, any::<bool>()).prop_map(|(limit, d, burst)| Limit {
        limit,
        duration_ms: d,
        burst: burst.then_some(limit),
    })
}

fn steps(limit: Limit) -> impl Strategy<Value = Vec<(u64, u64)>> {
    let d = limit.duration_ms;
    let wait = prop_oneof![Just(0u64), 0..=d / 10 + 1, 0..=2 * d];
    proptest::collection::vec((wait, 0..=limit.limit + 2), 1..60)
}

fn check_reset(model: &WindowModel, t: u64, hits: u64, d: &Decision) -> Result<(), TestCaseError> {
    let r = d.reset_after_ms;
    let empty = |at: u64| model.counted(at) == 0;
    match d.status {
        Status::OverLimit if hits <= model.limit => {
            let need = hits.max(1);
            prop_assert!(r > 0 && model.fits(t + r, need) && !model.fits(t + r - 1, need));
        }
        _ => prop_assert!(empty(t + r) && (r == 0 || !empty(t + r - 1))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Matches the model exactly, and the two documented bounds hold on the history:
    /// (1) at most `limit` hits in every closed interval of length `duration_ms`;
    /// (2) a rejection happens only if the hits admitted in the last
    ///     `duration_ms + g - 1` ms (closed) plus the request exceed `limit`.
    #[test]
    fn exact_within_every_window(
        (limit, steps) in window_limit().prop_flat_map(|l| (Just(l), steps(l))),
        start in 0u64..1_000_000,
    ) {
        let algo = Algorithm::SlidingWindow;
        let mut model = WindowModel::new(&limit);
        let mut state: Option<BucketState> = None;
        let mut t = start;
        for (wait, hits) in steps {
            t += wait;
            let before = state.clone();
            let peek = check(&mut state, algo, &limit, 0, t).unwrap();
            prop_assert_eq!(&state, &before, "a peek changed the state");
            prop_assert_eq!(peek.remaining, model.remaining(t));
            check_reset(&model, t, 0, &peek)?;

            let fits = hits > 0 && model.fits(t, hits);
            let d = check(&mut state, algo, &limit, hits, t).unwrap();
            if fits {
                model.admit(t, hits);
            } else if hits > 0 {
                let recent = admitted_in(&model.admitted, (t + 1).saturating_sub(limit.duration_ms + model.g), t);
                prop_assert!(recent + hits > limit.limit, "rejected with only {} recent hits", recent);
            }
            prop_assert_eq!(d.status == Status::UnderLimit, fits || hits == 0 && model.remaining(t) > 0);
            prop_assert_eq!(d.remaining, model.remaining(t));
            check_reset(&model, t, hits, &d)?;
        }
        for a in &model.admitted {
            let n = admitted_in(&model.admitted, a.at.saturating_sub(limit.duration_ms), a.at);
            prop_assert!(n <= limit.limit, "{} hits in the window ending at {}", n, a.at);
        }
    }

    /// Every hit is forgotten within `duration_ms + g` ms: after that a whole limit
    /// fits again.
    #[test]
    fn forgets_within_one_sub_window_after_the_window(
        limit in window_limit(),
        hits_at in proptest::collection::vec(0u64..5000, 1..20),
    ) {
        let algo = Algorithm::SlidingWindow;
        let g = limit.duration_ms.div_ceil(20);
        let mut state = None;
        let mut times = hits_at;
        times.sort_unstable();
        for &at in &times {
            check(&mut state, algo, &limit, 1, at).unwrap();
        }
        let last = *times.last().unwrap();
        let d = check(&mut state, algo, &limit, limit.limit, last + limit.duration_ms + g).unwrap();
        prop_assert_eq!(d.status, Status::UnderLimit);
    }
}
