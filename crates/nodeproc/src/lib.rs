//! Real `colony` node processes and the HTTP client that drives them: the one process
//! harness of `tests/harness` (the `colony` package's integration tests), `benches/` and
//! `chaos/`.
//!
//! # Layout
//! - [`node`]: [`Spec`] (binary, tokens, overrides, environment, log lines kept), [`Node`]
//!   (one process on port-0 listeners whose bound addresses are read from its "colony node
//!   listening" log line, or restarted in place on given ones; readiness wait, signals,
//!   SIGTERM and a bounded wait for the exit, `kill -9`; killed when dropped), [`Addrs`]
//!   and [`Log`]
//! - [`http`]: a blocking HTTP client with bounded timeouts where error statuses are
//!   answers and only transport failures are errors (`benches/`, `chaos/` and the
//!   harness's readiness wait; the tests' own requests need headers and raw bodies and
//!   use `ureq` directly)
//! - [`view`]: reading a node's `/v1/cluster` answer
//! - `testsuite` (feature `testsuite`): fixtures shared by `tests/harness`, `benches/`
//!   and `chaos/`: a temporary directory, and `Nodes` (N nodes with their data dirs under
//!   one temporary directory, `kill -9`, restarts in place), which the clusters of
//!   `benches/` and `chaos/` are built on

pub mod http;
pub mod node;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod view;

pub use http::{Client, Reply, TransportError};
pub use node::{scrub_env, Addrs, Log, NoExit, Node, NotReady, SpawnError, Spec};
