//! [`RaftNode`]: the handle the rest of a Colony node uses for replicated state.
//!
//! Writes go through Raft (`client_write`) and return the state machine's answer; reads are
//! served from the local, applied state; audit queries and verification read sled on a
//! blocking thread so they never stall a tokio worker.

use crate::raft::log_store::LogStore;
use crate::raft::network::SingleNodeNetwork;
use crate::raft::state_machine::{StateMachineStore, StoreError};
use crate::raft::{NodeId, NodeInfo, Raft};
use colony_core::command::{ApplyError, CommandOutput, Proposal};
use colony_state::{ChainReport, State};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, SnapshotPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

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
}

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
    /// Index of the last applied entry.
    pub applied_index: Option<u64>,
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
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .finish_non_exhaustive()
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
        let sm = StateMachineStore::open(&db)?;
        let raft_config = Config {
            cluster_name: "colony".into(),
            heartbeat_interval: cfg.heartbeat_interval.as_millis() as u64,
            election_timeout_min: cfg.election_timeout_min.as_millis() as u64,
            election_timeout_max: cfg.election_timeout_max.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_after_logs),
            max_in_snapshot_log_to_keep: cfg.logs_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::Config(e.to_string()))?;
        let state = sm.state();
        let raft = Raft::new(
            cfg.node_id,
            Arc::new(raft_config),
            SingleNodeNetwork,
            log_store,
            sm.clone(),
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        Ok(Self {
            id: cfg.node_id,
            info: cfg.info,
            raft,
            state,
            sm,
        })
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

    /// Proposes a command and waits until it is committed and applied.
    pub async fn write(&self, proposal: Proposal) -> Result<CommandOutput, WriteError> {
        match self.raft.client_write(proposal).await {
            Ok(resp) => resp.data.map_err(WriteError::Rejected),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(WriteError::Unavailable(match f.leader_id {
                    Some(l) => format!("this node is not the Raft leader (leader is node {l})"),
                    None => "no Raft leader is known; retry shortly".to_string(),
                }))
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(WriteError::Unavailable(e.to_string()))
            }
            Err(RaftError::Fatal(f)) => Err(WriteError::Fatal(f.to_string())),
        }
    }

    /// Waits until this node has applied everything committed before the call (a read
    /// after it is linearizable). Only the leader can answer.
    pub async fn ensure_linearizable(&self) -> Result<(), WriteError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::Fatal(f)) => Err(WriteError::Fatal(f.to_string())),
            Err(RaftError::APIError(e)) => Err(WriteError::Unavailable(e.to_string())),
        }
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
        RaftStatus {
            node_id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            server_state: format!("{:?}", m.state),
            voters,
            learners,
            members,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
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
