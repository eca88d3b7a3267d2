//! Real `colony` node processes for `benches/` and `chaos/`, started the way
//! `tests/harness` starts them, and the HTTP client both drive them with.
//!
//! # Layout
//! - [`node`]: [`Spec`] (binary, tokens, overrides), [`Node`] (one process on port-0
//!   listeners whose bound addresses are read from its "colony node listening" log line;
//!   killed when dropped) and [`Addrs`]
//! - [`http`]: a blocking HTTP client with bounded timeouts where error statuses are
//!   answers and only transport failures are errors
//! - [`view`]: reading a node's `/v1/cluster` answer

pub mod http;
pub mod node;
pub mod view;

pub use http::{Client, Reply, TransportError};
pub use node::{Addrs, Node, NotReady, SpawnError, Spec};
