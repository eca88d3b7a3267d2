//! Leadership as the write path and the read index both need it: where the leader is,
//! waiting for a new one after a failed try, and a draining leader handing over.

use super::RaftNode;
use crate::raft::NodeId;
use crate::transport::wire::LeaderHint;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Timeout of a write or read-index call forwarded to the leader.
pub(super) const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

impl RaftNode {
    /// Drain: stop acting as leader. Heartbeats and elections stop on this node and it
    /// refuses writes and read-index requests (as "not leader"), so its followers hear
    /// nothing more, elect a leader among themselves after their election timeout, and
    /// writes waiting for a leader go there. openraft 0.9 has no leadership transfer, and
    /// a leader removed from the voters keeps leading as a non-voter, so this is how a
    /// draining leader hands over.
    pub fn stop_leading(&self) {
        self.stepping_down.store(true, Ordering::SeqCst);
        self.raft.runtime_config().heartbeat(false);
        self.raft.runtime_config().elect(false);
    }

    /// The leader's id and internal address, from a hint or this node's view.
    pub(super) fn leader_addr(&self, hint: Option<&LeaderHint>) -> Option<(NodeId, String)> {
        let id = hint
            .map(|h| h.id)
            .or_else(|| self.raft.metrics().borrow().current_leader)?;
        if id == self.id {
            return None;
        }
        let addr = hint
            .and_then(|h| h.node.as_ref())
            .map(|n| n.raft_addr.clone())
            .filter(|a| !a.is_empty())
            .or_else(|| {
                let m = self.raft.metrics().borrow().membership_config.clone();
                m.membership().get_node(&id).map(|n| n.raft_addr.clone())
            })?;
        Some((id, addr))
    }

    /// Before trying again: waits (at most 500 ms, and not past `deadline`) for a leader
    /// other than `failed` (or any leader when none was known); the same leader may just
    /// have been slow. `false` when the deadline has passed.
    pub(super) async fn wait_for_other_leader(
        &self,
        failed: Option<NodeId>,
        deadline: Instant,
    ) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = (deadline - now).min(Duration::from_millis(500));
        let _ = self
            .raft
            .wait(Some(wait))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != failed,
                "a new leader",
            )
            .await;
        true
    }
}
