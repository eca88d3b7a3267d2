//! Colony's supervised actors (ractor).
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
//!   transport, and its frozen wire protocol
//! - [`routing`]: [`routing::Limiter`], which sends each check to its bucket's owner node
//! - [`ownership`]: [`ownership::ViewHistory`], who owns a bucket now and in the recent
//!   past by this node's member views (pure)
//! - [`handoff`]: [`handoff::Handoff`], moving bucket state between nodes: handoff on
//!   ownership changes (exact) and replication to the successor (bounded loss on a crash)

pub mod bucket_shard;
pub mod buckets;
pub mod handoff;
pub mod leases;
pub mod ownership;
pub mod router;
pub mod routing;

pub use buckets::{
    tenant_bucket_key, tenant_of_key, BucketError, Buckets, BucketsConfig, CheckItem,
    DEFAULT_MAX_BUCKETS_PER_TENANT,
};
pub use handoff::{Handoff, HandoffConfig, HandoffCounters};
pub use leases::{LeaseOutcome, LeaseTable, Leases};
pub use router::{LeaseOp, Router, RouterArgs, RouterMsg, ROUTER_GROUP, ROUTER_SCOPE};
pub use routing::{CheckContext, ClusterView, LeaseGrant, Limiter, LimiterConfig};
