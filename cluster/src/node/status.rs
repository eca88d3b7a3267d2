//! [`RaftStatus`]: a snapshot of this node's Raft metrics (role, term, members, log
//! positions, replication lag), read by `/v1/cluster` and the metrics endpoint. Apart
//! because it only reads openraft's metrics and the log store, and changes with what
//! operators want to see rather than with the write or read paths.

use super::RaftNode;
use crate::raft::{NodeId, NodeInfo};
use std::collections::BTreeMap;

/// A snapshot of this node's Raft status.
#[derive(Debug, Clone)]
pub struct RaftStatus {
    /// This node's id.
    pub node_id: NodeId,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: u64,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub server_state: String,
    /// Voter ids.
    pub voters: Vec<NodeId>,
    /// Learner ids.
    pub learners: Vec<NodeId>,
    /// Every member with its addresses.
    pub members: Vec<(NodeId, NodeInfo)>,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last entry known committed (persisted by the log store).
    pub committed_index: Option<u64>,
    /// Index of the last applied entry.
    pub applied_index: Option<u64>,
    /// On the leader: how many entries each follower is behind the leader's last log.
    pub replication_lag: BTreeMap<NodeId, u64>,
    /// Milliseconds since the leader last heard from a quorum (leader only).
    pub millis_since_quorum_ack: Option<u64>,
    /// Index of the last snapshot.
    pub snapshot_index: Option<u64>,
    /// Index up to which the log was purged.
    pub purged_index: Option<u64>,
}

impl RaftNode {
    /// This node's Raft status.
    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let members = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let last = m.last_log_index.unwrap_or(0);
        let replication_lag = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter(|(id, _)| **id != self.id)
                    .map(|(id, matched)| (*id, last.saturating_sub(matched.map_or(0, |l| l.index))))
                    .collect()
            })
            .unwrap_or_default();
        RaftStatus {
            node_id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            server_state: format!("{:?}", m.state),
            voters,
            learners,
            members,
            last_log_index: m.last_log_index,
            committed_index: self.log.committed_index(),
            applied_index: m.last_applied.map(|l| l.index),
            replication_lag,
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
        }
    }
}
