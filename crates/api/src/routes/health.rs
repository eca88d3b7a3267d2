//! `/healthz`, `/readyz`, `/metrics` and `/v1/cluster`.

use crate::auth::Admin;
use crate::problem::{ApiResult, ErrorCode, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use colony_cluster::membership::{MemberStatus, MemberView, NodeState};
use colony_core::clock::now_ms;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The process is alive and serving HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// This node's own gossip state.
fn own_state(app: &AppState) -> Option<NodeState> {
    app.membership
        .members()
        .into_iter()
        .find(|m| m.is_self)
        .and_then(|m| m.meta.map(|meta| meta.state))
}

/// 200 when the node can serve: an active member, a Raft leader is known, and this node
/// has applied the committed log within `cluster.max_ready_lag` entries. Otherwise 503
/// saying why.
pub async fn readyz(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    let unavailable = |why: String| Problem::new(ErrorCode::Unavailable, why).with_retry_after(1);
    if app.lifecycle.is_draining() {
        return Err(Problem::new(
            ErrorCode::Unavailable,
            "the node is shutting down",
        ));
    }
    match own_state(&app) {
        Some(NodeState::Active) => {}
        Some(NodeState::Joining) | None => {
            return Err(unavailable("the node is still joining the cluster".into()))
        }
        Some(NodeState::Draining) => {
            return Err(Problem::new(ErrorCode::Unavailable, "the node is draining"))
        }
    }
    let s = app.raft.status();
    let Some(leader) = s.leader else {
        return Err(unavailable("no Raft leader is known".into()));
    };
    let committed = s.committed_index.unwrap_or(0);
    let applied = s.applied_index.unwrap_or(0);
    let lag = committed.saturating_sub(applied);
    if lag > app.settings.max_ready_lag {
        return Err(unavailable(format!(
            "catching up: {lag} committed entries not applied yet"
        )));
    }
    Ok(Json(json!({
        "status": "ready",
        "node_id": s.node_id.to_string(),
        "leader": leader.to_string(),
        "committed_index": committed,
        "applied_index": applied,
    })))
}

/// Prometheus text exposition.
pub async fn metrics(State(app): State<AppState>) -> ApiResult<impl IntoResponse> {
    export_cluster(&app);
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

/// The state word of a member: its gossiped state while alive, else suspect/down.
fn member_state(m: &MemberView) -> &'static str {
    match m.status {
        MemberStatus::Down => "down",
        MemberStatus::Suspect => "suspect",
        MemberStatus::Alive => match m.meta.as_ref().map(|x| x.state) {
            Some(NodeState::Active) => "active",
            Some(NodeState::Draining) => "draining",
            Some(NodeState::Joining) | None => "joining",
        },
    }
}

/// Members (gossip and Raft) and Raft status as this node sees them.
pub async fn cluster(_: Admin, State(app): State<AppState>) -> Json<Value> {
    let s = app.raft.status();
    let views = app.membership.members();
    let voters: BTreeSet<u64> = s.voters.iter().copied().collect();
    let learners: BTreeSet<u64> = s.learners.iter().copied().collect();
    let raft_role = |id: u64| {
        if voters.contains(&id) {
            "voter"
        } else if learners.contains(&id) {
            "learner"
        } else {
            "none"
        }
    };
    let mut members: Vec<Value> = views
        .iter()
        .map(|m| {
            json!({
                "id": m.node_id.to_string(),
                "state": member_state(m),
                "raft": raft_role(m.node_id),
                "gossip_addr": m.gossip_addr.to_string(),
                "http_addr": m.meta.as_ref().map(|x| x.http_addr.clone()),
                "raft_addr": m.meta.as_ref().map(|x| x.raft_addr.clone()),
                "cluster_addr": m.meta.as_ref().map(|x| x.cluster_addr.clone()),
                "version": m.meta.as_ref().map(|x| x.version.clone()),
                "incarnation": m.incarnation,
                "boot": m.boot,
                "last_seen_ms_ago": m.last_seen_ms_ago,
                "is_self": m.is_self,
                "features": m.meta.as_ref().map(|x| x.features.clone()),
            })
        })
        .collect();
    // Raft members gossip does not know (any more) are listed as down.
    let known: BTreeSet<u64> = views.iter().map(|m| m.node_id).collect();
    for (id, info) in s.members.iter().filter(|(id, _)| !known.contains(id)) {
        members.push(json!({
            "id": id.to_string(),
            "state": "down",
            "raft": raft_role(*id),
            "gossip_addr": null,
            "http_addr": info.http_addr,
            "raft_addr": info.raft_addr,
            "version": null,
            "incarnation": null,
            "boot": null,
            "last_seen_ms_ago": null,
            "is_self": false,
        }));
    }
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>();
    let committed = s.committed_index.unwrap_or(0);
    let applied = s.applied_index.unwrap_or(0);
    let lag: serde_json::Map<String, Value> = s
        .replication_lag
        .iter()
        .map(|(id, l)| (id.to_string(), json!(l)))
        .collect();
    Json(json!({
        "node_id": s.node_id.to_string(),
        "drain": app.lifecycle.phase(),
        "features_enabled": colony_cluster::features::SUPPORTED
            .iter()
            .filter(|f| colony_cluster::features::enabled(&views, f))
            .collect::<Vec<_>>(),
        "members": members,
        "raft": {
            "leader": s.leader.map(|l| l.to_string()),
            "term": s.term,
            "state": s.server_state,
            "voters": ids(&s.voters),
            "learners": ids(&s.learners),
            "last_log_index": s.last_log_index,
            "committed_index": s.committed_index,
            "applied_index": s.applied_index,
            "apply_lag": committed.saturating_sub(applied),
            "replication_lag": lag,
            "snapshot_index": s.snapshot_index,
            "purged_index": s.purged_index,
        },
        "fault_injection": app.faults.enabled(),
        "components": app.components.states(),
        "listeners": app.transport.listeners.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "tls": app.transport.identity.as_ref().map(|id| {
            let now = now_secs();
            json!({
                "certs_dir": id.dir().display().to_string(),
                "node_cert_not_after": id.not_after(),
                "node_cert_expires_in_s": id.not_after() - now,
                "ca_cert_not_after": id.ca_not_after(),
                "ca_cert_expires_in_s": id.ca_not_after() - now,
            })
        }),
    }))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Copies cluster state into the metric families just before they are rendered.
fn export_cluster(app: &AppState) {
    let s = app.raft.status();
    let m = &app.metrics;
    let set = |kind: &str, v: Option<u64>| {
        m.raft_index
            .with_label_values(&[kind])
            .set(v.map_or(-1, |v| v as i64))
    };
    set("term", Some(s.term));
    set("last_log", s.last_log_index);
    set("committed", s.committed_index);
    set("applied", s.applied_index);
    set("snapshot", s.snapshot_index);
    set("purged", s.purged_index);
    if let Some(id) = &app.transport.identity {
        let now = now_secs();
        m.tls_expiry
            .with_label_values(&["node"])
            .set(id.not_after() - now);
        m.tls_expiry
            .with_label_values(&["ca"])
            .set(id.ca_not_after() - now);
    }
    for (listener, stats) in &app.transport.handshakes {
        use std::sync::atomic::Ordering::Relaxed;
        for (outcome, n) in [
            ("completed", &stats.completed),
            ("failed", &stats.failed),
            ("timed_out", &stats.timed_out),
            ("refused", &stats.refused),
        ] {
            m.sync_tls_handshakes(listener, outcome, n.load(Relaxed));
        }
    }
    m.raft_is_leader.set(i64::from(s.leader == Some(s.node_id)));
    m.raft_voters.set(s.voters.len() as i64);
    m.audit_entries
        .set(app.raft.read_state(|st| st.audit_head.seq) as i64);
    m.replication_lag.reset();
    for (id, lag) in &s.replication_lag {
        m.replication_lag
            .with_label_values(&[&id.to_string()])
            .set(*lag as i64);
    }
    m.members.reset();
    for state in ["joining", "active", "draining", "suspect", "down"] {
        m.members.with_label_values(&[state]).set(0);
    }
    for v in app.membership.members() {
        m.members.with_label_values(&[member_state(&v)]).inc();
    }
    let c = app.membership.counters();
    m.sync_counter("gossip_packets_in", c.packets_in);
    m.sync_counter("gossip_packets_out", c.packets_out);
    m.sync_counter("gossip_packets_rejected", c.packets_rejected);
    m.sync_counter("gossip_packets_replayed", c.packets_replayed);
    m.sync_counter("member_up", c.up_events);
    m.sync_counter("member_suspect", c.suspect_events);
    m.sync_counter("member_down", c.down_events);
    m.sync_counter("identity_renewals", c.identity_renewals);
    m.sync_counter("down_verdicts_postponed", c.down_verdicts_postponed);
    let rc = app.raft.counters();
    use std::sync::atomic::Ordering::Relaxed;
    m.sync_counter("raft_leader_changes", rc.leader_changes.load(Relaxed));
    m.sync_counter("forwarded_writes", rc.forwarded_writes.load(Relaxed));
    m.sync_counter("forwarded_reads", rc.forwarded_reads.load(Relaxed));
    m.sync_restarts("buckets", app.buckets.restarts());
    m.export_components(&app.components.states());
    let month =
        colony_core::evaluation::month_of(&colony_core::evaluation::day_of(now_ms())).to_string();
    let (soft, hard) = app.raft.read_state(|s| {
        let (mut soft, mut hard) = (0i64, 0i64);
        for t in s.tenants.keys() {
            if let Some(budget) = s.budget_nanos(t) {
                let spent = s.month_spend_nanos(t, &month);
                soft += i64::from(spent as f64 >= budget as f64 * colony_state::SOFT_BUDGET_RATIO);
                hard += i64::from(spent >= budget);
            }
        }
        (soft, hard)
    });
    m.tenants_over_budget.with_label_values(&["soft"]).set(soft);
    m.tenants_over_budget.with_label_values(&["hard"]).set(hard);
    let by_status = app.raft.read_state(|s| {
        let mut counts = std::collections::BTreeMap::new();
        for r in s.evaluations.values() {
            *counts.entry(r.status.as_str()).or_insert(0i64) += 1;
        }
        counts
    });
    for st in [
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
        "budget_exceeded",
    ] {
        m.evaluations
            .with_label_values(&[st])
            .set(by_status.get(st).copied().unwrap_or(0));
    }
    if let Some(ev) = &app.evaluations {
        let c = &ev.counters;
        for (event, v) in [
            ("cases_recorded", &c.cases_recorded),
            ("cases_failed", &c.cases_failed),
            ("cache_hits", &c.cache_hits),
            ("cost_nanos", &c.cost_nanos),
            ("checkpoints", &c.checkpoints),
            ("checkpoints_refused", &c.checkpoints_refused),
            ("restarts", &c.restarts),
            ("reassignments", &c.reassignments),
        ] {
            m.sync_evaluation_event(event, v.load(Relaxed));
        }
        // Summed by provider kind: per-tenant or per-URL series would let tenants choose
        // label values and their number.
        let mut totals: std::collections::BTreeMap<&'static str, [u64; 6]> = Default::default();
        let mut circuits: std::collections::BTreeMap<(&'static str, &'static str), i64> =
            Default::default();
        for (_tenant, id, stats) in ev.providers.stats() {
            let kind = id.kind.as_str();
            let t = totals.entry(kind).or_default();
            for (slot, v) in t.iter_mut().zip([
                stats.calls,
                stats.attempts,
                stats.failures,
                stats.retries,
                stats.rejections,
                stats.opened,
            ]) {
                *slot += v;
            }
            *circuits.entry((kind, stats.state.as_str())).or_default() += 1;
        }
        for kind in ["openai", "builtin"] {
            let t = totals.get(kind).copied().unwrap_or_default();
            let events = [
                "calls",
                "attempts",
                "failures",
                "retries",
                "rejections",
                "circuit_opened",
            ];
            for (event, v) in events.into_iter().zip(t) {
                m.sync_provider_event(kind, event, v);
            }
            for state in ["closed", "open", "half_open"] {
                m.provider_circuit
                    .with_label_values(&[kind, state])
                    .set(circuits.get(&(kind, state)).copied().unwrap_or(0));
            }
        }
        m.sync_evaluation_event("scoring_timeouts", c.scoring_timeouts.load(Relaxed));
    }
    if let Some(h) = app.buckets.handoff() {
        let hc = h.counters();
        m.sync_counter("buckets_pushed", hc.pushed.load(Relaxed));
        m.sync_counter("buckets_installed", hc.installed.load(Relaxed));
        m.sync_counter("buckets_pulled", hc.pulled.load(Relaxed));
        m.sync_counter("buckets_promoted_from_replica", hc.promoted.load(Relaxed));
        m.sync_counter("buckets_replicated", hc.replicated.load(Relaxed));
        m.sync_counter("bucket_send_failures", hc.send_failures.load(Relaxed));
        m.sync_counter("bucket_checks_moved", hc.moved.load(Relaxed));
    }
}
