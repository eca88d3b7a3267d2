//! `POST /v1/cluster/drain` (admin): drain this node, or name another one.
//!
//! Draining is what SIGTERM does: the node announces `draining` in gossip, `/readyz` turns
//! 503, its rate-limit buckets are handed to their new owners, in-flight requests finish
//! (bounded), it leaves gossip, flushes and exits 0. The answer comes before the drain
//! runs (202); its progress is `drain` in `GET /v1/cluster` and in the node's log.

use crate::auth::Admin;
use crate::extract::ApiJson;
use crate::problem::{ApiResult, ErrorCode, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Body of a drain request; empty (or `{}`) drains the node that takes the request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainBody {
    /// The node to drain (its id as in `/v1/cluster`); this node when absent.
    #[serde(default)]
    node_id: Option<String>,
}

/// Timeout of passing the request on to the named node.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts draining this node or the named one.
pub async fn drain(
    _: Admin,
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Option<ApiJson<DrainBody>>,
) -> ApiResult<Response> {
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    let me = app.raft.status().node_id;
    let target = match body.node_id.as_deref() {
        None => me,
        Some(s) => s.parse::<u64>().map_err(|_| {
            Problem::invalid_field("/node_id", "must be a node id from /v1/cluster")
        })?,
    };
    if target == me {
        app.lifecycle.request_drain();
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"node_id": me.to_string(), "state": "draining"})),
        )
            .into_response());
    }
    let members = app.membership.members();
    let member = members
        .iter()
        .find(|m| m.node_id == target)
        .ok_or_else(|| Problem::not_found("node", &target.to_string()))?;
    let addr = member
        .meta
        .as_ref()
        .map(|m| m.http_addr.clone())
        .ok_or_else(|| {
            Problem::new(
                ErrorCode::Unavailable,
                "the node's address is not known yet",
            )
        })?;
    // Nodes listening on 0.0.0.0 without `http.advertise` all announce the same address:
    // passing the drain there would drain this node instead.
    let own = members
        .iter()
        .find(|m| m.is_self)
        .and_then(|m| m.meta.as_ref().map(|x| x.http_addr.clone()));
    if own.as_deref() == Some(addr.as_str()) || addr.starts_with("0.0.0.0:") {
        return Err(Problem::new(
            ErrorCode::Conflict,
            format!(
                "node {target} announces HTTP address {addr}, which does not reach it from \
                 here; set http.advertise on every node, or drain it through its own address"
            ),
        ));
    }
    forward(&app, &addr, &headers).await
}

/// Passes the drain on to the node at `addr` with the caller's credentials.
async fn forward(app: &AppState, addr: &str, headers: &HeaderMap) -> ApiResult<Response> {
    let unavailable = |e: String| {
        Problem::new(
            ErrorCode::Unavailable,
            format!("cannot reach node at {addr} to drain it: {e}"),
        )
        .with_retry_after(1)
    };
    // With TLS the peer's API is HTTPS, verified against the cluster CA (the admin token
    // goes to a node of this cluster only); without, plain HTTP on loopback.
    let (scheme, tls) = match &app.transport.identity {
        Some(id) => ("https", colony_tls::server::api_client(id.cas())),
        None => (
            "http",
            colony_tls::client::public_roots(colony_tls::client::ALPN_HTTP1),
        ),
    };
    let tls = tls.map_err(|e| unavailable(e.to_string()))?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(FORWARD_TIMEOUT)
        .build()
        .map_err(|e| unavailable(e.to_string()))?;
    let mut req = client
        .post(format!("{scheme}://{addr}/v1/cluster/drain"))
        .header("content-type", "application/json")
        .body("{}");
    if let Some(auth) = headers.get("authorization") {
        req = req.header("authorization", auth.as_bytes());
    }
    let res = req.send().await.map_err(|e| unavailable(e.to_string()))?;
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = res.bytes().await.map_err(|e| unavailable(e.to_string()))?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, Json(value)).into_response())
}
