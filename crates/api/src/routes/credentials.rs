//! `/v1/credentials`: a tenant's provider credentials, write-only. A spec names one
//! (`"credential": "name"`); its value goes only to the hosts it lists. The value is
//! sealed on this node before it is proposed and is never answered, logged or audited.

use super::{propose, unexpected};
use crate::auth::TenantCaller;
use crate::extract::ApiJson;
use crate::middleware::RequestId;
use crate::problem::{ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use colony_core::command::{Command, CommandOutput};
use colony_core::credential::{self, StoredCredential};
use serde::Deserialize;
use serde_json::{json, Value};

/// Body of `PUT /v1/credentials/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialBody {
    value: String,
    allowed_hosts: Vec<String>,
    /// PEM of a private CA the endpoint's certificate chains to.
    #[serde(default)]
    ca_pem: Option<String>,
}

// Hand-written so the value never reaches a log line.
impl std::fmt::Debug for CredentialBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialBody")
            .field("value", &"<redacted>")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("ca_pem", &self.ca_pem.is_some())
            .finish()
    }
}

/// What the API shows of a credential: never its value.
fn view(c: &StoredCredential) -> Value {
    json!({
        "name": c.name,
        "allowed_hosts": c.allowed_hosts,
        "ca_pem": c.ca_pem,
        "created_at_ms": c.created_at_ms,
        "updated_at_ms": c.updated_at_ms,
    })
}

/// Stores or replaces the caller's credential `name`.
pub async fn put(
    caller: TenantCaller,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<CredentialBody>,
) -> ApiResult<Json<Value>> {
    credential::check_name(&name).map_err(|e| Problem::bad_parameter("name", e.to_string()))?;
    credential::check_value(&body.value)
        .map_err(|e| Problem::invalid_field("/value", e.to_string()))?;
    let allowed_hosts = credential::normalize_hosts(&body.allowed_hosts)
        .map_err(|e| Problem::invalid_field("/allowed_hosts", e.to_string()))?;
    // Parsed (bounded) now, so a bad CA is a 422 here and not a failed evaluation; stored
    // re-encoded, so nothing but the certificates is kept.
    let ca_pem = match &body.ca_pem {
        None => None,
        Some(pem) => {
            let bad = |e: colony_tls::TlsError| Problem::invalid_field("/ca_pem", e.to_string());
            let normalized = colony_tls::pem::normalized(pem.as_bytes()).map_err(bad)?;
            colony_tls::client::private_ca(normalized.as_bytes(), colony_tls::client::ALPN_HTTP1)
                .map_err(bad)?;
            Some(normalized)
        }
    };
    let tenant = caller.tenant.id.clone();
    let sealed = app
        .sealing_key
        .seal(&tenant, &name, &body.value, rand::random());
    let stored = StoredCredential {
        tenant: tenant.clone(),
        name,
        allowed_hosts,
        sealed,
        ca_pem,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    let out = propose(
        &app,
        &rid,
        &format!("tenant:{tenant}"),
        Command::PutCredential { credential: stored },
    )
    .await?;
    match out {
        CommandOutput::Credential(c) => Ok(Json(view(&c))),
        other => Err(unexpected(&other)),
    }
}

/// The caller's credentials: names, hosts and times.
pub async fn list(caller: TenantCaller, State(app): State<AppState>) -> Json<Value> {
    let items: Vec<Value> = app.raft.read_state(|s| {
        s.credentials
            .values()
            .filter(|c| c.tenant == caller.tenant.id)
            .map(view)
            .collect()
    });
    Json(json!({ "credentials": items }))
}

/// One of the caller's credentials (without its value).
pub async fn get_one(
    caller: TenantCaller,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    app.raft
        .read_state(|s| {
            s.credentials
                .get(&(caller.tenant.id.clone(), name.clone()))
                .map(view)
        })
        .map(Json)
        .ok_or_else(|| Problem::not_found("credential", &name))
}

/// Deletes one of the caller's credentials; evaluations naming it fail their calls.
pub async fn delete(
    caller: TenantCaller,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let tenant = caller.tenant.id.clone();
    propose(
        &app,
        &rid,
        &format!("tenant:{tenant}"),
        Command::DeleteCredential { tenant, name },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
