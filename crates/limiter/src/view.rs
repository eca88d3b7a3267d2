//! What the rate-limit runtime needs to know about the cluster, as a trait the node
//! implements over gossip membership and the actor transport.

use ractor::ActorCell;

/// What the router needs to know about the cluster; implemented by the node's wiring over
/// gossip membership and the actor transport.
pub trait ClusterView: Send + Sync + 'static {
    /// Ids of the members that own buckets: gossip state Active and status Alive (this node
    /// included when it is one). Empty means "not part of a serving cluster": check locally,
    /// unless [`ClusterView::serves_alone_when_empty`] says the node has not joined yet.
    fn active_members(&self) -> Vec<u64>;
    /// The remote Router of `node`, if a session to it is up.
    fn router_of(&self, node: u64) -> Option<ActorCell>;
    /// Whether every live member speaks bucket handoff (the feature gate
    /// `bucket-handoff-v1`): old binaries drop its messages.
    fn handoff_enabled(&self) -> bool {
        true
    }
    /// Whether `node` is a live member (its session may not be up yet).
    fn is_alive(&self, node: u64) -> bool {
        self.router_of(node).is_some()
    }
    /// Whether an empty view means this node serves every bucket itself (a node outside
    /// any cluster, or the last one left). A node that has not joined its cluster yet
    /// answers `false`: it owns nothing, since an interim owner may hold its buckets.
    fn serves_alone_when_empty(&self) -> bool {
        true
    }
}
