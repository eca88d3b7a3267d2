//! Bearer authentication: the cluster-wide admin token and tenant API keys.
//!
//! Secrets are compared as sha256 hashes in constant time and never logged.

use crate::problem::{ErrorCode, Problem};
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use colony_core::apikey::secret_matches;
use colony_core::clock::now_ms;
use colony_core::tenant::Tenant;
use colony_state::machine::AuthFailure;
use std::sync::Arc;

/// Proof that the request carries the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

/// The tenant a request's API key resolved to.
///
/// Cheap to clone (shared): the tier-limit layer resolves it once and the handler's
/// extractor takes it from the request's extensions.
#[derive(Debug, Clone)]
pub struct TenantCaller {
    /// The tenant, as of the request.
    pub tenant: Arc<Tenant>,
    /// The key id used.
    pub key_id: Arc<str>,
}

/// A 401 with `WWW-Authenticate: Bearer`, as RFC 6750 asks.
#[derive(Debug)]
pub struct AuthRejection(Problem);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let challenge = self.0.status == 401;
        let mut resp = self.0.into_response();
        if challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"colony\""),
            );
        }
        resp
    }
}

fn unauthorized(detail: &str) -> AuthRejection {
    AuthRejection(Problem::new(ErrorCode::Unauthorized, detail))
}

/// The bearer token of the request, if any.
fn bearer(parts: &Parts) -> Result<&str, AuthRejection> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let text = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A client certificate the TLS handshake verified against the cluster CA, naming
        // an admin client (`tls.admin_clients`), stands for the admin token.
        if !app.transport.admin_clients.is_empty() {
            let named = parts
                .extensions
                .get::<axum::extract::ConnectInfo<colony_tls::listener::PeerInfo>>()
                .and_then(|info| {
                    info.0
                        .cert
                        .as_deref()
                        .and_then(colony_tls::certs::client_name)
                });
            if named.is_some_and(|n| app.transport.admin_clients.contains(&n)) {
                return Ok(Admin);
            }
        }
        let token = bearer(parts)?;
        let verdict = app.raft.read_state(|s| match &s.admin_token_hash {
            None => Err(AuthRejection(
                Problem::new(ErrorCode::Unavailable, "the cluster is not initialised yet")
                    .with_retry_after(1),
            )),
            Some(hash) if secret_matches(token, hash) => Ok(Admin),
            Some(_) if s.authenticate(token, now_ms()).is_ok() => Err(AuthRejection(Problem::new(
                ErrorCode::Forbidden,
                "tenant API keys cannot use admin endpoints; use the admin token",
            ))),
            Some(_) => Err(unauthorized(
                "the bearer token is not the cluster's admin token",
            )),
        });
        verdict
    }
}

impl FromRequestParts<AppState> for TenantCaller {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The tier-limit layer authenticated the request already: reuse its answer
        // instead of hashing the key again.
        if let Some(caller) = parts.extensions.get::<TenantCaller>() {
            return Ok(caller.clone());
        }
        let token = bearer(parts)?;
        let caller = app
            .raft
            .read_state(|s| match s.authenticate(token, now_ms()) {
                Ok((tenant, key)) => Ok(TenantCaller {
                    tenant: Arc::new(tenant.clone()),
                    key_id: Arc::from(key.id.as_str()),
                }),
                Err(AuthFailure::Unknown) => Err(unauthorized("unknown API key")),
                Err(AuthFailure::Revoked) => Err(unauthorized("this API key has been revoked")),
                Err(AuthFailure::Expired) => Err(unauthorized("this API key has expired")),
                Err(AuthFailure::Suspended) => Err(AuthRejection(Problem::new(
                    ErrorCode::Forbidden,
                    "this tenant is suspended; ask an administrator",
                ))),
            })?;
        Ok(caller)
    }
}
