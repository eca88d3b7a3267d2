//! Rendezvous (highest-random-weight) hashing: every node gets a pseudo-random weight
//! for the key and the heaviest node owns it.
//!
//! Why rendezvous: no ring or virtual nodes to keep in sync, every node computes the
//! owner from its membership view alone, and a membership change moves only the keys
//! it must (a removed node's keys, or the keys a new node wins), which keeps bucket
//! handoffs small. The ranking below the owner gives the replica node for free, and
//! when the owner goes, the replica is exactly the new owner.
//!
//! The weight, pinned forever (changing it would move keys between nodes of different
//! versions in one cluster; the golden tests guard it):
//! - `digest = SipHash-2-4(key = "colony-placement", key bytes)`,
//! - `weight(node) = SipHash-2-4(k0 = node id, k1 = "hrw-node" as a little-endian
//!   word, digest as 8 little-endian bytes)`,
//! - order: higher weight first; equal weights (never seen in practice) by lower node
//!   id, so the order is total and independent of the list's order.

use crate::siphash::siphash24;
use crate::{NodeId, Placement};
use std::cmp::Reverse;

/// The 16-byte SipHash key for key digests: the ASCII bytes `colony-placement`.
const DIGEST_K0: u64 = u64::from_le_bytes(*b"colony-p");
const DIGEST_K1: u64 = u64::from_le_bytes(*b"lacement");
/// The second key word for node weights (the first is the node id).
const WEIGHT_K1: u64 = u64::from_le_bytes(*b"hrw-node");

/// The 64-bit digest of a key, hashed once per lookup whatever the number of nodes.
pub fn key_digest(key: &[u8]) -> u64 {
    siphash24(DIGEST_K0, DIGEST_K1, key)
}

/// The weight of `node` for a key with digest `digest`: a SipHash keyed by the node
/// id, so each node's weights are independent of every other node's.
pub fn weight(digest: u64, node: NodeId) -> u64 {
    siphash24(node, WEIGHT_K1, &digest.to_le_bytes())
}

/// The sort key: larger is preferred.
fn rank_key(digest: u64, node: NodeId) -> (u64, Reverse<NodeId>) {
    (weight(digest, node), Reverse(node))
}

/// The node that owns `key` among `nodes`; `None` when `nodes` is empty. Allocation
/// free, for the per-request path.
pub fn owner(key: &[u8], nodes: &[NodeId]) -> Option<NodeId> {
    let digest = key_digest(key);
    nodes.iter().copied().max_by_key(|&n| rank_key(digest, n))
}

/// The node that keeps `key`'s replica: the second in [`ranked`]; `None` with fewer
/// than two distinct nodes. Allocation free.
pub fn replica(key: &[u8], nodes: &[NodeId]) -> Option<NodeId> {
    let digest = key_digest(key);
    let mut first: Option<(u64, Reverse<NodeId>)> = None;
    let mut second: Option<(u64, Reverse<NodeId>)> = None;
    for &n in nodes {
        let k = rank_key(digest, n);
        if first == Some(k) || second == Some(k) {
            continue; // a duplicate id
        }
        if first.is_none_or(|f| k > f) {
            second = first;
            first = Some(k);
        } else if second.is_none_or(|s| k > s) {
            second = Some(k);
        }
    }
    second.map(|(_, Reverse(n))| n)
}

/// Every distinct node of `nodes` in preference order for `key`: the owner, then the
/// replica (the owner's successor), and so on.
pub fn ranked(key: &[u8], nodes: &[NodeId]) -> Vec<NodeId> {
    let digest = key_digest(key);
    let mut keyed: Vec<_> = nodes.iter().map(|&n| rank_key(digest, n)).collect();
    keyed.sort_unstable_by(|a, b| b.cmp(a));
    keyed.dedup();
    keyed.into_iter().map(|(_, Reverse(n))| n).collect()
}

/// The rendezvous policy, for code that is generic over [`Placement`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rendezvous;

impl Placement for Rendezvous {
    fn ranked(&self, key: &[u8], nodes: &[NodeId]) -> Vec<NodeId> {
        ranked(key, nodes)
    }

    fn owner(&self, key: &[u8], nodes: &[NodeId]) -> Option<NodeId> {
        owner(key, nodes)
    }

    fn replica(&self, key: &[u8], nodes: &[NodeId]) -> Option<NodeId> {
        replica(key, nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values: if one of these changes, nodes of the old and the new version
    /// would disagree on owners. Never update them to make a change pass.
    #[test]
    fn golden_digests_and_weights() {
        assert_eq!(key_digest(b""), 0xa07d9e89e3cb1b68);
        assert_eq!(key_digest(b"a"), 0x2c25e68b45dcda20);
        assert_eq!(key_digest(b"tenant-a/bucket-1"), 0x7fb6cff1e3cb8943);
        let d = key_digest(b"tenant-a/bucket-1");
        let weights: Vec<u64> = (1..=5).map(|n| weight(d, n)).collect();
        assert_eq!(
            weights,
            [
                0x65a56179d818d3a7,
                0x67eecd454b4cb91d,
                0xd88387acffd49078,
                0xbbac1747c0e53772,
                0xc5754544e5914226,
            ]
        );
    }

    #[test]
    fn golden_rankings() {
        let nodes = [1, 2, 3, 4, 5];
        assert_eq!(ranked(b"", &nodes), [1, 3, 2, 4, 5]);
        assert_eq!(ranked(b"a", &nodes), [5, 1, 2, 3, 4]);
        assert_eq!(ranked(b"tenant-a/bucket-1", &nodes), [3, 5, 4, 2, 1]);
        assert_eq!(ranked(b"colony", &nodes), [5, 2, 3, 1, 4]);
        let three: Vec<Vec<NodeId>> = (0..8)
            .map(|i| ranked(format!("key-{i}").as_bytes(), &[1, 2, 3]))
            .collect();
        assert_eq!(
            three,
            [
                [3, 2, 1],
                [1, 3, 2],
                [1, 3, 2],
                [1, 3, 2],
                [1, 3, 2],
                [3, 1, 2],
                [3, 1, 2],
                [1, 2, 3],
            ]
        );
    }

    #[test]
    fn empty_single_and_duplicate_node_lists() {
        assert_eq!(owner(b"k", &[]), None);
        assert_eq!(replica(b"k", &[]), None);
        assert!(ranked(b"k", &[]).is_empty());
        assert_eq!(owner(b"k", &[7]), Some(7));
        assert_eq!(replica(b"k", &[7, 7, 7]), None);
        assert_eq!(ranked(b"k", &[7, 7]), [7]);
        let with_dups = ranked(b"tenant-a/bucket-1", &[5, 1, 3, 5, 2, 4, 1]);
        assert_eq!(with_dups, [3, 5, 4, 2, 1]);
        assert_eq!(replica(b"tenant-a/bucket-1", &[3, 3, 5, 5]), Some(5));
    }

    #[test]
    fn trait_defaults_agree_with_the_fast_paths() {
        struct ViaRanked;
        impl Placement for ViaRanked {
            fn ranked(&self, key: &[u8], nodes: &[NodeId]) -> Vec<NodeId> {
                ranked(key, nodes)
            }
        }
        let nodes = [10, 20, 30, 40];
        for i in 0..200 {
            let key = format!("k{i}");
            let key = key.as_bytes();
            assert_eq!(Rendezvous.owner(key, &nodes), ViaRanked.owner(key, &nodes));
            assert_eq!(
                Rendezvous.replica(key, &nodes),
                ViaRanked.replica(key, &nodes)
            );
        }
    }
}
