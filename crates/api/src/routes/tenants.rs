//! `/v1/tenants`: create (with the first API key), list, read, update, delete (admin).

use super::keys::KeyView;
use super::{propose, unexpected};
use crate::auth::Admin;
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::RequestId;
use crate::problem::{ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use colony_core::apikey::{generate_api_key, ApiKey};
use colony_core::command::{Command, CommandOutput, TenantPatch};
use colony_core::ids::{random_id, validate_id};
use colony_core::tenant::{validate_name, Tenant, TenantStatus, TierOverrides};
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Chosen id; generated when absent.
    #[serde(default)]
    id: Option<String>,
    name: String,
    /// Tier name; `free` when absent.
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    overrides: TierOverrides,
}

/// Answer of `POST /v1/tenants`: the tenant, its first key, and the key's secret (shown once).
#[derive(Debug, Serialize)]
pub struct Created {
    #[serde(flatten)]
    tenant: Tenant,
    /// The API key secret. It is not stored and cannot be shown again.
    api_key: String,
    /// The key's public record.
    key: KeyView,
}

/// Query of `GET /v1/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    status: Option<TenantStatus>,
}

/// Body of `PATCH /v1/tenants/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    overrides: Option<TierOverrides>,
    #[serde(default)]
    status: Option<TenantStatus>,
}

fn tenant_output(out: CommandOutput) -> ApiResult<Json<Tenant>> {
    match out {
        CommandOutput::Tenant(t) => Ok(Json(t)),
        other => Err(unexpected(&other)),
    }
}

/// All tenants, optionally filtered by tier and status.
pub async fn list(
    _: Admin,
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Json<Vec<Tenant>> {
    Json(app.raft.read_state(|s| {
        s.tenants
            .values()
            .filter(|t| q.tier.as_ref().is_none_or(|tier| &t.tier == tier))
            .filter(|t| q.status.is_none_or(|st| t.status == st))
            .cloned()
            .collect()
    }))
}

/// One tenant.
pub async fn get_one(
    _: Admin,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Tenant>> {
    app.raft
        .read_state(|s| s.tenants.get(&id).cloned())
        .map(Json)
        .ok_or_else(|| Problem::not_found("tenant", &id))
}

/// Creates a tenant and its first API key; the secret is in the answer, once.
pub async fn create(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let id = match body.id {
        Some(id) => {
            validate_id(&id).map_err(|m| Problem::invalid_field("/id", m))?;
            id
        }
        None => random_id("tn"),
    };
    validate_name(&body.name).map_err(|m| Problem::invalid_field("/name", m))?;
    let tier = body.tier.unwrap_or_else(|| "free".to_string());
    body.overrides
        .validate("/overrides")
        .map_err(|(p, m)| Problem::invalid_field(p, m))?;
    let new_key = generate_api_key();
    let tenant = Tenant {
        id: id.clone(),
        name: body.name,
        tier,
        overrides: body.overrides,
        status: TenantStatus::Active,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    let key = ApiKey {
        id: new_key.id.clone(),
        tenant: id,
        name: Some("initial".into()),
        secret_hash: new_key.secret_hash,
        created_at_ms: 0,
        expires_at_ms: None,
        revoked_at_ms: None,
    };
    let proposed_key = key.clone();
    let out = propose(&app, &rid, "admin", Command::CreateTenant { tenant, key }).await?;
    let Json(tenant) = tenant_output(out)?;
    // The state machine stamps the key with the tenant's creation time; building the view
    // from what we proposed avoids reading local state, which may lag a forwarded write.
    let key = ApiKey {
        created_at_ms: tenant.created_at_ms,
        ..proposed_key
    };
    Ok((
        StatusCode::CREATED,
        Json(Created {
            tenant,
            api_key: new_key.secret,
            key: KeyView::from(&key),
        }),
    ))
}

/// Changes a tenant's name, tier, overrides or status.
pub async fn update(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> ApiResult<Json<Tenant>> {
    if let Some(name) = &body.name {
        validate_name(name).map_err(|m| Problem::invalid_field("/name", m))?;
    }
    if let Some(o) = &body.overrides {
        o.validate("/overrides")
            .map_err(|(p, m)| Problem::invalid_field(p, m))?;
    }
    let patch = TenantPatch {
        name: body.name,
        tier: body.tier,
        overrides: body.overrides,
        status: body.status,
    };
    tenant_output(propose(&app, &rid, "admin", Command::UpdateTenant { id, patch }).await?)
}

/// Deletes a tenant and all its keys.
pub async fn delete(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    propose(&app, &rid, "admin", Command::DeleteTenant { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
