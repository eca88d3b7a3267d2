//! Colony's evaluation runtime: runs the evaluations the state machine assigns to this
//! node and keeps assignments alive when nodes go away.
//!
//! # Layout
//! - [`assign`]: who runs an evaluation first, and the leader's reassignments (pure)
//! - [`credentials`]: what a spec's `"credential": "name"` stands for (tenant's sealed
//!   credential or an operator one meant for the tenant)
//! - [`providers`]: a spec's provider as a `colony-providers` client configuration
//! - [`run`]: one evaluation at one epoch: the cases not yet recorded, run with bounded
//!   concurrency, scored, and checkpointed through Raft in batches
//! - [`actors`]: the supervision tree `EvalSupervisor → Tenant(t) → Evaluation(e)`;
//!   a failed Evaluation actor is restarted with backoff (it resumes from its checkpoint)
//! - [`scheduler`]: the loop that reconciles running actors with the state machine, and
//!   (on the Raft leader) reassigns evaluations of owners that are gone or draining
//! - [`counters`]: what `/metrics` reports

pub mod actors;
pub mod assign;
pub mod counters;
pub mod credentials;
pub mod providers;
pub mod run;
pub mod scheduler;

pub use counters::EvalCounters;
pub use credentials::{Credentials, OperatorCredential};
pub use run::{RunContext, RunLimits, RunSettings};
pub use scheduler::{Evaluator, EvaluatorConfig};
