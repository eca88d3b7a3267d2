//! Colony's replicated state machine logic, free of I/O so every replica computes the
//! same result from the same log and the logic can be tested on its own.
//!
//! # Layout
//! - [`machine`]: [`State`] and the deterministic `apply` of one proposal, returning the
//!   record changes and the audit entry for the storage layer to persist
//! - [`chain`]: verification of a stored audit hash chain

pub mod chain;
pub mod machine;

pub use chain::{verify_chain, AuditHead, ChainReport};
pub use machine::{Applied, Change, State};
