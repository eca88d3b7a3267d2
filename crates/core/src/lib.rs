//! Colony's shared domain types. Pure data and pure functions: no I/O (the one impure
//! item is [`clock::now_ms`], the wall clock).
//!
//! # Layout
//! - [`clock`]: the wall clock in milliseconds (the one `now_ms` of the workspace)
//! - [`ids`]: identifier generation and validation (tenant ids, key ids, request ids)
//! - [`tier`]: rate-limit tiers and the defaults a new cluster starts with
//! - [`tenant`]: tenants and their per-tenant overrides
//! - [`apikey`]: API key secrets, their hashes and constant-time checks
//! - [`audit`]: audit entries and the canonical bytes the hash chain is computed over
//! - [`command`]: the versioned Raft commands and what applying them returns
//! - [`versioned`]: the one versioning mechanism of persisted and wire formats (a
//!   [`Migrate`](versioned::Migrate) trait after Garage's: version, previous format,
//!   migration, decode with fallback)
//! - [`evaluation`]: evaluation records, checkpoint items, usage totals, money as nanos
//! - [`pricing`]: model prices per 1000 tokens
//! - [`credential`]: provider credentials as named objects, sealed with the cluster's key

pub mod apikey;
pub mod audit;
pub mod clock;
pub mod command;
pub mod credential;
pub mod evaluation;
pub mod ids;
pub mod pricing;
pub mod tenant;
pub mod tier;
pub mod versioned;
