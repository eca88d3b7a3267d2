//! Tenant tier limits: every tenant-authenticated request is charged to its tenant's tier
//! buckets before the handler runs, and every tenant response carries the IETF
//! `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
//!
//! The decisions without I/O (the limits in force, the buckets and their keys, costs, the
//! order buckets are charged in, which decision the fields report) are in
//! [`colony_tierpolicy`]; this module asks the limiter and answers the request.
//!
//! # Semantics
//! - One bucket per limit of the tenant's effective limits (the tier's, or the tenant's
//!   `overrides.limits`), algorithm `sliding_window`: never more than `limit` request
//!   units admitted in any `window_secs`-long interval (see `colony_ratelimit`'s
//!   sliding window for the exact bound on when a hit is forgotten).
//! - A request costs the weight of its route (`endpoint_weights`, by the stable route
//!   name given to [`enforce`]); unlisted routes cost 1.
//! - Buckets live on their owner node (`Limiter` routes each check there), so counts are
//!   exact cluster-wide whichever node the client calls, while membership is stable.
//! - A bucket's key is `tier/<tenant>/<window>s` (plus `/<n>` for a repeated window):
//!   it does not name the tier, so moving a tenant to another tier, or changing a limit,
//!   keeps what was already spent in that window instead of handing out a fresh quota.
//! - A request rejected by one limit consumes none of the others. With one limit the
//!   single check is enough (a rejection consumes nothing). With several, the buckets
//!   are first peeked (`hits: 0`, one batch); the ones that cannot take the cost are
//!   checked (charged) first, so a rejection there consumes nothing, and only when they
//!   all admit are the others charged. The remaining race: two concurrent requests of
//!   one tenant may both pass the peek and then one is rejected by a later bucket after
//!   an earlier one was charged — that over-consumes (never over-admits) by at most the
//!   cost of the concurrently rejected requests.
//! - Concurrency: at most `concurrency` requests of a tenant in flight. Each request takes
//!   a lease (`Limiter::acquire_lease`) at the tenant's owner node before its rate
//!   limits are charged, and gives it back when the handler returns (also when it fails
//!   or panics: a guard releases in `Drop`). A lease that is never released (the ingress
//!   node crashed, the owner was unreachable) expires after `ratelimit.lease_ttl_ms`.
//!   The lease covers the handler, not the streaming of the response body. Leases are
//!   not handed over when the owner changes (join, drain, crash): for one request
//!   duration after such a change a tenant may have up to twice its limit in flight.
//! - Tenants with `overrides.bypass_limits` are not limited (still authenticated).

use crate::auth::TenantCaller;
use crate::middleware::RequestId;
use crate::problem::{ErrorCode, Problem};
use crate::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use colony_limiter::{BucketError, CheckContext, CheckItem, LeaseGrant, LeaseOutcome, Limiter};
use colony_ratelimit::headers::{decision_status_item, retry_after_secs};
use colony_ratelimit::{Decision, Status};
use colony_tierpolicy::{charge_order, lease_key, longest_wait};
use tracing::Instrument;

// The pure policy (limits in force, buckets and their keys, costs, the charge order) lives
// in colony-tierpolicy; re-exported so `colony_api::tier_limits::Effective` etc. stay put.
pub use colony_tierpolicy::{most_constrained, policy_header, Effective, Policy};

/// `RateLimit-Policy`: every policy of the tenant.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// `RateLimit`: the status of the most constrained policy.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Route names for `endpoint_weights`: stable, independent of the URL layout.
pub mod route {
    /// `GET /v1/whoami`.
    pub const WHOAMI: &str = "whoami";
    /// `POST /v1/ratelimit/check`.
    pub const RATELIMIT_CHECK: &str = "ratelimit.check";
    /// `POST /v1/testing/sleep` (test-only).
    pub const TESTING_SLEEP: &str = "testing.sleep";
    /// `POST /v1/evaluations`.
    pub const EVALUATIONS_SUBMIT: &str = "evaluations.submit";
    /// `GET /v1/evaluations`, `GET /v1/evaluations/{id}`, `.../results`, `.../cancel`.
    pub const EVALUATIONS: &str = "evaluations";
    /// `GET /v1/usage`.
    pub const USAGE: &str = "usage";
    /// `/v1/credentials` and `/v1/credentials/{name}`.
    pub const CREDENTIALS: &str = "credentials";
}

/// The check of `hits` units against `policy`'s bucket.
fn check_item(policy: &Policy, hits: u64) -> CheckItem {
    CheckItem {
        key: policy.key.clone(),
        algorithm: colony_tierpolicy::ALGORITHM,
        limit: policy.bucket_limit(),
        hits,
    }
}

