//! `/healthz`, `/readyz`, `/metrics` and `/v1/cluster`.

use crate::auth::Admin;
use crate::problem::{ApiResult, ErrorCode, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// The process is alive and serving HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the node can serve: a Raft leader is known, state is applied, the cluster is
/// initialised and the node is not draining. Otherwise 503 saying why.
pub async fn readyz(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    if app.lifecycle.is_draining() {
        return Err(Problem::new(
            ErrorCode::Unavailable,
            "the node is shutting down",
        ));
    }
    let status = app.raft.status();
    let Some(leader) = status.leader else {
        return Err(
            Problem::new(ErrorCode::Unavailable, "no Raft leader is known").with_retry_after(1),
        );
    };
    if !app.raft.read_state(|s| s.admin_token_hash.is_some()) {
        return Err(
            Problem::new(ErrorCode::Unavailable, "the cluster is not initialised yet")
                .with_retry_after(1),
        );
    }
    Ok(Json(
        json!({ "status": "ready", "node_id": status.node_id.to_string(), "leader": leader.to_string() }),
    ))
}

/// Prometheus text exposition.
pub async fn metrics(State(app): State<AppState>) -> ApiResult<impl IntoResponse> {
    export_raft(&app);
    let text = app
        .metrics
        .render()
        .map_err(|e| Problem::new(ErrorCode::Internal, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// Members and Raft status as this node sees them.
pub async fn cluster(_: Admin, State(app): State<AppState>) -> Json<Value> {
    let s = app.raft.status();
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|(id, info)| {
            json!({
                "id": id.to_string(),
                "state": "active",
                "voter": s.voters.contains(id),
                "raft_addr": info.raft_addr,
                "http_addr": info.http_addr,
            })
        })
        .collect();
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>();
    Json(json!({
        "node_id": s.node_id.to_string(),
        "members": members,
        "raft": {
            "leader": s.leader.map(|l| l.to_string()),
            "term": s.term,
            "state": s.server_state,
            "voters": ids(&s.voters),
            "learners": ids(&s.learners),
            "last_log_index": s.last_log_index,
            "applied_index": s.applied_index,
            "snapshot_index": s.snapshot_index,
            "purged_index": s.purged_index,
        },
    }))
}

/// Copies Raft's status into the gauges just before they are rendered.
fn export_raft(app: &AppState) {
    let s = app.raft.status();
    let m = &app.metrics;
    let set = |kind: &str, v: Option<u64>| {
        m.raft_index
            .with_label_values(&[kind])
            .set(v.map_or(-1, |v| v as i64))
    };
    set("term", Some(s.term));
    set("last_log", s.last_log_index);
    set("applied", s.applied_index);
    set("snapshot", s.snapshot_index);
    set("purged", s.purged_index);
    m.raft_is_leader.set(i64::from(s.leader == Some(s.node_id)));
    m.raft_voters.set(s.voters.len() as i64);
    m.audit_entries
        .set(app.raft.read_state(|st| st.audit_head.seq) as i64);
}
