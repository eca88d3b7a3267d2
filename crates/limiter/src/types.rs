//! The types the shards, the handoff and the wire protocol share: bucket keys, check
//! items and their errors, and the answers of a pull.

use colony_ratelimit::{Algorithm, BucketState, Limit, LimitError};
use serde::{Deserialize, Serialize};

/// The key of a tenant's bucket `name`/`key`: `<len>:<tenant>/<len>:<name>/<key>`. The
/// lengths make it unambiguous whatever the parts contain, so two tenants never share a
/// bucket, and [`tenant_of_key`] reads the tenant back (the owner counts live buckets per
/// tenant with it).
pub fn tenant_bucket_key(tenant: &str, name: &str, key: &str) -> String {
    format!("{}:{tenant}/{}:{name}/{key}", tenant.len(), name.len())
}

/// The tenant of a key made by [`tenant_bucket_key`]; `None` for any other key (tier
/// buckets `tier/...`, test keys), which are not counted per tenant.
pub fn tenant_of_key(key: &str) -> Option<&str> {
    let (len, rest) = key.split_once(':')?;
    if len.is_empty() || len.len() > 20 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: usize = len.parse().ok()?;
    let tenant = rest.get(..len)?;
    rest.get(len..)?.starts_with('/').then_some(tenant)
}

/// One check request.
#[derive(Debug, Clone)]
pub struct CheckItem {
    /// Bucket key, already scoped (e.g. by tenant).
    pub key: String,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Limit.
    pub limit: Limit,
    /// Hits to take (0 peeks).
    pub hits: u64,
}

/// Why a check item has no decision.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BucketError {
    /// The limit is invalid for the algorithm.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// Too much work queued for the shard; retry shortly.
    #[error("the rate limiter is overloaded; retry shortly")]
    Overloaded,
    /// The shard did not answer in time (or was restarting).
    #[error("the rate limiter did not answer in time")]
    Unavailable,
    /// The bucket is owned by another node now (the caller sends the item there).
    #[error("the bucket moved to node {0}")]
    Moved(u64),
    /// The check would create a new bucket for a tenant that already has `live` live
    /// buckets on the bucket's owner node, and `max` is the most it may have there.
    #[error("tenant {tenant} has {live} live buckets on the node that owns this bucket, the most allowed (ratelimit.max_buckets_per_tenant = {max}): its existing buckets keep working, a new one is refused until others come to rest")]
    TooManyBuckets {
        /// The tenant.
        tenant: String,
        /// Its live buckets on the owner node.
        live: u64,
        /// `ratelimit.max_buckets_per_tenant` of the owner node.
        max: u64,
    },
}

/// A holder's answer when asked to release a bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullAnswer {
    /// Here is the state; the holder no longer serves the key.
    State(BucketState),
    /// The holder gave it to another node; ask there.
    Moved(u64),
    /// The holder has no state for the key (never had, or it was at rest).
    Unknown,
    /// The holder is itself fetching the key; ask again shortly.
    Busy,
}

/// What a pull found out.
#[derive(Debug, Clone, PartialEq)]
pub enum PullOutcome {
    /// A member held the state and released it to this node.
    Found(BucketState),
    /// Every member asked answered that it holds none (or was down): the caller continues
    /// from its replica or stale copy, or starts afresh.
    NotHeld,
    /// A live member could not be asked (no session, no answer in time) and may hold the
    /// state: the caller must not start the bucket now (its checks get `Unavailable`,
    /// and the next one pulls again).
    Unreachable,
}

/// Buckets with their keys, as they move between nodes.
pub type KeyedStates = Vec<(String, BucketState)>;
