//! `/v1/tenants/{id}/keys`: issue, list, rotate (with a grace period), revoke (admin).

use super::{propose, unexpected};
use crate::auth::Admin;
use crate::extract::ApiJson;
use crate::middleware::RequestId;
use crate::problem::{ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use colony_core::apikey::{generate_api_key, ApiKey};
use colony_core::clock::now_ms;
use colony_core::command::{Command, CommandOutput};
use serde::{Deserialize, Serialize};

/// Longest grace period or lifetime accepted, in seconds (10 years).
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

/// Default grace period of a rotation: one day.
const DEFAULT_GRACE_SECS: u64 = 24 * 3600;

/// A key as the API shows it: never the secret, never its hash.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    id: String,
    tenant: String,
    name: Option<String>,
    status: &'static str,
    created_at_ms: u64,
    expires_at_ms: Option<u64>,
    revoked_at_ms: Option<u64>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        let status = if k.revoked_at_ms.is_some() {
            "revoked"
        } else if k.is_valid_at(now_ms()) {
            "active"
        } else {
            "expired"
        };
        Self {
            id: k.id.clone(),
            tenant: k.tenant.clone(),
            name: k.name.clone(),
            status,
            created_at_ms: k.created_at_ms,
            expires_at_ms: k.expires_at_ms,
            revoked_at_ms: k.revoked_at_ms,
        }
    }
}

/// Body of `POST /v1/tenants/{id}/keys`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    #[serde(default)]
    name: Option<String>,
    /// Lifetime in seconds; no expiry when absent.
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

/// Body of `POST /v1/tenants/{id}/keys/{key_id}/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old key keeps working; one day when absent.
    #[serde(default)]
    grace_period_secs: Option<u64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

/// A newly issued key with its secret (shown once).
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    key: KeyView,
    /// The API key secret. It is not stored and cannot be shown again.
    api_key: String,
}

/// A rotation: the old key (now expiring) and the new one with its secret.
#[derive(Debug, Serialize)]
pub struct Rotated {
    old: KeyView,
    new: KeyView,
    /// The new key's secret, shown once.
    api_key: String,
}

fn check_secs(v: Option<u64>, ptr: &str) -> ApiResult<Option<u64>> {
    match v {
        Some(0) => Err(Problem::invalid_field(ptr, "must be at least 1")),
        Some(s) if s > MAX_SECS => Err(Problem::invalid_field(
            ptr,
            format!("must be at most {MAX_SECS}"),
        )),
        other => Ok(other),
    }
}

fn check_name(name: &Option<String>) -> ApiResult<()> {
    if let Some(n) = name {
        colony_core::tenant::validate_name(n).map_err(|m| Problem::invalid_field("/name", m))?;
    }
    Ok(())
}

fn new_key_record(
    tenant: &str,
    name: Option<String>,
    expires_in_secs: Option<u64>,
) -> (ApiKey, String) {
    let k = generate_api_key();
    let key = ApiKey {
        id: k.id,
        tenant: tenant.to_string(),
        name,
        secret_hash: k.secret_hash,
        created_at_ms: 0,
        expires_at_ms: expires_in_secs.map(|s| now_ms().saturating_add(s * 1000)),
        revoked_at_ms: None,
    };
    (key, k.secret)
}

fn tenant_must_exist(app: &AppState, id: &str) -> ApiResult<()> {
    if app.raft.read_state(|s| s.tenants.contains_key(id)) {
        Ok(())
    } else {
        Err(Problem::not_found("tenant", id))
    }
}

/// The tenant's keys.
pub async fn list(
    _: Admin,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<KeyView>>> {
    tenant_must_exist(&app, &id)?;
    Ok(Json(app.raft.read_state(|s| {
        s.keys_of(&id).map(KeyView::from).collect()
    })))
}

/// One key of the tenant.
pub async fn get_one(
    _: Admin,
    State(app): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Json<KeyView>> {
    app.raft
        .read_state(|s| {
            s.keys
                .get(&key_id)
                .filter(|k| k.tenant == id)
                .map(KeyView::from)
        })
        .map(Json)
        .ok_or_else(|| Problem::not_found("key", &key_id))
}

/// Issues a new key for the tenant.
pub async fn issue(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
    body: Option<ApiJson<IssueBody>>,
) -> ApiResult<(StatusCode, Json<IssuedKey>)> {
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    check_name(&body.name)?;
    let expires = check_secs(body.expires_in_secs, "/expires_in_secs")?;
    let (key, secret) = new_key_record(&id, body.name, expires);
    match propose(&app, &rid, "admin", Command::IssueKey { key }).await? {
        CommandOutput::Key(k) => Ok((
            StatusCode::CREATED,
            Json(IssuedKey {
                key: KeyView::from(&k),
                api_key: secret,
            }),
        )),
        other => Err(unexpected(&other)),
    }
}

/// Issues a replacement key; the old one stays valid for the grace period.
pub async fn rotate(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path((id, key_id)): Path<(String, String)>,
    body: Option<ApiJson<RotateBody>>,
) -> ApiResult<(StatusCode, Json<Rotated>)> {
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    check_name(&body.name)?;
    let grace =
        check_secs(body.grace_period_secs, "/grace_period_secs")?.unwrap_or(DEFAULT_GRACE_SECS);
    let expires = check_secs(body.expires_in_secs, "/expires_in_secs")?;
    tenant_must_exist(&app, &id)?;
    let (new_key, secret) = new_key_record(&id, body.name, expires);
    let cmd = Command::RotateKey {
        old_key_id: key_id,
        grace_ms: grace * 1000,
        new_key,
    };
    match propose(&app, &rid, "admin", cmd).await? {
        CommandOutput::Rotated { old, new } => Ok((
            StatusCode::CREATED,
            Json(Rotated {
                old: KeyView::from(&old),
                new: KeyView::from(&new),
                api_key: secret,
            }),
        )),
        other => Err(unexpected(&other)),
    }
}

/// Revokes a key at once (idempotent).
pub async fn revoke(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Json<KeyView>> {
    match propose(
        &app,
        &rid,
        "admin",
        Command::RevokeKey { tenant: id, key_id },
    )
    .await?
    {
        CommandOutput::Key(k) => Ok(Json(KeyView::from(&k))),
        other => Err(unexpected(&other)),
    }
}
