//! Linearizable reads on [`RaftNode`]: the leader confirms its leadership with a quorum;
//! a follower asks the leader for its read index and waits to apply up to it. Apart from
//! the write path because asking has no side effects, so it retries more freely.

use super::leader::FORWARD_TIMEOUT;
use super::{RaftNode, WriteError, LEADER_CHANGE_WAIT};
use crate::raft::quorum::{self, Guarded};
use crate::raft::NodeId;
use crate::transport::wire::{paths, LeaderHint, ReadIndexReply};
use openraft::error::{CheckIsLeaderError, RaftError};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Why one try of a linearizable read's index failed.
enum ReadAttempt {
    /// Not worth asking again (fatal, or this node could not catch up).
    Failed(WriteError),
    /// Ask again once a leader other than `leader` is known.
    Retry { leader: Option<NodeId>, why: String },
}

impl RaftNode {
    /// Waits until this node has applied everything committed before the call, so a local
    /// read after it is linearizable. The leader confirms its leadership with a quorum; a
    /// follower asks the leader for its read index and waits to apply up to it.
    ///
    /// Asking has no side effects, so while leadership changes (a leader drains or dies)
    /// it waits for the next leader and asks again, for up to [`LEADER_CHANGE_WAIT`].
    pub async fn ensure_linearizable(&self) -> Result<(), WriteError> {
        let deadline = Instant::now() + LEADER_CHANGE_WAIT;
        loop {
            let (leader, why) = match self.read_index_once().await {
                Ok(()) => return Ok(()),
                Err(ReadAttempt::Failed(e)) => return Err(e),
                Err(ReadAttempt::Retry { leader, why }) => (leader, why),
            };
            if !self.wait_for_other_leader(leader, deadline).await {
                return Err(WriteError::Unavailable(why));
            }
        }
    }

    /// One try of [`Self::ensure_linearizable`].
    async fn read_index_once(&self) -> Result<(), ReadAttempt> {
        let retry = |leader: Option<NodeId>, why: String| ReadAttempt::Retry { leader, why };
        let hint = if self.stepping_down.load(Ordering::SeqCst) {
            // A draining leader has stopped confirming its leadership: ask the next one.
            None
        } else {
            let confirmed = match quorum::guard(&self.raft, self.raft.ensure_linearizable()).await {
                Guarded::Done(confirmed) => confirmed,
                Guarded::Refused(since) | Guarded::GaveUp(since) => {
                    return Err(ReadAttempt::Failed(WriteError::Unavailable(
                        quorum::explain(since),
                    )));
                }
            };
            match confirmed {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    f.leader_id.map(|id| LeaderHint {
                        id,
                        node: f.leader_node,
                    })
                }
                Err(RaftError::APIError(e)) => return Err(retry(Some(self.id), e.to_string())),
                Err(RaftError::Fatal(f)) => {
                    return Err(ReadAttempt::Failed(WriteError::Fatal(f.to_string())))
                }
            }
        };
        let Some(leader) = self.leader_addr(hint.as_ref()) else {
            let known = hint
                .map(|h| h.id)
                .or_else(|| self.raft.metrics().borrow().current_leader);
            return Err(retry(
                known,
                "no Raft leader is known; retry shortly".into(),
            ));
        };
        self.counters
            .forwarded_reads
            .fetch_add(1, Ordering::Relaxed);
        let reply: ReadIndexReply = self
            .peers
            .call(leader.0, &leader.1, paths::READ_INDEX, &(), FORWARD_TIMEOUT)
            .await
            .map_err(|e| {
                retry(
                    Some(leader.0),
                    format!("asking the leader for its read index failed: {e}"),
                )
            })?;
        let index = match reply {
            ReadIndexReply::Index(i) => i,
            ReadIndexReply::NotLeader(_) => {
                return Err(retry(
                    Some(leader.0),
                    "the Raft leader changed; retry shortly".into(),
                ))
            }
            ReadIndexReply::Unavailable(why) => return Err(retry(Some(leader.0), why)),
        };
        if let Some(index) = index {
            self.raft
                .wait(Some(FORWARD_TIMEOUT))
                .applied_index_at_least(Some(index), "linearizable read")
                .await
                .map_err(|e| {
                    ReadAttempt::Failed(WriteError::Unavailable(format!(
                        "this node did not catch up in time: {e}"
                    )))
                })?;
        }
        Ok(())
    }
}
