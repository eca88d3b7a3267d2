//! [`RaftNode`]: the handle the rest of a Colony node uses for replicated state.
//!
//! Writes go through Raft (`client_write`) and return the state machine's answer; reads are
//! served from the local, applied state; audit queries and verification read sled on a
//! blocking thread so they never stall a tokio worker.

use crate::raft::log_store::LogStore;
use crate::raft::quorum::{self, Guarded};
use crate::raft::state_machine::{StateMachineStore, StoreError};
use crate::raft::{NodeId, NodeInfo, Raft};
use crate::transport::client::{PeerClient, TransportError};
use crate::transport::faults::Faults;
use crate::transport::raft_network::HttpNetwork;
use crate::transport::server::{self, InternalState};
use crate::transport::wire::{self, paths, LeaderHint, ReadIndexReply, WriteReply};
use colony_core::command::{ApplyError, CommandOutput, Proposal};
use colony_state::{ChainReport, State};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{Config, SnapshotPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a follower waits to apply a write it forwarded before answering anyway.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// Timeout of a write or read-index call forwarded to the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write waits for a new leader while leadership changes.
pub const LEADER_CHANGE_WAIT: Duration = Duration::from_secs(3);

/// Why one try of a linearizable read's index failed.
enum ReadAttempt {
    /// Not worth asking again (fatal, or this node could not catch up).
    Failed(WriteError),
    /// Ask again once a leader other than `leader` is known.
    Retry { leader: Option<NodeId>, why: String },
}

/// How one try of a write ended.
enum Attempt {
    /// Applied, rejected, or failed in a way that must not be retried.
    Done(Box<Result<CommandOutput, WriteError>>),
    /// Certainly not applied: retry once a leader other than `leader` is known.
    NotApplied { leader: Option<NodeId>, why: String },
}

pub use crate::raft::state_machine::{AuditPage, AuditQuery};

/// Raft settings of one node.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// This node's Raft id.
    pub node_id: NodeId,
    /// Where this node can be reached.
    pub info: NodeInfo,
    /// Directory of the sled database.
    pub dir: PathBuf,
    /// Leader heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomised election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomised election timeout.
    pub election_timeout_max: Duration,
    /// Take a snapshot after this many log entries since the last one.
    pub snapshot_after_logs: u64,
    /// Keep this many entries in the log after a snapshot (for slow followers).
    pub logs_kept_after_snapshot: u64,
    /// The cluster secret (internal calls prove they know it).
    pub secret: String,
    /// Fault injection switches (inert unless enabled by config).
    pub faults: Faults,
    /// Largest encoded proposal this node proposes: an entry must replicate well within
    /// one heartbeat (openraft's append timeout), or it is retried forever and nothing
    /// after it commits.
    pub max_entry_bytes: usize,
}

/// Most entries in one AppendEntries request.
const MAX_PAYLOAD_ENTRIES: u64 = 16;

/// Why a node could not start or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The sled database could not be opened or read.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// sled failed while opening.
    #[error("opening the database in {dir}: {source}")]
    Open {
        /// The database directory.
        dir: String,
        /// The cause.
        source: sled::Error,
    },
    /// The Raft configuration is invalid.
    #[error("raft config: {0}")]
    Config(String),
    /// Raft failed.
    #[error("raft: {0}")]
    Raft(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Why a write did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The state machine rejected the command; nothing changed.
    #[error(transparent)]
    Rejected(ApplyError),
    /// The cluster cannot commit now (no leader, this node is not the leader, shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// Raft stopped on an unrecoverable error (e.g. storage failure).
    #[error("{0}")]
    Fatal(String),
}

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

/// A running Raft node: cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    id: NodeId,
    info: NodeInfo,
    raft: Raft,
    state: Arc<RwLock<State>>,
    sm: StateMachineStore,
    log: LogStore,
    peers: PeerClient,
    secret: String,
    counters: Arc<NodeCounters>,
    stepping_down: Arc<std::sync::atomic::AtomicBool>,
    max_entry_bytes: usize,
}

/// Counters of this node's Raft handle, for metrics.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Writes this node forwarded to the leader.
    pub forwarded_writes: AtomicU64,
    /// Linearizable reads served through the leader's read index.
    pub forwarded_reads: AtomicU64,
    /// Times this node saw the Raft leader change.
    pub leader_changes: AtomicU64,
}

