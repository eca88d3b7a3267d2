//! Placement as a policy the rest of the node is generic over (the shape of Garage's
//! replication parameters): which node owns a key, and which keeps its replica.

use crate::NodeId;

/// Where a key lives among a set of nodes. Implementations must be pure functions of
/// the key and the *set* of nodes (not their order, not duplicates), identical on
/// every node, platform and version, so that every node computes the same owner from
/// the same membership view.
pub trait Placement {
    /// Every node in preference order: the owner first, then the node that keeps the
    /// asynchronous replica and takes over if the owner goes, and so on. Duplicates in
    /// `nodes` appear once.
    fn ranked(&self, key: &[u8], nodes: &[NodeId]) -> Vec<NodeId>;

    /// The node that owns `key`; `None` when `nodes` is empty.
    fn owner(&self, key: &[u8], nodes: &[NodeId]) -> Option<NodeId> {
        self.ranked(key, nodes).first().copied()
    }

    /// The node that keeps `key`'s replica (the second in [`ranked`](Self::ranked));
    /// `None` with fewer than two distinct nodes.
    fn replica(&self, key: &[u8], nodes: &[NodeId]) -> Option<NodeId> {
        self.ranked(key, nodes).get(1).copied()
    }
}
