//! `GET /v1/whoami`: which tenant an API key belongs to, and its effective limits.

use crate::auth::TenantCaller;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// The caller's tenant, key id, and the limits in force (tier values with overrides applied).
pub async fn whoami(caller: TenantCaller, State(app): State<AppState>) -> Json<Value> {
    let t = &caller.tenant;
    let tier = app.raft.read_state(|s| s.tiers.get(&t.tier).cloned());
    let o = &t.overrides;
    let limits = o
        .limits
        .clone()
        .or_else(|| tier.as_ref().map(|t| t.limits.clone()))
        .unwrap_or_default();
    let weights = o
        .endpoint_weights
        .clone()
        .or_else(|| tier.as_ref().map(|t| t.endpoint_weights.clone()))
        .unwrap_or_default();
    let concurrency = o
        .concurrency
        .or_else(|| tier.as_ref().and_then(|t| t.concurrency));
    let budget = o
        .monthly_budget_usd
        .or_else(|| tier.as_ref().and_then(|t| t.monthly_budget_usd));
    Json(json!({
        "tenant": { "id": t.id, "name": t.name, "tier": t.tier, "status": t.status },
        "key_id": caller.key_id,
        "effective": {
            "limits": limits,
            "endpoint_weights": weights,
            "concurrency": concurrency,
            "monthly_budget_usd": budget,
        },
    }))
}
