//! Colony's cluster layer.
//!
//! # Layout
//! - [`raft`]: openraft wiring: the type configuration, the sled-backed log store and state
//!   machine (with snapshots and log purge), and the network between Raft peers
//! - [`membership`]: SWIM membership (foca over UDP, HMAC-authenticated packets): who is
//!   alive, their addresses, version and state (joining, active, draining)
//! - [`transport`]: the internal HTTP listener and client: Raft RPCs, forwarded writes,
//!   read index, test-only fault injection
//! - [`voters`]: the leader's loop that adds joiners as learners, promotes them, and
//!   replaces voters that stay down
//! - [`actor_link`]: the actor transport (ractor_cluster): one session per peer, dialed and
//!   dropped as gossip membership changes; carries routed rate-limit checks
//! - [`node`]: [`RaftNode`], the handle the rest of the node uses to write commands, read
//!   state, query and verify the audit log, and watch Raft metrics

pub mod actor_link;
pub mod features;
pub mod membership;
pub mod node;
pub mod raft;
pub mod transport;
pub mod voters;

pub use node::{RaftNode, RaftNodeConfig, WriteError};