/// Checks `idx` of `policies` with `hits` each in one routed batch; stores the decisions.
/// Returns the index of the violated policy (the one with the longest wait) if any.
async fn charge(
    app: &AppState,
    ctx: &CheckContext,
    policies: &[Policy],
    idx: &[usize],
    hits: u64,
    decisions: &mut [Option<Decision>],
) -> Result<Option<usize>, Problem> {
    if idx.is_empty() {
        return Ok(None);
    }
    let items = idx
        .iter()
        .map(|&i| check_item(&policies[i], hits))
        .collect();
    let results = app.limiter.check(ctx, items).await;
    let mut checked: Vec<(usize, Decision)> = Vec::with_capacity(idx.len());
    for (&i, r) in idx.iter().zip(results) {
        match r {
            Ok(d) => {
                checked.push((i, d));
                decisions[i] = Some(d);
            }
            Err(BucketError::Limit(e)) => {
                // Tier values are validated on write, so this is a bug; refuse loudly.
                tracing::error!(policy = %policies[i].name, error = %e, "tier limit rejected by the limiter");
                return Err(Problem::new(
                    ErrorCode::Internal,
                    "a tier limit could not be applied; see the node's log",
                ));
            }
            Err(
                BucketError::Overloaded
                | BucketError::Unavailable
                | BucketError::Moved(_)
                | BucketError::TooManyBuckets { .. },
            ) => {
                // Fail closed: an unlimited tenant is worse than a short retry.
                return Err(Problem::new(
                    ErrorCode::Unavailable,
                    "the rate limiter is overloaded or restarting; retry shortly",
                )
                .with_retry_after(1));
            }
        }
    }
    Ok(longest_wait(&checked))
}

/// Outcome of charging a request to its tenant's policies.
#[derive(Debug)]
pub enum Verdict {
    /// Admitted; the decisions of every policy, in policy order.
    Admitted(Vec<Decision>),
    /// Rejected by `policies[violated]`; `decisions` as far as known.
    Rejected {
        /// Index of the violated policy.
        violated: usize,
        /// Decision of the violated policy.
        decision: Decision,
    },
}

/// Charges `cost` to every policy, or to none when one of them refuses (see the module
/// docs for the one race that over-consumes).
pub async fn admit(
    app: &AppState,
    ctx: &CheckContext,
    policies: &[Policy],
    cost: u64,
) -> Result<Verdict, Problem> {
    let n = policies.len();
    let mut decisions: Vec<Option<Decision>> = vec![None; n];
    let all: Vec<usize> = (0..n).collect();
    let phases: Vec<Vec<usize>> = if n <= 1 {
        vec![all]
    } else {
        charge(app, ctx, policies, &all, 0, &mut decisions).await?;
        // Buckets that cannot take the cost go first: their rejection consumes nothing.
        charge_order(&decisions, cost)
    };
    for phase in phases {
        if let Some(v) = charge(app, ctx, policies, &phase, cost, &mut decisions).await? {
            let decision = decisions[v].unwrap_or(Decision {
                status: Status::OverLimit,
                limit: policies[v].limit,
                remaining: 0,
                reset_after_ms: 1000,
            });
            return Ok(Verdict::Rejected {
                violated: v,
                decision,
            });
        }
    }
    let decisions: Option<Vec<Decision>> = decisions.into_iter().collect();
    decisions.map(Verdict::Admitted).ok_or_else(|| {
        Problem::new(
            ErrorCode::Internal,
            "a tier limit gave no decision; see the node's log",
        )
    })
}

fn set_header(resp: &mut Response, name: &HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name.clone(), v);
    }
}

/// The 429 for a request rejected by `policy`.
pub fn rejection(policies: &[Policy], violated: usize, decision: &Decision, cost: u64) -> Response {
    let p = &policies[violated];
    let retry = retry_after_secs(decision).unwrap_or(1);
    let mut problem = Problem::new(
        ErrorCode::TooManyRequests,
        format!(
            "tier limit {:?} ({} units per {} s) is exhausted: this request costs {cost}, {} left; retry in {retry} s",
            p.name, p.limit, p.window_secs, decision.remaining
        ),
    )
    .with_retry_after(retry);
    problem.policy = Some(p.name.clone());
    let mut resp = problem.into_response();
    set_header(&mut resp, &RATELIMIT_POLICY, &policy_header(policies));
    set_header(
        &mut resp,
        &RATELIMIT,
        &decision_status_item(&p.name, decision),
    );
    resp
}

/// Middleware on each tenant route (`route` is its stable name): authenticates the
/// tenant, charges the request to its tier buckets, answers 429 when a limit is
/// exhausted, and sets the RateLimit fields on the response.
pub async fn enforce(
    State((app, route)): State<(AppState, &'static str)>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let caller = match TenantCaller::from_request_parts(&mut parts, &app).await {
        Ok(c) => c,
        Err(rejection) => return rejection.into_response(),
    };
    // Everything from here on (this layer's checks and the handler) logs with the tenant.
    // A child span rather than recording the field on the request span: the JSON log
    // format re-parses and re-writes a span's fields on every late `record`.
    let span = tracing::info_span!("tenant", tenant = %caller.tenant.id);
    charge_and_run(app, route, caller, parts, body, next)
        .instrument(span)
        .await
}

