//! The rate limiter's view of the cluster: gossip membership for ownership, the actor
//! transport for reaching owners.

use colony_cluster::actor_link::ActorLink;
use colony_cluster::membership::{MemberStatus, Membership, NodeState};
use colony_limiter::{ClusterView, ROUTER_GROUP, ROUTER_SCOPE};

/// [`ClusterView`] over this node's membership and actor transport.
pub struct NodeView {
    /// Gossip membership.
    pub membership: Membership,
    /// The actor transport.
    pub link: ActorLink,
}

impl ClusterView for NodeView {
    fn active_members(&self) -> Vec<u64> {
        // Draining and joining nodes own nothing: their buckets move to the active ones.
        self.membership
            .members()
            .into_iter()
            .filter(|m| {
                m.status == MemberStatus::Alive
                    && m.meta
                        .as_ref()
                        .is_some_and(|x| x.state == NodeState::Active)
            })
            .map(|m| m.node_id)
            .collect()
    }

    fn router_of(&self, node: u64) -> Option<ractor::ActorCell> {
        self.link.remote_member(ROUTER_SCOPE, ROUTER_GROUP, node)
    }

    fn is_alive(&self, node: u64) -> bool {
        self.membership
            .members()
            .iter()
            .any(|m| m.node_id == node && m.status != MemberStatus::Down)
    }

    fn serves_alone_when_empty(&self) -> bool {
        // Joining: not an owner yet, and peers may be holding its buckets meanwhile.
        self.membership
            .members()
            .first()
            .and_then(|me| me.meta.as_ref())
            .is_none_or(|m| m.state != NodeState::Joining)
    }

    fn handoff_enabled(&self) -> bool {
        colony_cluster::features::enabled(
            &self.membership.members(),
            colony_cluster::features::BUCKET_HANDOFF_V1,
        )
    }
}
