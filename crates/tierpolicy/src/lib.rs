//! Colony's tenant tier policy: the decisions behind tier limits, as pure functions. No
//! I/O, no clock, no runtime: the HTTP middleware (`colony_api::tier_limits`) asks the
//! limiter and the state machine, and this crate says what to ask and what the answers
//! mean.
//!
//! # Semantics
//! - A tenant's limits are its tier's, or its own `overrides` ([`Effective::of`]).
//! - One bucket per limit, algorithm [`ALGORITHM`] (sliding window): never more than
//!   `limit` request units admitted in any `window_secs`-long interval.
//! - A request costs the weight of its route ([`Effective::cost`]); unlisted routes cost 1.
//! - A bucket's key is `tier/<tenant>/<window>s` (plus `/<n>` for a repeated window): it
//!   does not name the tier, so moving a tenant to another tier, or changing a limit,
//!   keeps what was already spent in that window ([`Effective::policies`]).
//! - With several limits, the buckets that cannot take the cost are charged first, so a
//!   rejection consumes nothing ([`charge_order`]); a refusal reports the violated limit
//!   with the longest wait ([`longest_wait`]), an admission the most constrained one
//!   ([`most_constrained`]).
//!
//! # Layout
//! - [`effective`]: [`Effective`], the limits in force for a tenant, and its policies
//! - [`policy`]: [`Policy`], one limit as a bucket; the bucket and lease keys and the
//!   `RateLimit-Policy` value
//! - [`decide`]: the order buckets are charged in, and which decision is reported

pub mod decide;
pub mod effective;
pub mod policy;

pub use decide::{charge_order, longest_wait, most_constrained};
pub use effective::Effective;
pub use policy::{lease_key, policy_header, Policy, ALGORITHM};
