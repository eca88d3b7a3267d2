//! Node-to-node transport over the internal HTTP listener (`raft.listen`).
//!
//! Raft RPCs (append, vote, snapshot chunks) and the internal calls a follower makes to the
//! leader (forwarded writes, read index) travel as rmp-serde maps in a versioned envelope.
//! Raft stays off the actor link (see DESIGN.md: snapshots would block routed requests).
//!
//! - [`wire`]: the envelope, the internal reply types, the auth header's name
//! - [`request_auth`]: without TLS, each request's HMAC (method, path, addressee, body
//!   digest, timestamp, nonce) and the replay window that refuses it a second time
//! - [`client`]: [`client::PeerClient`], every outgoing call with a timeout
//! - [`server`]: the axum router of the internal listener
//! - [`faults`]: test-only switches that drop traffic to or from chosen peers
//! - [`raft_network`]: openraft's network over [`client::PeerClient`]

pub mod client;
pub mod faults;
pub mod raft_network;
pub mod request_auth;
pub mod server;
pub mod wire;
