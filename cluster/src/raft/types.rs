//! The openraft type configuration for Colony.

use colony_core::command::{CommandResult, Proposal};
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// A Raft node id (random, stored in the data dir, stable across restarts).
pub type NodeId = u64;

/// What the cluster knows about a Raft member: where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Address of the node's Raft listener.
    #[serde(default)]
    pub raft_addr: String,
    /// Address of the node's public HTTP listener.
    #[serde(default)]
    pub http_addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "raft={} http={}", self.raft_addr, self.http_addr)
    }
}

openraft::declare_raft_types!(
    /// Colony's Raft types: proposals in, command results out.
    pub TypeConfig:
        D = Proposal,
        R = CommandResult,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle with Colony's types.
pub type Raft = openraft::Raft<TypeConfig>;
