//! `/v1/tiers`: create, list, read, replace, delete tiers (admin).

use super::{propose, unexpected};
use crate::auth::Admin;
use crate::extract::ApiJson;
use crate::middleware::RequestId;
use crate::problem::{ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use colony_core::command::{Command, CommandOutput};
use colony_core::tier::{Tier, WindowLimit};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Body of `POST /v1/tiers` and `PUT /v1/tiers/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierBody {
    #[serde(default)]
    name: Option<String>,
    limits: Vec<WindowLimit>,
    #[serde(default)]
    endpoint_weights: BTreeMap<String, u32>,
    #[serde(default)]
    concurrency: Option<u32>,
    #[serde(default)]
    monthly_budget_usd: Option<f64>,
}

impl TierBody {
    fn into_tier(self, name: String) -> ApiResult<Tier> {
        let tier = Tier {
            name,
            limits: self.limits,
            endpoint_weights: self.endpoint_weights,
            concurrency: self.concurrency,
            monthly_budget_usd: self.monthly_budget_usd,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        tier.validate()
            .map_err(|(ptr, msg)| Problem::invalid_field(ptr, msg))?;
        Ok(tier)
    }
}

fn tier_output(out: CommandOutput) -> ApiResult<Json<Tier>> {
    match out {
        CommandOutput::Tier(t) => Ok(Json(t)),
        other => Err(unexpected(&other)),
    }
}

/// All tiers by name.
pub async fn list(_: Admin, State(app): State<AppState>) -> Json<Vec<Tier>> {
    Json(app.raft.read_state(|s| s.tiers.values().cloned().collect()))
}

/// One tier.
pub async fn get_one(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Tier>> {
    app.raft
        .read_state(|s| s.tiers.get(&name).cloned())
        .map(Json)
        .ok_or_else(|| Problem::not_found("tier", &name))
}

/// Creates a tier; 409 if the name is taken.
pub async fn create(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    ApiJson(body): ApiJson<TierBody>,
) -> ApiResult<(StatusCode, Json<Tier>)> {
    let Some(name) = body.name.clone() else {
        return Err(Problem::invalid_field("/name", "is required"));
    };
    let tier = body.into_tier(name)?;
    let out = propose(&app, &rid, "admin", Command::CreateTier { tier }).await?;
    Ok((StatusCode::CREATED, tier_output(out)?))
}

/// Replaces a tier's settings; the name in the body, if any, must match the path.
pub async fn replace(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TierBody>,
) -> ApiResult<Json<Tier>> {
    if body.name.as_ref().is_some_and(|n| n != &name) {
        return Err(Problem::invalid_field(
            "/name",
            "must match the tier name in the path (tiers cannot be renamed)",
        ));
    }
    let tier = body.into_tier(name)?;
    tier_output(propose(&app, &rid, "admin", Command::UpdateTier { tier }).await?)
}

/// Deletes a tier; 409 while tenants use it.
pub async fn delete(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    propose(&app, &rid, "admin", Command::DeleteTier { name }).await?;
    Ok(StatusCode::NO_CONTENT)
}
