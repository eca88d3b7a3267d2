//! [`RaftNode`]: the handle the rest of a Colony node uses for replicated state.
//!
//! Writes go through Raft (`client_write`) and return the state machine's answer; reads are
//! served from the local, applied state; audit queries and verification read sled on a
//! blocking thread so they never stall a tokio worker.
//!
//! # Layout
//! - this file: [`RaftNode`] itself, its configuration and errors, starting and stopping
//!   it, and the local reads (state, audit log, case results)
//! - [`write`]: the write path: proposing, forwarding to the leader, retrying while
//!   leadership changes
//! - [`read_index`]: linearizable reads: the leader's read index, asked for by followers
//! - [`leader`]: what both of those share: finding the leader, waiting for a new one,
//!   and handing leadership over on drain
//! - [`status`]: [`RaftStatus`], this node's view of Raft for `/v1/cluster` and metrics

mod leader;
mod read_index;
mod status;
mod write;

pub use crate::raft::state_machine::{AuditPage, AuditQuery};
pub use status::RaftStatus;

use crate::raft::log_store::LogStore;
use crate::raft::state_machine::{StateMachineStore, StoreError};
use crate::raft::{NodeId, NodeInfo, Raft};
use crate::transport::client::PeerClient;
use crate::transport::faults::Faults;
use crate::transport::raft_network::HttpNetwork;
use crate::transport::request_auth::RequestAuth;
use crate::transport::server::{self, InternalState};
use colony_core::command::ApplyError;
use colony_state::{ChainReport, State};
use openraft::{Config, SnapshotPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a write waits for a new leader while leadership changes.
pub const LEADER_CHANGE_WAIT: Duration = Duration::from_secs(3);

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
    /// The node-to-node TLS client (cluster CA, node certificate): with it, internal calls
    /// are HTTPS with mutual TLS and the internal listener must be served with
    /// `colony_tls::server::internal`.
    pub peer_tls: Option<colony_tls::rustls::ClientConfig>,
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
    /// Whether internal calls are mutual TLS (then no secret header is checked).
    mtls: bool,
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
        let peers = PeerClient::new(
            cfg.node_id,
            &cfg.secret,
            cfg.faults.clone(),
            cfg.peer_tls.as_ref(),
        )
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
            mtls: cfg.peer_tls.is_some(),
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

    /// The router of this node's internal listener (Raft RPCs, forwarded writes).
    pub fn internal_router(&self, faults: Faults) -> axum::Router {
        server::router(InternalState {
            raft: self.raft.clone(),
            self_id: self.id,
            auth: (!self.mtls).then(|| Arc::new(RequestAuth::new(&self.secret))),
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
