//! `POST /v1/ratelimit/check`: Gubernator-style batch checks of rate-limit buckets.
//!
//! Buckets are scoped to the caller's tenant: two tenants using the same name and key never
//! share a bucket. Each item gets its own answer (or its own error) in request order.
//!
//! Each item is checked on the node that owns its bucket (see `colony_limiter::limiter`), so
//! a bucket's count is exact cluster-wide whichever node the client calls, while membership
//! is stable.
//!
//! Caps against a hostile tenant, each answered as that item's `error`:
//! - `duration_ms` at most `ratelimit.max_duration_ms` (`ApiSettings::max_duration_ms`),
//!   checked here before anything is routed, so every bucket without a burst above its
//!   limit is back at rest, and forgotten, within that long of its last hit;
//! - at most `ratelimit.max_buckets_per_tenant` live buckets per tenant on the owner node,
//!   enforced by the owner when a check would create a bucket
//!   (`colony_limiter::BucketError::TooManyBuckets`).

use crate::auth::TenantCaller;
use crate::extract::ApiJson;
use crate::middleware::RequestId;
use crate::problem::{ApiResult, ErrorCode, Problem};
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use colony_limiter::{tenant_bucket_key, BucketError, CheckContext, CheckItem};
use colony_ratelimit::{Algorithm, Limit, Status};
use serde::{Deserialize, Serialize};

/// Most items in one batch.
pub const MAX_ITEMS: usize = 1000;

/// Longest name or key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// Body of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    requests: Vec<ItemBody>,
}

fn one() -> u64 {
    1
}

/// One item of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    name: String,
    key: String,
    /// Hits to take; 0 peeks without charging. Default 1.
    #[serde(default = "one")]
    hits: u64,
    limit: u64,
    duration_ms: u64,
    #[serde(default)]
    burst: Option<u64>,
    /// Default `token_bucket`.
    #[serde(default)]
    algorithm: Option<Algorithm>,
}

/// One answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ItemAnswer {
    /// A decision.
    Decision {
        /// `under_limit` or `over_limit`.
        status: Status,
        /// The limit.
        limit: u64,
        /// Hits left.
        remaining: u64,
        /// Milliseconds until the bucket is back at rest (or, when over, until the request fits).
        reset_after_ms: u64,
    },
    /// This item alone failed.
    Error {
        /// What was wrong.
        error: String,
    },
}

/// Answer of a check.
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    responses: Vec<ItemAnswer>,
}

/// The tenant-scoped bucket key; lengths make it unambiguous whatever the parts contain,
/// and the owner reads the tenant back from it to count the tenant's live buckets.
fn bucket_key(tenant: &str, name: &str, key: &str) -> String {
    tenant_bucket_key(tenant, name, key)
}

/// Refuses a `duration_ms` over the node's cap: such a bucket would take longer than the
/// cap to come back to rest, so it could not be forgotten for that long.
fn check_duration(duration_ms: u64, max_duration_ms: u64) -> Result<(), String> {
    if duration_ms > max_duration_ms {
        return Err(format!(
            "duration_ms must be at most {max_duration_ms} (ratelimit.max_duration_ms), got {duration_ms}"
        ));
    }
    Ok(())
}

fn check_text(field: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if v.len() > MAX_KEY_BYTES {
        return Err(format!("{field} must be at most {MAX_KEY_BYTES} bytes"));
    }
    Ok(())
}

/// Checks a batch of buckets for the caller's tenant.
pub async fn check(
    caller: TenantCaller,
    State(app): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    ApiJson(body): ApiJson<CheckBody>,
) -> ApiResult<Json<CheckAnswer>> {
    if body.requests.is_empty() || body.requests.len() > MAX_ITEMS {
        return Err(Problem::invalid_field(
            "/requests",
            format!("must hold 1 to {MAX_ITEMS} items"),
        ));
    }
    let tenant = caller.tenant.id.as_str();
    let max_duration_ms = app.settings.max_duration_ms;
    let mut answers: Vec<Option<ItemAnswer>> = Vec::with_capacity(body.requests.len());
    let mut items = Vec::new();
    let mut positions = Vec::new();
    for (i, it) in body.requests.into_iter().enumerate() {
        if let Err(e) = check_text("name", &it.name)
            .and_then(|_| check_text("key", &it.key))
            .and_then(|_| check_duration(it.duration_ms, max_duration_ms))
        {
            answers.push(Some(ItemAnswer::Error { error: e }));
            continue;
        }
        answers.push(None);
        positions.push(i);
        items.push(CheckItem {
            key: bucket_key(tenant, &it.name, &it.key),
            algorithm: it.algorithm.unwrap_or(Algorithm::TokenBucket),
            limit: Limit {
                limit: it.limit,
                duration_ms: it.duration_ms,
                burst: it.burst,
            },
            hits: it.hits,
        });
    }
    let ctx = CheckContext {
        request_id: request_id
            .map(|Extension(RequestId(id))| id)
            .unwrap_or_default(),
        tenant_id: tenant.to_string(),
    };
    let results = app.limiter.check(&ctx, items).await;
    let all_unavailable = !results.is_empty()
        && results
            .iter()
            .all(|r| matches!(r, Err(BucketError::Overloaded | BucketError::Unavailable)));
    if all_unavailable {
        return Err(Problem::new(
            ErrorCode::Unavailable,
            "the rate limiter is overloaded or restarting; retry shortly",
        )
        .with_retry_after(1));
    }
    for (pos, r) in positions.into_iter().zip(results) {
        answers[pos] = Some(match r {
            Ok(d) => ItemAnswer::Decision {
                status: d.status,
                limit: d.limit,
                remaining: d.remaining,
                reset_after_ms: d.reset_after_ms,
            },
            Err(e) => ItemAnswer::Error {
                error: e.to_string(),
            },
        });
    }
    let responses = answers
        .into_iter()
        .map(|a| {
            a.unwrap_or(ItemAnswer::Error {
                error: "not checked".into(),
            })
        })
        .collect();
    Ok(Json(CheckAnswer { responses }))
}

#[cfg(test)]
mod tests {
    use super::{bucket_key, check_duration};

    #[test]
    fn durations_over_the_cap_are_refused_naming_the_field_and_the_key() {
        assert!(check_duration(86_400_000, 86_400_000).is_ok());
        assert!(check_duration(1, 86_400_000).is_ok());
        for d in [86_400_001, u64::MAX] {
            let e = check_duration(d, 86_400_000).unwrap_err();
            assert!(e.starts_with("duration_ms must be at most 86400000"), "{e}");
            assert!(e.contains("ratelimit.max_duration_ms"), "{e}");
        }
    }

    #[test]
    fn the_owner_reads_the_tenant_back_from_the_key() {
        for (t, n, k) in [("acme", "n", "k"), ("a/1:b", "c", "d"), ("t", "x/y", "")] {
            assert_eq!(colony_limiter::tenant_of_key(&bucket_key(t, n, k)), Some(t));
        }
        assert_eq!(
            bucket_key("acme", "n", "k"),
            "4:acme/1:n/k",
            "the wire format is kept"
        );
    }

    #[test]
    fn bucket_keys_are_unambiguous_and_tenant_scoped() {
        assert_ne!(bucket_key("a", "b/c", "d"), bucket_key("a", "b", "c/d"));
        assert_ne!(bucket_key("t1", "n", "k"), bucket_key("t2", "n", "k"));
        assert_ne!(bucket_key("a/1:b", "c", "d"), bucket_key("a", "1:b/c", "d"));
    }
}
