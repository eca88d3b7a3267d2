//! `GET /v1/audit` (filters, cursor pagination) and `GET /v1/audit/verify` (admin).

use crate::auth::Admin;
use crate::extract::ApiQuery;
use crate::problem::{ApiResult, ErrorCode, Problem};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use colony_cluster::node::AuditQuery;
use colony_core::audit::AuditEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

/// Default and largest page size.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    tenant: Option<String>,
    /// Exact action, or a prefix ending in `.` or `*` (`tenant.*`).
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    principal: Option<String>,
    /// RFC 3339 time or milliseconds since the epoch; inclusive.
    #[serde(default)]
    since: Option<String>,
    /// RFC 3339 time or milliseconds since the epoch; exclusive.
    #[serde(default)]
    until: Option<String>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// An audit entry as served: the stored entry plus its time in RFC 3339.
#[derive(Debug, Serialize)]
pub struct EntryView {
    at: String,
    #[serde(flatten)]
    entry: AuditEntry,
}

/// One page of audit entries.
#[derive(Debug, Serialize)]
pub struct Page {
    entries: Vec<EntryView>,
    /// Pass as `cursor` to get the next page; `null` when this was the last.
    next_cursor: Option<String>,
}

fn parse_time(name: &str, v: &str) -> ApiResult<u64> {
    if let Ok(ms) = v.parse::<u64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| {
            Problem::bad_parameter(
                name,
                "must be an RFC 3339 time (2026-01-31T12:00:00Z) or milliseconds since the epoch",
            )
        })
}

/// Entries matching the filters, oldest first, one page at a time.
pub async fn list(
    _: Admin,
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page>> {
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(0) => return Err(Problem::bad_parameter("limit", "must be at least 1")),
        Some(n) if n > MAX_LIMIT => {
            return Err(Problem::bad_parameter(
                "limit",
                format!("must be at most {MAX_LIMIT}"),
            ))
        }
        Some(n) => n,
    };
    let after_seq = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .strip_prefix("seq-")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| Problem::bad_parameter("cursor", "not a cursor returned by this API"))?,
    };
    let query = AuditQuery {
        tenant: q.tenant,
        action: q.action,
        principal: q.principal,
        since_ms: q
            .since
            .as_deref()
            .map(|v| parse_time("since", v))
            .transpose()?,
        until_ms: q
            .until
            .as_deref()
            .map(|v| parse_time("until", v))
            .transpose()?,
        after_seq,
        limit,
    };
    let page = app.raft.audit_page(query).await.map_err(|e| {
        tracing::error!(error = %e, "audit query failed");
        Problem::new(
            ErrorCode::Internal,
            "reading the audit log failed; see the node's log",
        )
    })?;
    let entries = page
        .entries
        .into_iter()
        .map(|entry| EntryView {
            at: humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(entry.at_ms))
                .to_string(),
            entry,
        })
        .collect();
    Ok(Json(Page {
        entries,
        next_cursor: page.next_after_seq.map(|s| format!("seq-{s}")),
    }))
}

/// Recomputes the whole chain on this node; `ok: false` names the first bad entry.
pub async fn verify(_: Admin, State(app): State<AppState>) -> ApiResult<Json<Value>> {
    let report = app.raft.audit_verify().await.map_err(|e| {
        tracing::error!(error = %e, "audit verification failed to run");
        Problem::new(
            ErrorCode::Internal,
            "reading the audit log failed; see the node's log",
        )
    })?;
    let mut v = serde_json::to_value(&report)
        .map_err(|e| Problem::new(ErrorCode::Internal, e.to_string()))?;
    v["node_id"] = Value::String(app.raft.node_id().to_string());
    Ok(Json(v))
}
