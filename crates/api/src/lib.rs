//! Colony's public HTTP API (axum).
//!
//! # Layout
//! - [`problem`]: RFC 9457 problem+json, the one error shape; error code -> status mapping
//! - [`extract`]: JSON body and query extractors that name the offending field
//! - [`middleware`]: request id, tracing span, metrics, problem-ifying framework errors
//! - [`auth`]: admin token and tenant API key authentication
//! - [`metrics`]: the Prometheus registry served at `/metrics`
//! - [`routes`]: handlers, one file per resource
//! - [`tier_limits`]: tenant tier rate limits and the IETF RateLimit fields

pub mod auth;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod problem;
pub mod routes;
pub mod tier_limits;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use colony_cluster::membership::Membership;
use colony_cluster::transport::faults::Faults;
use colony_cluster::RaftNode;
use colony_limiter::{Buckets, Limiter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use metrics::Metrics;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a write may wait for Raft before answering 503.
    pub write_timeout: Duration,
    /// `/readyz` fails while applied lags committed by more than this.
    pub max_ready_lag: u64,
    /// Lifetime of a tenant concurrency lease that is never released.
    pub lease_ttl: Duration,
    /// Bounds on an evaluation spec (cases, prompt, reference and output sizes, ...).
    pub spec_limits: colony_eval::SpecLimits,
    /// Largest `duration_ms` of a rate-limit check item.
    pub max_duration_ms: u64,
    /// Most evaluations one tenant may have queued or running at once.
    pub max_live_evaluations: u32,
    /// Most evaluations one tenant may store (any status).
    pub max_stored_evaluations: u32,
}

/// Whether the node is shutting down (then `/readyz` answers 503), and how far its
/// drain has got.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
    requested: Arc<tokio::sync::Notify>,
    phase: Arc<std::sync::RwLock<Option<DrainPhase>>>,
}

/// A step of a node's drain, in the order the drain takes them (`drain` in `/v1/cluster`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainPhase {
    /// Evaluations this node runs are checkpointed and handed to other nodes.
    HandingOffEvaluations,
    /// Rate-limit buckets are pushed to their new owners.
    HandingOffBuckets,
    /// Waiting until peers stop routing checks here.
    WaitingForPeersToStopRoutingHere,
    /// Handing Raft leadership (and a voter seat) to another node.
    SteppingDownAsRaftLeader,
    /// In-flight HTTP requests finish; new ones are refused.
    FinishingRequests,
    /// Leaving gossip membership; the process exits next.
    Leaving,
}

impl DrainPhase {
    /// Every phase, in order.
    pub const ALL: [DrainPhase; 6] = [
        DrainPhase::HandingOffEvaluations,
        DrainPhase::HandingOffBuckets,
        DrainPhase::WaitingForPeersToStopRoutingHere,
        DrainPhase::SteppingDownAsRaftLeader,
        DrainPhase::FinishingRequests,
        DrainPhase::Leaving,
    ];

    /// Its name in `/v1/cluster` and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            DrainPhase::HandingOffEvaluations => "handing_off_evaluations",
            DrainPhase::HandingOffBuckets => "handing_off_buckets",
            DrainPhase::WaitingForPeersToStopRoutingHere => {
                "waiting_for_peers_to_stop_routing_here"
            }
            DrainPhase::SteppingDownAsRaftLeader => "stepping_down_as_raft_leader",
            DrainPhase::FinishingRequests => "finishing_requests",
            DrainPhase::Leaving => "leaving",
        }
    }
}

impl Lifecycle {
    /// Marks the node as draining.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Asks the node to drain and exit (`POST /v1/cluster/drain`), as SIGTERM does.
    pub fn request_drain(&self) {
        // Stores a permit when nobody waits yet, so an early request is not lost.
        self.requested.notify_one();
    }

    /// Resolves once a drain was requested over the API.
    pub async fn drain_requested(&self) {
        self.requested.notified().await;
    }

