//! Colony's replicated state machine logic, free of I/O so every replica computes the
//! same result from the same log and the logic can be tested on its own.
//!
//! # Layout
//! - [`machine`]: [`State`] and the deterministic `apply` of one proposal, returning the
//!   record changes and the audit entry for the storage layer to persist
//! - [`chain`]: verification of a stored audit hash chain
//! - `evaluations` (private): the evaluation commands' apply: submission, epoch-checked
//!   checkpoints (each result recorded once), reassignment, cancel, budgets and usage

pub mod chain;
mod evaluations;
pub mod machine;

pub use chain::{verify_chain, AuditHead, ChainReport};
pub use evaluations::SOFT_BUDGET_RATIO;
pub use machine::{Applied, Change, State, UsageKey};
