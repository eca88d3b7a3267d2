//! `GET, PUT /v1/testing/faults` (admin): test-only partitions without root, and
//! `POST /v1/testing/panic` (admin): makes actors panic to show supervision restarts them,
//! and `POST /v1/testing/sleep` (tenant): a slow tenant request, to test concurrency limits.
//!
//! Exists only when the node runs with `cluster.fault_injection = true` (off by default);
//! otherwise it answers 404. Blocking a peer drops this node's Raft and forwarding traffic
//! to (`block_out`) or from (`block_in`) it, and all gossip with it. `delay_ms` and
//! `loss_percent` slow down and randomly drop every Raft RPC and gossip datagram this node
//! sends (routed checks over the actor transport are not impaired).

use crate::auth::{Admin, TenantCaller};
use crate::extract::ApiJson;
use crate::problem::{ApiResult, ErrorCode, Problem};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use colony_cluster::transport::faults::FaultSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Body of `PUT /v1/testing/faults`: node ids (as strings) to cut off, and the impairment
/// of what this node sends.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsBody {
    #[serde(default)]
    block_out: Vec<String>,
    #[serde(default)]
    block_in: Vec<String>,
    /// Added to every Raft RPC and gossip datagram this node sends (at most
    /// [`MAX_DELAY_MS`]).
    #[serde(default)]
    delay_ms: u64,
    /// Share of them dropped at random, 0–100.
    #[serde(default)]
    loss_percent: u8,
}

/// Largest `delay_ms` accepted: beyond it every Raft RPC times out anyway.
pub const MAX_DELAY_MS: u64 = 10_000;

fn disabled() -> Problem {
    Problem::new(
        ErrorCode::NotFound,
        "fault injection is disabled on this node (config key cluster.fault_injection)",
    )
}

fn parse_ids(ids: &[String], field: &str) -> ApiResult<BTreeSet<u64>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            id.parse::<u64>()
                .map_err(|_| Problem::invalid_field(format!("/{field}/{i}"), "not a node id"))
        })
        .collect()
}

fn view(set: &FaultSet) -> FaultsBody {
    FaultsBody {
        block_out: set.block_out.iter().map(u64::to_string).collect(),
        block_in: set.block_in.iter().map(u64::to_string).collect(),
        delay_ms: set.delay_ms,
        loss_percent: set.loss_percent,
    }
}

/// The current fault set.
pub async fn get_faults(_: Admin, State(app): State<AppState>) -> ApiResult<Json<FaultsBody>> {
    if !app.faults.enabled() {
        return Err(disabled());
    }
    Ok(Json(view(&app.faults.current())))
}

/// Replaces the fault set (empty lists heal).
pub async fn put_faults(
    _: Admin,
    State(app): State<AppState>,
    ApiJson(body): ApiJson<FaultsBody>,
) -> ApiResult<Json<FaultsBody>> {
    if !app.faults.enabled() {
        return Err(disabled());
    }
    if body.delay_ms > MAX_DELAY_MS {
        return Err(Problem::invalid_field(
            "/delay_ms",
            format!("must be at most {MAX_DELAY_MS}"),
        ));
    }
    if body.loss_percent > 100 {
        return Err(Problem::invalid_field(
            "/loss_percent",
            "must be a percentage, 0 to 100",
        ));
    }
    let set = FaultSet {
        block_out: parse_ids(&body.block_out, "block_out")?,
        block_in: parse_ids(&body.block_in, "block_in")?,
        delay_ms: body.delay_ms,
        loss_percent: body.loss_percent,
    };
    let cut: BTreeSet<u64> = set.block_out.union(&set.block_in).copied().collect();
    let gossip_addrs = app
        .membership
        .members()
        .into_iter()
        .filter(|m| cut.contains(&m.node_id))
        .map(|m| m.gossip_addr)
        .collect();
    app.faults.set(set.clone()).map_err(|_| disabled())?;
    app.membership.set_blocked(gossip_addrs);
    app.membership.set_impaired(
        std::time::Duration::from_millis(set.delay_ms),
        set.loss_percent,
    );
    tracing::warn!(faults = ?set, "fault injection changed");
    Ok(Json(view(&set)))
}

/// Body of `POST /v1/testing/panic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanicBody {
    /// Which actors: `bucket_shards`.
    target: String,
    /// One shard index; all shards when absent.
    #[serde(default)]
    shard: Option<usize>,
}

/// Makes the chosen actors panic; their supervisor restarts them.
pub async fn inject_panic(
    _: Admin,
    State(app): State<AppState>,
    ApiJson(body): ApiJson<PanicBody>,
) -> ApiResult<Json<serde_json::Value>> {
    if !app.faults.enabled() {
        return Err(disabled());
    }
    match body.target.as_str() {
        "bucket_shards" => app.buckets.inject_panic(body.shard),
        other => {
            return Err(Problem::invalid_field(
                "/target",
                format!("{other:?} is not one of \"bucket_shards\""),
            ))
        }
    }
    tracing::warn!(target = %body.target, shard = ?body.shard, "fault injection: panic injected");
    Ok(Json(
        serde_json::json!({ "injected": body.target, "restarts_so_far": app.buckets.restarts() }),
    ))
}

/// Longest sleep `POST /v1/testing/sleep` accepts.
pub const MAX_SLEEP_MS: u64 = 10_000;

/// Body of `POST /v1/testing/sleep`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepBody {
    ms: u64,
}

/// A tenant request that takes `ms` milliseconds (at most [`MAX_SLEEP_MS`]): holds one
/// of the tenant's concurrency slots that long.
pub async fn sleep(
    _: TenantCaller,
    State(app): State<AppState>,
    ApiJson(body): ApiJson<SleepBody>,
) -> ApiResult<Json<serde_json::Value>> {
    if !app.faults.enabled() {
        return Err(disabled());
    }
    if body.ms > MAX_SLEEP_MS {
        return Err(Problem::invalid_field(
            "/ms",
            format!("must be at most {MAX_SLEEP_MS}"),
        ));
    }
    tokio::time::sleep(std::time::Duration::from_millis(body.ms)).await;
    Ok(Json(serde_json::json!({ "slept_ms": body.ms })))
}