    /// Records the drain's current step (shown in `/v1/cluster` and logged).
    pub fn set_phase(&self, phase: DrainPhase) {
        tracing::info!(phase = phase.as_str(), "drain");
        *self.phase.write().unwrap_or_else(|p| p.into_inner()) = Some(phase);
    }

    /// The drain's current step, if draining.
    pub fn phase(&self) -> Option<DrainPhase> {
        *self.phase.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// What every handler can reach. axum clones the state for every request, so it is one
/// `Arc`: cloning the fields one by one cost ~12% of CPU under load (benches/results/HISTORY.md).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    /// Wraps the parts.
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct AppParts {
    /// The Raft handle: writes, local reads, audit.
    pub raft: RaftNode,
    /// Gossip membership: who is alive, their addresses and state.
    pub membership: Membership,
    /// Test-only fault injection switches (inert unless enabled by config).
    pub faults: Faults,
    /// The rate-limit bucket actors of this node.
    pub buckets: Buckets,
    /// Sends each rate-limit check to its bucket's owner node (this one or a peer).
    pub limiter: Limiter,
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// Drain state.
    pub lifecycle: Lifecycle,
    /// Every long-lived component of the node and its observable state.
    pub components: colony_supervision::Components,
    /// HTTP settings.
    pub settings: Arc<ApiSettings>,
    /// Seals tenants' provider credentials before they are proposed (key derived from
    /// the cluster secret).
    pub sealing_key: Arc<colony_core::credential::SealingKey>,
    /// Validated specs and aggregates of evaluations, so a GET does not redo them.
    pub eval_cache: routes::EvalCache,
    /// The evaluation runtime's counters and provider clients (for `/metrics`); `None`
    /// in tests that run the API without it.
    pub evaluations: Option<EvaluationParts>,
    /// How each listener is secured, and the certificates in use (`/v1/cluster`,
    /// `/metrics`).
    pub transport: TransportSecurity,
}

/// How the node's listeners are secured.
#[derive(Debug, Clone, Default)]
pub struct TransportSecurity {
    /// Per listener (`http`, `raft`, `cluster`, `gossip`): what protects it.
    pub listeners: Vec<(&'static str, &'static str)>,
    /// The node's certificates, when TLS is on.
    pub identity: Option<Arc<colony_tls::identity::NodeIdentity>>,
    /// Handshake counts of TLS listeners, by listener name.
    pub handshakes: Vec<(&'static str, Arc<colony_tls::listener::HandshakeStats>)>,
    /// Client certificate names served as the admin (`tls.admin_clients`).
    pub admin_clients: Vec<String>,
}

/// What `/metrics` reads from the evaluation runtime.
#[derive(Debug, Clone)]
pub struct EvaluationParts {
    /// Cases, checkpoints, cost, restarts, reassignments.
    pub counters: Arc<colony_evaluator::EvalCounters>,
    /// Provider clients: breaker state and call counters per provider.
    pub providers: Arc<colony_providers::Registry>,
}

/// The whole API as one router.
pub fn router(app: AppState) -> Router {
    let max_body = app.settings.max_body_bytes;
    routes::routes(&app)
        .fallback(routes::fallback)
        // Inner layer: runs inside the request span, after the request id is assigned.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::consistent_reads,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::around_request,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_phase_is_shown_by_the_names_operators_read() {
        let lifecycle = Lifecycle::default();
        assert_eq!(lifecycle.phase(), None);
        for phase in DrainPhase::ALL {
            lifecycle.set_phase(phase);
            assert_eq!(lifecycle.phase(), Some(phase));
            assert_eq!(
                serde_json::to_value(lifecycle.phase()).ok(),
                Some(serde_json::Value::String(phase.as_str().to_string()))
            );
        }
        let names: Vec<&str> = DrainPhase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "handing_off_evaluations",
                "handing_off_buckets",
                "waiting_for_peers_to_stop_routing_here",
                "stepping_down_as_raft_leader",
                "finishing_requests",
                "leaving"
            ]
        );
    }
}
