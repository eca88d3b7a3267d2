//! Properties of rendezvous placement: deterministic, independent of the order of the
//! node list, minimal disruption on membership changes, balanced load.

use colony_placement::{owner, ranked, replica, NodeId};
use proptest::prelude::*;
use std::collections::HashMap;

/// 1–8 distinct node ids.
fn node_set() -> impl Strategy<Value = Vec<NodeId>> {
    proptest::collection::hash_set(any::<NodeId>(), 1..8).prop_map(|s| s.into_iter().collect())
}

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("tenant-{}/key-{i}", i % 13).into_bytes())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn order_of_the_node_list_does_not_matter(
        (nodes, shuffled) in node_set().prop_flat_map(|n| (Just(n.clone()), Just(n).prop_shuffle())),
        key in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        prop_assert_eq!(ranked(&key, &nodes), ranked(&key, &shuffled));
        prop_assert_eq!(owner(&key, &nodes), owner(&key, &shuffled));
        prop_assert_eq!(replica(&key, &nodes), replica(&key, &shuffled));
        // Deterministic, and the fast paths agree with the full ranking.
        let r = ranked(&key, &nodes);
        prop_assert_eq!(r.len(), nodes.len());
        prop_assert_eq!(owner(&key, &nodes), r.first().copied());
        prop_assert_eq!(replica(&key, &nodes), r.get(1).copied());
    }

    #[test]
    fn removing_a_node_only_moves_its_own_keys(nodes in node_set(), pick in any::<prop::sample::Index>()) {
        let gone = nodes[pick.index(nodes.len())];
        let rest: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != gone).collect();
        for key in keys(300) {
            let before = ranked(&key, &nodes);
            let after = ranked(&key, &rest);
            // The whole order is the old order without the removed node, so the
            // replica of a key whose owner died is exactly its new owner.
            let expected: Vec<NodeId> = before.iter().copied().filter(|&n| n != gone).collect();
            prop_assert_eq!(&after, &expected);
            if before[0] == gone {
                prop_assert_eq!(after.first().copied(), before.get(1).copied());
            }
        }
    }

    #[test]
    fn adding_a_node_only_takes_keys_to_it(nodes in node_set(), new in any::<NodeId>()) {
        prop_assume!(!nodes.contains(&new));
        let mut grown = nodes.clone();
        grown.push(new);
        for key in keys(300) {
            let before = owner(&key, &nodes);
            let after = owner(&key, &grown);
            prop_assert!(after == before || after == Some(new));
        }
    }
}

proptest! {
    // Each case hashes 100k keys: a few cases are plenty.
    #![proptest_config(ProptestConfig::with_cases(5))]

    #[test]
    fn every_node_owns_its_fair_share_within_ten_percent(
        nodes in (3usize..=7).prop_flat_map(|n| proptest::collection::hash_set(any::<NodeId>(), n)),
    ) {
        let nodes: Vec<NodeId> = nodes.into_iter().collect();
        const KEYS: usize = 100_000;
        let mut owned: HashMap<NodeId, usize> = HashMap::new();
        for i in 0..KEYS {
            let key = format!("bucket:tenant-{}:{i}", i % 97);
            if let Some(n) = owner(key.as_bytes(), &nodes) {
                *owned.entry(n).or_default() += 1;
            }
        }
        let fair = KEYS as f64 / nodes.len() as f64;
        for n in &nodes {
            let got = owned.get(n).copied().unwrap_or(0) as f64;
            prop_assert!((got - fair).abs() <= fair * 0.10, "node {} owns {} of fair {}", n, got, fair);
        }
    }
}

#[test]
fn small_sequential_ids_balance_too() {
    // Real clusters number nodes 1, 2, 3...: the weights must not depend on the ids
    // being random.
    for count in 3..=7u64 {
        let nodes: Vec<NodeId> = (1..=count).collect();
        let mut owned = vec![0usize; count as usize + 1];
        for i in 0..100_000 {
            let key = format!("k{i}");
            owned[owner(key.as_bytes(), &nodes).unwrap() as usize] += 1;
        }
        let fair = 100_000.0 / count as f64;
        for (n, got) in owned.iter().enumerate().skip(1) {
            assert!(
                (*got as f64 - fair).abs() <= fair * 0.10,
                "{count} nodes: node {n} owns {got}"
            );
        }
    }
}
