//! [`Policy`]: one limit of a tenant, as a bucket and as an IETF policy; the keys of the
//! tenant's buckets and concurrency lease, and the `RateLimit-Policy` value.

use colony_ratelimit::headers::{join_items, policy_item};
use colony_ratelimit::{Algorithm, Limit};

/// The algorithm of every tier bucket: a sliding window admits at most `limit` units in
/// any `window_secs`-long interval.
pub const ALGORITHM: Algorithm = Algorithm::SlidingWindow;

/// One limit of a tenant, as a bucket and as an IETF policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Name in `RateLimit-Policy`, `RateLimit` and the 429 body.
    pub name: String,
    /// Bucket key (prefixed `tier/`, which never collides with the tenant-scoped keys of
    /// `POST /v1/ratelimit/check`: those start with a length).
    pub key: String,
    /// Units per window.
    pub limit: u64,
    /// Window in seconds.
    pub window_secs: u64,
}

impl Policy {
    /// The bucket's limit as the rate limiter takes it (no burst).
    pub fn bucket_limit(&self) -> Limit {
        Limit {
            limit: self.limit,
            duration_ms: self.window_secs.saturating_mul(1000),
            burst: None,
        }
    }
}

/// The `RateLimit-Policy` value for `policies`.
pub fn policy_header(policies: &[Policy]) -> String {
    join_items(
        policies
            .iter()
            .map(|p| policy_item(&p.name, p.limit, p.window_secs.max(1))),
    )
}

/// The key of a tenant's concurrency lease (one per tenant, at the tenant's owner node).
pub fn lease_key(tenant_id: &str) -> String {
    format!("lease/{}:{tenant_id}", tenant_id.len())
}
