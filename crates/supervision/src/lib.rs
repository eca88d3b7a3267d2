//! Supervision for every long-lived component of a node.
//!
//! - [`backoff`]: the one restart-with-backoff policy (pure), shared by the bucket and
//!   evaluation supervisors and by supervised tasks.
//! - [`component`]: a component's observable state (restarts, panics, last error and
//!   gauges such as queue depth), shaped after Quickwit's `ObservableState`: a small
//!   serializable struct that `/v1/cluster` shows and tests assert on.
//! - [`registry`]: the node's components, in start order.
//! - [`task`]: runs a tokio task under supervision, restarting it with backoff when it
//!   fails or panics, or, for a component that cannot be restarted in place, stopping the
//!   node so that its process supervisor restarts it.

pub mod backoff;
pub mod component;
pub mod registry;
pub mod task;

pub use backoff::{Backoff, Restarts, HEALTHY_RUN};
pub use component::{Component, ComponentKind, ComponentState, ComponentStatus, Gauges, LastError};
pub use registry::Components;
pub use task::{supervise, watch_fatal, Fatal, TaskOutcome};
