//! openraft wiring: types and sled storage (the network is [`crate::transport::raft_network`]).
//!
//! Everything lives in one sled database in the node's data dir:
//! - tree `raft_log`: log entries by index (8-byte big-endian) -> rmp-serde `Entry`
//! - tree `raft_meta`: `vote`, `committed`, `last_purged`
//! - tree `sm`: state machine records (see [`state_machine`]) and the audit log
//! - tree `snapshot`: the current snapshot's meta and bytes

pub mod log_store;
pub(crate) mod quorum;
pub mod state_machine;
pub mod types;

pub use types::{NodeId, NodeInfo, Raft, TypeConfig};