/// Counts leader changes until Raft shuts down (its metrics channel closes).
async fn count_leader_changes(raft: Raft, counters: Arc<NodeCounters>) {
    let mut rx = raft.metrics();
    let mut last = rx.borrow().current_leader;
    while rx.changed().await.is_ok() {
        let leader = rx.borrow().current_leader;
        if leader != last {
            counters.leader_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(from = ?last, to = ?leader, "raft leader changed");
            last = leader;
        }
    }
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Attempt {
    fn done(r: Result<CommandOutput, WriteError>) -> Self {
        Attempt::Done(Box::new(r))
    }
}

impl RaftNode {
    /// Opens (or creates) the node's storage and starts Raft. Does not join or bootstrap.
    pub async fn start(cfg: RaftNodeConfig) -> Result<Self, NodeError> {
        let dir = cfg.dir.clone();
        let db = tokio::task::spawn_blocking(move || sled::Config::new().path(&dir).open())
            .await?
            .map_err(|source| NodeError::Open {
                dir: cfg.dir.display().to_string(),
                source,
            })?;
        let log_store = LogStore::new(&db).map_err(|e| NodeError::Store(StoreError::from(e)))?;
        let peers = PeerClient::new(cfg.node_id, &cfg.secret, cfg.faults.clone())
            .map_err(|e| NodeError::Raft(format!("http client: {e}")))?;
        let sm = StateMachineStore::open(&db)?;
        let raft_config = Config {
            cluster_name: "colony".into(),
            heartbeat_interval: cfg.heartbeat_interval.as_millis() as u64,
            election_timeout_min: cfg.election_timeout_min.as_millis() as u64,
            election_timeout_max: cfg.election_timeout_max.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_after_logs),
            max_in_snapshot_log_to_keep: cfg.logs_kept_after_snapshot,
            // A catching-up follower gets at most this many entries per append: with
            // entries capped at max_entry_bytes, one append stays bounded (openraft's
            // default of 300 could make one request of hundreds of MB).
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::Config(e.to_string()))?;
        let state = sm.state();
        let raft = Raft::new(
            cfg.node_id,
            Arc::new(raft_config),
            HttpNetwork::new(peers.clone()),
            log_store.clone(),
            sm.clone(),
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let counters: Arc<NodeCounters> = Arc::default();
        tokio::spawn(count_leader_changes(raft.clone(), counters.clone()));
        Ok(Self {
            id: cfg.node_id,
            info: cfg.info,
            raft,
            state,
            sm,
            log: log_store,
            peers,
            secret: cfg.secret,
            counters,
            stepping_down: Arc::default(),
            max_entry_bytes: cfg.max_entry_bytes,
        })
    }

    /// Whether this node has ever been part of a cluster (has Raft state).
    pub async fn is_initialized(&self) -> Result<bool, NodeError> {
        self.raft
            .is_initialized()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))
    }

    /// Makes this node the single voter of a new cluster, if it has never been part of one.
    /// Returns whether it bootstrapped.
    pub async fn bootstrap_if_new(&self) -> Result<bool, NodeError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        if initialized {
            return Ok(false);
        }
        let members = BTreeMap::from([(self.id, self.info.clone())]);
        self.raft
            .initialize(members)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        Ok(true)
    }

    /// Waits until a leader is known and this node has applied the log up to what it had at
    /// start, or `timeout` passes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, NodeError> {
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        m.current_leader
            .ok_or_else(|| NodeError::Raft("no leader".into()))
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

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
                    | TransportError::Blocked(_)),
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

    /// The leader's id and internal address, from a hint or this node's view.
    fn leader_addr(&self, hint: Option<&LeaderHint>) -> Option<(NodeId, String)> {
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

    /// Before trying again: waits (at most 500 ms, and not past `deadline`) for a leader
    /// other than `failed` (or any leader when none was known); the same leader may just
    /// have been slow. `false` when the deadline has passed.
    async fn wait_for_other_leader(&self, failed: Option<NodeId>, deadline: Instant) -> bool {
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

    /// The router of this node's internal listener (Raft RPCs, forwarded writes).
    pub fn internal_router(&self, faults: Faults) -> axum::Router {
        server::router(InternalState {
            raft: self.raft.clone(),
            self_id: self.id,
            auth: wire::auth_token(&self.secret),
            faults,
            stepping_down: self.stepping_down.clone(),
        })
    }

    /// The openraft handle, for membership changes.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &NodeCounters {
        &self.counters
    }

    /// The fault switches of this node's transport.
    pub fn faults(&self) -> &Faults {
        self.peers.faults()
    }

    /// Runs `f` on the local applied state. Keep `f` short: it holds a read lock.
    pub fn read_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        // A poisoned lock only means a reader panicked; the state itself is consistent
        // because writers replace records whole.
        let guard = self.state.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// One page of audit entries matching `query`.
    pub async fn audit_page(&self, query: AuditQuery) -> Result<AuditPage, NodeError> {
        let sm = self.sm.clone();
        Ok(tokio::task::spawn_blocking(move || sm.audit_page(&query)).await??)
    }

    /// Up to `limit` case results of evaluation `id` from item index `from` on.
    pub async fn eval_results(
        &self,
        id: String,
        from: u32,
        limit: usize,
    ) -> Result<Vec<(u32, serde_json::Value)>, NodeError> {
        let sm = self.sm.clone();
        Ok(tokio::task::spawn_blocking(move || sm.eval_results(&id, from, limit)).await??)
    }

    /// Recomputes the audit chain from storage.
    pub async fn audit_verify(&self) -> Result<ChainReport, NodeError> {
        let sm = self.sm.clone();
        Ok(tokio::task::spawn_blocking(move || sm.audit_verify()).await??)
    }

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

    /// Asks Raft to build a snapshot now (it purges the log behind it).
    pub async fn trigger_snapshot(&self) -> Result<(), NodeError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))
    }

    /// Stops Raft and flushes storage to disk.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown reported an error");
        }
        let sm = self.sm.clone();
        tokio::task::spawn_blocking(move || sm.flush_blocking()).await??;
        Ok(())
    }
}