/// The rest of [`enforce`], for an authenticated caller.
async fn charge_and_run(
    app: AppState,
    route: &'static str,
    caller: TenantCaller,
    mut parts: axum::http::request::Parts,
    body: axum::body::Body,
    next: Next,
) -> Response {
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    // Computed inside the read: the tier is not cloned, only what the limits need.
    let eff = app
        .raft
        .read_state(|s| Effective::of(&caller.tenant, s.tiers.get(&caller.tenant.tier)));
    let tenant_id = caller.tenant.id.clone();
    parts.extensions.insert(caller);
    let req = Request::from_parts(parts, body);
    if eff.bypass_limits {
        return next.run(req).await;
    }
    let ctx = CheckContext {
        request_id,
        tenant_id,
    };
    // Held until this function returns: the handler has finished (or panicked) by then.
    let _lease = match eff.concurrency {
        None => None,
        Some(limit) => match lease(&app, &ctx, &ctx.tenant_id, limit).await {
            Ok(guard) => Some(guard),
            Err(outcome) => {
                return concurrency_rejection(&eff.concurrency_policy, limit, outcome);
            }
        },
    };
    let policies = eff.policies(&ctx.tenant_id);
    if policies.is_empty() {
        return next.run(req).await;
    }
    let cost = eff.cost(route);
    let decisions = match admit(&app, &ctx, &policies, cost).await {
        Err(problem) => return problem.into_response(),
        Ok(Verdict::Rejected { violated, decision }) => {
            tracing::info!(policy = %policies[violated].name, route, "tier limit exhausted");
            return rejection(&policies, violated, &decision, cost);
        }
        Ok(Verdict::Admitted(d)) => d,
    };
    let mut resp = next.run(req).await;
    set_header(&mut resp, &RATELIMIT_POLICY, &policy_header(&policies));
    if let Some(i) = most_constrained(&decisions) {
        set_header(
            &mut resp,
            &RATELIMIT,
            &decision_status_item(&policies[i].name, &decisions[i]),
        );
    }
    resp
}

/// Gives a concurrency lease back when dropped: after the handler returned, failed or
/// panicked. The release is a remote call, so it runs in a spawned task.
#[derive(Debug)]
struct LeaseGuard {
    limiter: Limiter,
    ctx: CheckContext,
    grant: Option<LeaseGrant>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Some(grant) = self.grant.take() else {
            return;
        };
        let (limiter, ctx) = (self.limiter.clone(), self.ctx.clone());
        // Outside a runtime (never expected) the lease simply expires after its TTL.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { limiter.release_lease(&ctx, &grant).await });
        }
    }
}

/// Why no lease was granted.
enum LeaseRefusal {
    /// `limit` requests are in flight.
    Full(LeaseOutcome),
    /// The owner could not be asked.
    Unavailable,
}

/// Takes one of the tenant's `limit` concurrency slots at its owner node.
async fn lease(
    app: &AppState,
    ctx: &CheckContext,
    tenant_id: &str,
    limit: u32,
) -> Result<LeaseGuard, LeaseRefusal> {
    let key = lease_key(tenant_id);
    // Random, not the request id: a client picks its request ids, and a shared lease id
    // would renew one slot instead of taking a second.
    let lease_id = colony_core::ids::random_request_id();
    match app
        .limiter
        .acquire_lease(ctx, &key, &lease_id, limit, app.settings.lease_ttl)
        .await
    {
        Ok(Ok(grant)) => Ok(LeaseGuard {
            limiter: app.limiter.clone(),
            ctx: ctx.clone(),
            grant: Some(grant),
        }),
        Ok(Err(outcome)) => Err(LeaseRefusal::Full(outcome)),
        Err(_) => Err(LeaseRefusal::Unavailable),
    }
}

/// The 429 (or 503) for a request refused a concurrency slot.
fn concurrency_rejection(policy: &str, limit: u32, refusal: LeaseRefusal) -> Response {
    let in_flight = match refusal {
        LeaseRefusal::Unavailable => {
            // Fail closed, as for rate limits.
            return Problem::new(
                ErrorCode::Unavailable,
                "the concurrency limiter cannot be reached; retry shortly",
            )
            .with_retry_after(1)
            .into_response();
        }
        LeaseRefusal::Full(LeaseOutcome::Full { in_flight, .. }) => in_flight,
        LeaseRefusal::Full(_) => limit,
    };
    let mut problem = Problem::new(
        ErrorCode::TooManyRequests,
        format!(
            "concurrency limit {policy:?} reached: {in_flight} of {limit} requests of this tenant are in flight; retry when one finishes"
        ),
    )
    // Slots free up when requests finish, usually well within a second.
    .with_retry_after(1);
    problem.policy = Some(policy.to_string());
    problem.into_response()
}
