//! Properties of the tier policy: charging in phases touches every bucket exactly once
//! and puts first exactly those that would refuse; the reported decisions are the
//! extreme ones; a tenant's buckets never share a key; a request always costs something.

use colony_core::tier::WindowLimit;
use colony_ratelimit::{Decision, Status};
use colony_tierpolicy::{charge_order, longest_wait, most_constrained, Effective};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn decision() -> impl Strategy<Value = Decision> {
    (any::<bool>(), any::<u64>(), any::<u64>(), 0u64..5_000).prop_map(
        |(over, limit, remaining, reset_after_ms)| Decision {
            status: if over {
                Status::OverLimit
            } else {
                Status::UnderLimit
            },
            limit,
            remaining,
            reset_after_ms,
        },
    )
}

fn effective(limits: Vec<WindowLimit>, endpoint_weights: BTreeMap<String, u32>) -> Effective {
    Effective {
        source: "pro".into(),
        limits,
        endpoint_weights,
        concurrency: None,
        monthly_budget_usd: None,
        bypass_limits: false,
        concurrency_policy: String::new(),
    }
}

fn window_limits() -> impl Strategy<Value = Vec<WindowLimit>> {
    proptest::collection::vec(
        (
            1u64..10_000,
            proptest::sample::select(vec![1u64, 60, 3600, 86_400]),
        )
            .prop_map(|(limit, window_secs)| WindowLimit { limit, window_secs }),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn phases_charge_every_bucket_once_and_the_refusing_ones_first(
        peeked in proptest::collection::vec(proptest::option::of(decision()), 0..8),
        cost in 0u64..20,
    ) {
        let phases = charge_order(&peeked, cost);
        prop_assert_eq!(phases.len(), 2);
        let all: Vec<usize> = phases.concat();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..peeked.len()).collect::<Vec<_>>());
        for phase in &phases {
            prop_assert!(phase.windows(2).all(|w| w[0] < w[1]));
        }
        for (i, p) in peeked.iter().enumerate() {
            let refuses = p
                .as_ref()
                .is_none_or(|d| d.remaining < cost || d.status == Status::OverLimit);
            prop_assert_eq!(phases[0].contains(&i), refuses);
        }
    }

    #[test]
    fn the_reported_refusal_has_the_longest_wait(
        ds in proptest::collection::vec(decision(), 0..8),
    ) {
        let pairs: Vec<(usize, Decision)> = ds.iter().copied().enumerate().collect();
        let refused: Vec<&(usize, Decision)> =
            pairs.iter().filter(|(_, d)| d.status == Status::OverLimit).collect();
        match longest_wait(&pairs) {
            None => prop_assert!(refused.is_empty()),
            Some(v) => {
                prop_assert_eq!(ds[v].status, Status::OverLimit);
                for (i, d) in &refused {
                    prop_assert!(d.reset_after_ms <= ds[v].reset_after_ms);
                    // The first of equals.
                    if d.reset_after_ms == ds[v].reset_after_ms {
                        prop_assert!(v <= *i);
                    }
                }
            }
        }
    }

    #[test]
    fn no_decision_is_more_constrained_than_the_reported_one(
        ds in proptest::collection::vec(decision(), 0..8),
    ) {
        match most_constrained(&ds) {
            None => prop_assert!(ds.is_empty()),
            Some(m) => {
                let frac = |d: &Decision, other: &Decision| {
                    u128::from(d.remaining) * u128::from(other.limit.max(1))
                };
                for d in &ds {
                    prop_assert!(frac(&ds[m], d) <= frac(d, &ds[m]));
                }
            }
        }
    }

    #[test]
    fn a_tenants_buckets_have_distinct_keys_and_names(
        limits in window_limits(),
        tenant in "[a-z0-9_-]{1,20}",
    ) {
        let ps = effective(limits.clone(), BTreeMap::new()).policies(&tenant);
        prop_assert_eq!(ps.len(), limits.len());
        let keys: BTreeSet<&str> = ps.iter().map(|p| p.key.as_str()).collect();
        let names: BTreeSet<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        prop_assert_eq!(keys.len(), ps.len());
        prop_assert_eq!(names.len(), ps.len());
        let prefix = format!("tier/{}:{tenant}/", tenant.len());
        for (p, l) in ps.iter().zip(&limits) {
            prop_assert!(p.key.starts_with(&prefix));
            prop_assert_eq!((p.limit, p.window_secs), (l.limit, l.window_secs));
        }
    }

    #[test]
    fn every_request_costs_at_least_one_unit(
        weights in proptest::collection::btree_map("[a-z.]{1,8}", any::<u32>(), 0..5),
        route in "[a-z.]{1,8}",
    ) {
        let eff = effective(Vec::new(), weights.clone());
        let cost = eff.cost(&route);
        prop_assert!(cost >= 1);
        prop_assert_eq!(cost, weights.get(&route).map_or(1, |w| u64::from(*w).max(1)));
    }
}
