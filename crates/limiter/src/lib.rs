//! Colony's cluster-wide rate-limit runtime (ractor actors and the routing around them).
//!
//! # Layout
//! - [`bucket_shard`]: [`bucket_shard::BucketShard`], one actor holding the rate-limit buckets
//!   whose keys hash to it (an actor per bucket would cost ~11 KB each: a million keys would
//!   not fit; a shard keeps a bucket at ~100 bytes); the shards of a node count live buckets
//!   per tenant and refuse a tenant's new bucket past `max_buckets_per_tenant`
//! - [`buckets`]: the bucket supervisor (restarts a failed shard with backoff and counts it)
//!   and [`buckets::Buckets`], the handle that splits a batch by shard, bounds in-flight work
//!   and times every call out
//! - [`leases`]: [`leases::LeaseTable`], the per-tenant concurrency leases (with a TTL) a
//!   tenant's owner node holds
//! - [`router`]: [`router::Router`], the one actor per node that peers reach over the actor
//!   transport
//! - [`wire`]: its frozen node-to-node protocol ([`wire::RouterMsg`] and the payloads)
//! - [`limiter`]: [`limiter::Limiter`], which sends each check to its bucket's owner node
//! - [`view`]: [`view::ClusterView`], what the runtime asks of the cluster (implemented by
//!   the node over gossip and the actor transport)
//! - [`types`]: bucket keys, check items and errors, pull answers: what the modules share
//! - [`ownership`]: [`ownership::ViewHistory`], who owns a bucket now and in the recent
//!   past by this node's member views (pure)
//! - [`handoff`]: [`handoff::Handoff`], moving bucket state between nodes: handoff on
//!   ownership changes (exact) and replication to the successor (bounded loss on a crash)
//!
//! The modules depend on each other without cycles: `types`, `view`, `ownership` and
//! `leases` at the bottom; `wire` on those; `handoff` on `wire` (it drives the bucket store
//! through its [`handoff::BucketStore`] trait); `bucket_shard` and `buckets` on `handoff`;
//! `router` and `limiter` on top.

pub mod bucket_shard;
pub mod buckets;
pub mod handoff;
pub mod leases;
pub mod limiter;
pub mod ownership;
pub mod router;
pub mod types;
pub mod view;
pub mod wire;

#[cfg(test)]
mod tests;

pub use buckets::{Buckets, BucketsConfig, DEFAULT_MAX_BUCKETS_PER_TENANT};
pub use handoff::{BucketStore, Handoff, HandoffConfig, HandoffCounters};
pub use leases::{LeaseOp, LeaseOutcome, LeaseTable, Leases};
pub use limiter::{CheckContext, LeaseGrant, Limiter, LimiterConfig};
pub use router::{Router, RouterArgs, ROUTER_GROUP, ROUTER_SCOPE};
pub use types::{tenant_bucket_key, tenant_of_key, BucketError, CheckItem};
pub use view::ClusterView;
pub use wire::RouterMsg;
