//! Prometheus metrics of the HTTP layer and of Raft, rendered at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The node's metric families. All names start with `colony_`.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route template, method and status.
    pub http_requests: IntCounterVec,
    /// Request latency by route template and method.
    pub http_latency: HistogramVec,
    /// Requests being served right now.
    pub http_in_flight: IntGauge,
    /// Raft indexes and term of this node (`kind` = term, last_log, committed, applied, snapshot, purged).
    pub raft_index: IntGaugeVec,
    /// 1 when this node is the Raft leader.
    pub raft_is_leader: IntGauge,
    /// Seconds until a certificate this node uses expires (`certificate`: node, ca).
    pub tls_expiry: IntGaugeVec,
    /// TLS handshakes by listener and outcome.
    pub tls_handshakes: IntCounterVec,
    /// Number of Raft voters.
    pub raft_voters: IntGauge,
    /// Audit entries in the chain.
    pub audit_entries: IntGauge,
    /// Gossip members by state (alive states by node state; suspect; down).
    pub members: IntGaugeVec,
    /// Events counted by other layers (gossip packets, member events, leader changes,
    /// forwarded writes), exported as counters by [`Metrics::sync_counter`].
    pub events: IntCounterVec,
    /// Entries each follower is behind the leader (leader only).
    pub replication_lag: IntGaugeVec,
    /// Actors restarted by their supervisor after a panic or error, by supervisor.
    pub actor_restarts: IntCounterVec,
    /// Provider call latency (retries included) by provider kind (`openai`, `builtin`).
    pub provider_latency: HistogramVec,
    /// Evaluations by status (cluster-wide, from the state machine).
    pub evaluations: IntGaugeVec,
    /// Evaluation runtime events on this node (`event` = cases_recorded, cases_failed,
    /// cache_hits, checkpoints, checkpoints_refused, restarts, reassignments, cost_nanos).
    pub evaluation_events: IntCounterVec,
    /// Provider calls, failures, retries and breaker rejections by provider kind and event.
    pub provider_events: IntCounterVec,
    /// Circuit breakers (one per tenant and provider) by provider kind and state.
    pub provider_circuit: IntGaugeVec,
    /// Tenants at or over their monthly budget's soft threshold (80%) and hard cap.
    pub tenants_over_budget: IntGaugeVec,
    /// 1 while a component runs, by component (`/v1/cluster`'s `components`).
    pub component_up: IntGaugeVec,
    /// Restarts of a component or its children, by component.
    pub component_restarts: IntCounterVec,
    /// Work waiting for a component, by component (where it has a queue).
    pub component_queue_depth: IntGaugeVec,
    /// Rate-limit buckets held by this node (live and stale copies).
    pub buckets: IntGauge,
    /// Evaluations running on this node.
    pub evaluations_running: IntGauge,
    last_seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl Metrics {
    /// Creates the metric families, plus process metrics (CPU, memory, fds) on Linux.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "colony_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "colony_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method"],
        )?;
        let http_in_flight = IntGauge::new(
            "colony_http_requests_in_flight",
            "HTTP requests being served",
        )?;
        let raft_index = IntGaugeVec::new(
            Opts::new(
                "colony_raft_index",
                "Raft term and log indexes of this node",
            ),
            &["kind"],
        )?;
        let raft_is_leader = IntGauge::new(
            "colony_raft_is_leader",
            "1 when this node is the Raft leader",
        )?;
        let raft_voters = IntGauge::new("colony_raft_voters", "Number of Raft voters")?;
        let audit_entries =
            IntGauge::new("colony_audit_entries", "Entries in the audit hash chain")?;
        let members = IntGaugeVec::new(
            Opts::new(
                "colony_members",
                "Cluster members as this node's gossip sees them, by state",
            ),
            &["state"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "colony_cluster_events_total",
                "Cluster events: gossip_packets_in/out, gossip_packets_rejected, gossip_packets_replayed, member_up/suspect/down, \
                 raft_leader_changes, forwarded_writes, forwarded_reads",
            ),
            &["event"],
        )?;
        let replication_lag = IntGaugeVec::new(
            Opts::new(
                "colony_raft_replication_lag",
                "Entries a follower is behind the leader (on the leader)",
            ),
            &["follower"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(http_in_flight.clone()))?;
        registry.register(Box::new(raft_index.clone()))?;
        registry.register(Box::new(raft_is_leader.clone()))?;
        let tls_expiry = IntGaugeVec::new(
            Opts::new(
                "colony_tls_certificate_expiry_seconds",
                "Seconds until the certificate expires (negative: expired)",
            ),
            &["certificate"],
        )?;
        registry.register(Box::new(tls_expiry.clone()))?;
        let tls_handshakes = IntCounterVec::new(
            Opts::new(
                "colony_tls_handshakes_total",
                "TLS handshakes by listener and outcome (completed, failed, timed_out; refused: closed over the in-flight limits)",
            ),
            &["listener", "outcome"],
        )?;
        registry.register(Box::new(tls_handshakes.clone()))?;
        registry.register(Box::new(raft_voters.clone()))?;
        registry.register(Box::new(audit_entries.clone()))?;
        registry.register(Box::new(members.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(replication_lag.clone()))?;
        let actor_restarts = IntCounterVec::new(
            Opts::new(
                "colony_actor_restarts_total",
                "Actors restarted by their supervisor, by supervisor",
            ),
            &["supervisor"],
        )?;
        registry.register(Box::new(actor_restarts.clone()))?;
        let component_up = IntGaugeVec::new(
            Opts::new(
                "colony_component_up",
                "1 while the component runs, by component",
            ),
            &["component"],
        )?;
        let component_restarts = IntCounterVec::new(
            Opts::new(
                "colony_component_restarts_total",
                "Restarts of a component (or of its children), by component",
            ),
            &["component"],
        )?;
        let component_queue_depth = IntGaugeVec::new(
            Opts::new(
                "colony_component_queue_depth",
                "Work waiting for a component, by component",
            ),
            &["component"],
        )?;
        let buckets = IntGauge::new("colony_buckets", "Rate-limit buckets held by this node")?;
        let evaluations_running = IntGauge::new(
            "colony_evaluations_running",
            "Evaluations running on this node",
        )?;
        registry.register(Box::new(component_up.clone()))?;
        registry.register(Box::new(component_restarts.clone()))?;
        registry.register(Box::new(component_queue_depth.clone()))?;
        registry.register(Box::new(buckets.clone()))?;
        registry.register(Box::new(evaluations_running.clone()))?;
        let provider_latency = HistogramVec::new(
            HistogramOpts::new(
                "colony_provider_request_duration_seconds",
                "Model provider call latency, retries included, by provider kind",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            // Only bounded label values: a tenant chooses provider ids, URLs and models.
            &["kind"],
        )?;
        registry.register(Box::new(provider_latency.clone()))?;
        let evaluations = IntGaugeVec::new(
            Opts::new("colony_evaluations", "Evaluations by status"),
            &["status"],
        )?;
        registry.register(Box::new(evaluations.clone()))?;
        let evaluation_events = IntCounterVec::new(
            Opts::new(
                "colony_evaluation_events_total",
                "Evaluation runtime events on this node",
            ),
            &["event"],
        )?;
        registry.register(Box::new(evaluation_events.clone()))?;
        let provider_events = IntCounterVec::new(
            Opts::new(
                "colony_provider_events_total",
                "Model provider calls, failures, retries and breaker rejections, by provider kind",
            ),
            &["kind", "event"],
        )?;
        registry.register(Box::new(provider_events.clone()))?;
        let provider_circuit = IntGaugeVec::new(
            Opts::new(
                "colony_provider_circuits",
                "Circuit breakers (one per tenant and provider) by provider kind and state",
            ),
            &["kind", "state"],
        )?;
        registry.register(Box::new(provider_circuit.clone()))?;
        let tenants_over_budget = IntGaugeVec::new(
            Opts::new(
                "colony_tenants_over_budget",
                "Tenants at or over the soft threshold (80%) or the hard cap of their monthly budget",
            ),
            &["level"],
        )?;
        registry.register(Box::new(tenants_over_budget.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "colony",
            ),
        ))?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            http_in_flight,
            raft_index,
            raft_is_leader,
            tls_expiry,
            tls_handshakes,
            raft_voters,
            audit_entries,
            members,
            events,
            replication_lag,
            actor_restarts,
            provider_latency,
            evaluations,
            evaluation_events,
            provider_events,
            provider_circuit,
            tenants_over_budget,
            component_up,
            component_restarts,
            component_queue_depth,
            buckets,
            evaluations_running,
            last_seen: Arc::default(),
        })
    }

    /// Brings the counter `event` up to `total`, a monotonic count kept elsewhere.
    pub fn sync_counter(&self, event: &str, total: u64) {
        self.sync(&self.events, "event", event, total);
    }

    /// Brings `colony_actor_restarts_total{supervisor}` up to `total`.
    pub fn sync_restarts(&self, supervisor: &str, total: u64) {
        self.sync(&self.actor_restarts, "restarts", supervisor, total);
    }

    /// Exports each component's status, restarts and gauges.
    pub fn export_components(&self, states: &[colony_supervision::ComponentState]) {
        for c in states {
            let up = c.status == colony_supervision::ComponentStatus::Running;
            self.component_up
                .with_label_values(&[&c.name])
                .set(i64::from(up));
            self.sync(&self.component_restarts, "component", &c.name, c.restarts);
            if let Some(q) = c.gauges.queue_depth {
                self.component_queue_depth
                    .with_label_values(&[&c.name])
                    .set(q as i64);
            }
            if let Some(b) = c.gauges.buckets {
                self.buckets.set(b as i64);
            }
            if let Some(e) = c.gauges.evaluations_running {
                self.evaluations_running.set(e as i64);
            }
        }
    }

    /// Brings `colony_evaluation_events_total{event}` up to `total`.
    pub fn sync_evaluation_event(&self, event: &str, total: u64) {
        self.sync(&self.evaluation_events, "evaluation", event, total);
    }

    /// Brings `colony_provider_events_total{kind, event}` up to `total`.
    pub fn sync_provider_event(&self, provider: &str, event: &str, total: u64) {
        let mut seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen
            .entry(format!("provider/{provider}/{event}"))
            .or_insert(0);
        if total > *last {
            self.provider_events
                .with_label_values(&[provider, event])
                .inc_by(total - *last);
            *last = total;
        }
    }

    /// Brings `colony_tls_handshakes_total{listener, outcome}` up to `total`.
    pub fn sync_tls_handshakes(&self, listener: &str, outcome: &str, total: u64) {
        let mut seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.entry(format!("tls/{listener}/{outcome}")).or_insert(0);
        if total > *last {
            self.tls_handshakes
                .with_label_values(&[listener, outcome])
                .inc_by(total - *last);
            *last = total;
        }
    }

    fn sync(&self, family: &IntCounterVec, kind: &str, label: &str, total: u64) {
        let mut seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.entry(format!("{kind}/{label}")).or_insert(0);
        if total > *last {
            family.with_label_values(&[label]).inc_by(total - *last);
            *last = total;
        }
    }

    /// Renders every family in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}
