//! Colony's cluster layer.
//!
//! # Layout
//! - [`raft`]: openraft wiring: the type configuration, the sled-backed log store and state
//!   machine (with snapshots and log purge), and the network between Raft peers
//! - [`node`]: [`RaftNode`], the handle the rest of the node uses to write commands, read
//!   state, query and verify the audit log, and watch Raft metrics

pub mod node;
pub mod raft;

pub use node::{RaftNode, RaftNodeConfig, WriteError};
