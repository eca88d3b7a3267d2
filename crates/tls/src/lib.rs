//! Colony's TLS, on rustls with the aws-lc-rs provider throughout.
//!
//! # Layout
//! - [`pem`]: bounded parsing of PEM certificates and keys (tenant-supplied CAs included)
//! - [`client`]: client configurations for calls out of the node: public endpoints
//!   against Mozilla's roots, private endpoints against a CA of their own
//! - [`certs`]: creating a CA, node and client certificates; checking chain and usage
//! - [`files`]: writing certificate and key files (keys 0600, never half-written)
//! - [`identity`]: a node's CA, certificate and key from its certs directory, checked,
//!   reloaded when the files change
//! - [`listener`]: a TLS listener for axum with bounded handshakes
//! - [`server`]: the public and internal (mutual) server configurations and the
//!   node-to-node client

pub mod certs;
pub mod client;
pub mod files;
pub mod identity;
pub mod listener;
pub mod pem;
pub mod server;

use std::sync::Arc;

/// The rustls this crate builds on, so users name the same types.
pub use rustls;

/// The crypto provider every configuration here uses (aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What went wrong building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input was not usable (what was wrong, never its bytes).
    #[error("{0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}
