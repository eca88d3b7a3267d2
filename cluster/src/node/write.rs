//! The write path of [`RaftNode`]: a command is proposed on the leader, or forwarded to it
//! from a follower (which then waits to apply it, for read-your-writes), and sent again
//! while leadership changes when it certainly was not applied. Its own file because the
//! rules for when a retry is safe are the subtle part of the handle.

use super::leader::FORWARD_TIMEOUT;
use super::{RaftNode, WriteError, LEADER_CHANGE_WAIT};
use crate::raft::quorum::{self, Guarded};
use crate::raft::NodeId;
use crate::transport::client::TransportError;
use crate::transport::wire::{paths, LeaderHint, WriteReply};
use colony_core::command::{ApplyError, CommandOutput, Proposal};
use openraft::error::{ClientWriteError, RaftError};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a follower waits to apply a write it forwarded before answering anyway.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// How one try of a write ended.
enum Attempt {
    /// Applied, rejected, or failed in a way that must not be retried.
    Done(Box<Result<CommandOutput, WriteError>>),
    /// Certainly not applied: retry once a leader other than `leader` is known.
    NotApplied { leader: Option<NodeId>, why: String },
}

impl Attempt {
    fn done(r: Result<CommandOutput, WriteError>) -> Self {
        Attempt::Done(Box::new(r))
    }
}

impl RaftNode {
    /// Proposes a command and waits until it is committed and applied. On a follower the
    /// proposal is forwarded to the leader, so any node accepts writes.
    ///
    /// While leadership changes (a leader drains or dies), a write that certainly was not
    /// applied (no leader known, the old leader refused it or could not be reached) waits
    /// for the next leader and is sent again, for up to [`LEADER_CHANGE_WAIT`]. A write
    /// that may have been applied (the leader timed out) is not sent twice.
    pub async fn write(&self, proposal: Proposal) -> Result<CommandOutput, WriteError> {
        // Refused before it is proposed or forwarded: nothing to retry.
        let size = proposal.encode().map(|b| b.len()).unwrap_or(usize::MAX);
        if size > self.max_entry_bytes {
            return Err(WriteError::Rejected(ApplyError::Conflict(format!(
                "the change is {size} bytes encoded, more than the largest Raft entry of {} \
                 (raft.max_entry_bytes)",
                self.max_entry_bytes
            ))));
        }
        let deadline = Instant::now() + LEADER_CHANGE_WAIT;
        loop {
            match self.write_once(&proposal).await {
                Attempt::Done(result) => return *result,
                Attempt::NotApplied { leader, why } => {
                    if !self.wait_for_other_leader(leader, deadline).await {
                        return Err(WriteError::Unavailable(why));
                    }
                }
            }
        }
    }

    /// One try of [`Self::write`].
    async fn write_once(&self, proposal: &Proposal) -> Attempt {
        if self.stepping_down.load(Ordering::SeqCst) {
            return Attempt::NotApplied {
                leader: Some(self.id),
                why: "this node is handing over Raft leadership".into(),
            };
        }
        let written =
            match quorum::guard(&self.raft, self.raft.client_write(proposal.clone())).await {
                Guarded::Done(written) => written,
                // Not proposed: refused outright, so the client goes to a node that can commit.
                Guarded::Refused(since) => {
                    return Attempt::done(Err(WriteError::Unavailable(quorum::explain(since))))
                }
                Guarded::GaveUp(since) => {
                    return Attempt::done(Err(WriteError::Unavailable(quorum::explain_proposed(
                        since,
                    ))))
                }
            };
        let mut hint = match written {
            Ok(resp) => return Attempt::done(resp.data.map_err(WriteError::Rejected)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                f.leader_id.map(|id| LeaderHint {
                    id,
                    node: f.leader_node,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                return Attempt::done(Err(WriteError::Unavailable(e.to_string())))
            }
            Err(RaftError::Fatal(f)) => {
                return Attempt::done(Err(WriteError::Fatal(f.to_string())))
            }
        };
        // The leader may have changed between our view and its; follow one fresh hint.
        let mut last = None;
        for _ in 0..2 {
            let Some(leader) = self.leader_addr(hint.as_ref()) else {
                return Attempt::NotApplied {
                    leader: last,
                    why: "no Raft leader is known; retry shortly".into(),
                };
            };
            last = Some(leader.0);
            self.counters
                .forwarded_writes
                .fetch_add(1, Ordering::Relaxed);
            let forwarded = tokio::select! {
                reply = self.peers.call(leader.0, &leader.1, paths::WRITE, proposal, FORWARD_TIMEOUT) => reply,
                () = self.leader_replaced(leader.0) => {
                    return Attempt::done(Err(WriteError::Unavailable(format!(
                        "the Raft leader changed while node {} held the forwarded write; \
                         it may still be applied",
                        leader.0
                    ))));
                }
            };
            let reply: WriteReply = match forwarded {
                Ok(r) => r,
                // Nothing reached the leader (no connection, or refused before the write
                // was handled): safe to send again. A connection lost after sending may
                // have been applied: not retried.
                Err(
                    e @ (TransportError::Unreachable { sent: false, .. }
                    | TransportError::Blocked(_)
                    // Refused as misdirected before the body was read.
                    | TransportError::Status { status: 421, .. }),
                ) => {
                    return Attempt::NotApplied {
                        leader: last,
                        why: format!("forwarding to the leader failed: {e}"),
                    }
                }
                Err(e) => {
                    return Attempt::done(Err(WriteError::Unavailable(format!(
                        "forwarding to the leader failed: {e}"
                    ))))
                }
            };
            match reply {
                WriteReply::Applied { result, index } => {
                    if let Some(index) = index {
                        // Read-your-writes through this node: wait (briefly) until it has
                        // applied the write too. A slow apply does not fail the write.
                        let _ = self
                            .raft
                            .wait(Some(READ_YOUR_WRITES_WAIT))
                            .applied_index_at_least(Some(index), "forwarded write applied locally")
                            .await;
                    }
                    return Attempt::done(result.map_err(WriteError::Rejected));
                }
                WriteReply::Unavailable(why) => {
                    return Attempt::done(Err(WriteError::Unavailable(why)))
                }
                WriteReply::NotLeader(h) => hint = h,
            }
        }
        Attempt::NotApplied {
            leader: last,
            why: "the Raft leader keeps changing; retry shortly".into(),
        }
    }

    /// Resolves once this node has known a leader other than `old` for a while: the grace
    /// lets `old` answer what it was committing when it lost leadership (a drain). A write
    /// forwarded to a leader that was cut off gets no answer at all, and waiting out
    /// [`FORWARD_TIMEOUT`] for it would stall the client for seconds after the failover.
    async fn leader_replaced(&self, old: NodeId) {
        let grace = quorum::limit(self.raft.config());
        let replaced = self
            .raft
            .wait(None)
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != old),
                "another leader",
            )
            .await;
        if replaced.is_err() {
            // Raft shut down: the forward's own timeout ends the wait.
            return std::future::pending().await;
        }
        tokio::time::sleep(grace).await;
    }
}
