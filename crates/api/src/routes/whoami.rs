//! `GET /v1/whoami`: which tenant an API key belongs to, and its effective limits.

use crate::auth::TenantCaller;
use crate::tier_limits::Effective;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// The caller's tenant, key id, and the limits in force (tier values with overrides applied).
pub async fn whoami(caller: TenantCaller, State(app): State<AppState>) -> Json<Value> {
    let t = &caller.tenant;
    let tier = app.raft.read_state(|s| s.tiers.get(&t.tier).cloned());
    let eff = Effective::of(t, tier.as_ref());
    Json(json!({
        "tenant": { "id": t.id, "name": t.name, "tier": t.tier, "status": t.status },
        "key_id": &*caller.key_id,
        "effective": {
            "limits": eff.limits,
            "endpoint_weights": eff.endpoint_weights,
            "concurrency": eff.concurrency,
            "monthly_budget_usd": eff.monthly_budget_usd,
            "bypass_limits": eff.bypass_limits,
        },
    }))
}
