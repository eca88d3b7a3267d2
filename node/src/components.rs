//! Starting each component of a node: listeners, Raft, membership, the rate limiter, the
//! evaluation runtime and the HTTP API. The node (`node.rs`) calls these in order.

use crate::config::{Config, ConfigError};
use crate::error::RunError;
use crate::view::NodeView;
use anyhow::Context;
use colony_api::{ApiSettings, Metrics};
use colony_cluster::actor_link::ActorLink;
use colony_cluster::membership::{MemberEvent, Membership, MembershipConfig, NodeMeta, NodeState};
use colony_cluster::raft::NodeInfo;
use colony_cluster::transport::faults::Faults;
use colony_cluster::{RaftNode, RaftNodeConfig};
use colony_evaluator::{
    Credentials, Evaluator, OperatorCredential, RunContext, RunLimits, RunSettings,
};
use colony_limiter::{
    Buckets, BucketsConfig, ClusterView, Handoff, HandoffConfig, Limiter, LimiterConfig, Router,
    RouterArgs, RouterMsg,
};
use colony_providers::{BreakerConfig, EgressPolicy, Registry, ResponseCache};
use colony_tls::identity::NodeIdentity;
use colony_tls::listener::{HandshakeStats, Limits, PeerInfo, TlsListener};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The addresses of a node's listeners: bound, and as told to others.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// The HTTP API, bound.
    pub http_bound: SocketAddr,
    /// The HTTP API, advertised.
    pub http: SocketAddr,
    /// The internal (Raft) listener, bound.
    pub raft_bound: SocketAddr,
    /// The internal (Raft) listener, advertised.
    pub raft: SocketAddr,
    /// The actor transport, bound.
    pub cluster_bound: SocketAddr,
    /// The actor transport, advertised.
    pub cluster: SocketAddr,
}

impl Addresses {
    /// Every address of this node, bound and advertised: provider calls never reach them
    /// (a listener on 0.0.0.0 is reachable at every local address).
    pub fn own(&self, gossip: SocketAddr, gossip_advertise: Option<SocketAddr>) -> Vec<SocketAddr> {
        let mut own = vec![
            self.http_bound,
            self.http,
            self.raft_bound,
            self.raft,
            self.cluster_bound,
            self.cluster,
            gossip,
        ];
        own.extend(gossip_advertise);
        own.sort();
        own.dedup();
        own
    }
}

/// A node's TCP listeners, bound before storage is opened so that a clash is reported
/// before anything is written.
pub struct Listeners {
    /// The HTTP API.
    pub http: TcpListener,
    /// Raft RPCs and forwarded writes.
    pub raft: TcpListener,
    /// The actor transport.
    pub cluster: TcpListener,
    /// Their addresses.
    pub addrs: Addresses,
}

impl Listeners {
    /// Binds every listener. Port 0 is allowed (tests): the bound address is what others
    /// are told, unless an advertised one is configured.
    pub async fn bind(config: &Config) -> Result<Listeners, RunError> {
        let (http, http_bound) = bind("http.listen", config.http.listen).await?;
        let (raft, raft_bound) = bind("raft.listen", config.raft.listen).await?;
        let (cluster, cluster_bound) = bind("cluster.listen", config.cluster.listen).await?;
        let addrs = Addresses {
            http_bound,
            http: config.http.advertise.unwrap_or(http_bound),
            raft_bound,
            raft: config.raft.advertise.unwrap_or(raft_bound),
            cluster_bound,
            cluster: config.cluster.advertise.unwrap_or(cluster_bound),
        };
        Ok(Listeners {
            http,
            raft,
            cluster,
            addrs,
        })
    }
}

async fn bind(key: &str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), RunError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ConfigError::new(key, format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("reading the {key} address"))?;
    Ok((listener, bound))
}

/// Opens storage and starts Raft.
pub async fn start_raft(
    config: &Config,
    node_id: u64,
    addrs: &Addresses,
    secret: &str,
    faults: &Faults,
    tls: Option<&NodeTls>,
) -> Result<RaftNode, RunError> {
    RaftNode::start(RaftNodeConfig {
        node_id,
        info: NodeInfo {
            raft_addr: addrs.raft.to_string(),
            http_addr: addrs.http.to_string(),
        },
        dir: config.data_dir.join("raft"),
        heartbeat_interval: config.raft.heartbeat,
        election_timeout_min: config.raft.election_timeout_min,
        election_timeout_max: config.raft.election_timeout_max,
        snapshot_after_logs: config.raft.snapshot_after_logs,
        logs_kept_after_snapshot: config.raft.logs_kept_after_snapshot,
        secret: secret.to_string(),
        faults: faults.clone(),
        max_entry_bytes: config.raft.max_entry_bytes,
        peer_tls: tls.map(|t| (*t.client).clone()),
    })
    .await
    .map_err(|e| match e {
        colony_cluster::node::NodeError::Open { dir, source } => ConfigError::new(
            "data_dir",
            format!(
                "cannot open the database in {dir} (is another colony node using this data \
                 dir?): {source}"
            ),
        )
        .into(),
        other => RunError::Other(anyhow::Error::new(other).context("starting raft")),
    })
}

/// Starts gossip membership; this node is `Joining` until it has joined.
pub async fn start_membership(
    config: &Config,
    node_id: u64,
    addrs: &Addresses,
    secret: &str,
) -> Result<(Membership, mpsc::Receiver<MemberEvent>), RunError> {
    let meta = NodeMeta {
        node_id,
        http_addr: addrs.http.to_string(),
        raft_addr: addrs.raft.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        state: NodeState::Joining,
        cluster_addr: addrs.cluster.to_string(),
        features: colony_cluster::features::SUPPORTED
            .iter()
            .map(|f| f.to_string())
            .collect(),
    };
    let mut gossip = MembershipConfig::lan_defaults(
        node_id,
        config.gossip.listen,
        secret.as_bytes().to_vec(),
        meta,
    );
    gossip.advertise = config.gossip.advertise;
    gossip.seeds = config.cluster.seeds.clone();
    gossip.probe_period = config.gossip.probe_period;
    gossip.probe_rtt = config.gossip.probe_rtt;
    gossip.suspect_to_down = config.gossip.suspect_to_down;
    gossip.legacy = config.gossip.legacy;
    Membership::start(gossip).await.map_err(|e| {
        RunError::Config(ConfigError::new(
            "gossip.listen",
            format!("cannot start gossip on {}: {e}", config.gossip.listen),
        ))
    })
}

/// Logs member events and passes them on to the actor transport, which dials and drops
/// sessions as members come and go (the member table itself is read on demand).
pub async fn forward_member_events(
    events: &mut mpsc::Receiver<MemberEvent>,
    link: mpsc::Sender<MemberEvent>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            () = stop.cancelled() => None,
        };
        let Some(event) = event else { return };
        // A full channel loses nothing for good: the link also reconciles periodically.
        let _ = link.try_send(event.clone());
        match event {
            MemberEvent::Up(m) => {
                tracing::info!(member = m.node_id, addr = %m.gossip_addr, "member up")
            }
            MemberEvent::Down(m) => {
                tracing::warn!(member = m.node_id, addr = %m.gossip_addr, "member down")
            }
            MemberEvent::Updated(m) => {
                tracing::info!(member = m.node_id, state = ?m.meta.as_ref().map(|x| x.state), "member updated")
            }
        }
    }
}

/// The rate-limit runtime of a node.
pub struct RateLimiter {
    /// Hands buckets between owners and replicates them.
    pub handoff: Handoff,
    /// The bucket actors.
    pub buckets: Buckets,
    /// Answers checks routed here from other nodes.
    pub router: ractor::ActorRef<RouterMsg>,
}

/// Starts the bucket actors, the handoff and the router of routed checks; the [`Limiter`]
/// routes this node's own checks (the HTTP API takes it).
pub async fn start_rate_limiter(
    config: &Config,
    node_id: u64,
    membership: &Membership,
    link: &ActorLink,
) -> Result<(RateLimiter, Limiter), RunError> {
    let view: Arc<dyn ClusterView> = Arc::new(NodeView {
        membership: membership.clone(),
        link: link.clone(),
    });
    let r = &config.ratelimit;
    let handoff = Handoff::new(
        node_id,
        view.clone(),
        HandoffConfig {
            window: r.handoff_window,
            pull_timeout: r.pull_timeout,
            replication_interval: r.replication_interval,
            replicas: r.replicas,
            ..HandoffConfig::default()
        },
    );
    let buckets = Buckets::start(BucketsConfig {
        handoff: Some(handoff.clone()),
        max_buckets_per_tenant: r.max_buckets_per_tenant,
        ..BucketsConfig::default()
    })
    .await
    .context("starting the bucket actors")?;
    let router = Router::start(RouterArgs {
        buckets: buckets.clone(),
        node_id,
    })
    .await
    .map_err(|e| anyhow::anyhow!("starting the router actor: {e}"))?;
    let limiter = Limiter::new(node_id, buckets.clone(), view, LimiterConfig::default());
    Ok((
        RateLimiter {
            handoff,
            buckets,
            router,
        },
        limiter,
    ))
}

/// The HTTP API's settings from the config.
pub fn api_settings(config: &Config) -> Arc<ApiSettings> {
    Arc::new(ApiSettings {
        max_body_bytes: config.http.max_body_bytes,
        write_timeout: config.http.write_timeout,
        max_ready_lag: config.cluster.max_ready_lag,
        lease_ttl: config.ratelimit.lease_ttl,
        spec_limits: spec_limits(config),
        max_duration_ms: config.ratelimit.max_duration_ms,
        max_live_evaluations: config.evaluations.max_live_per_tenant,
        max_stored_evaluations: config.evaluations.max_stored_per_tenant,
    })
}

/// Serves `app` on `listener` until `stop`, then finishes in-flight requests.
pub async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = app.into_make_service_with_connect_info::<PeerInfo>();
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// An HTTP listener: plain, or TLS when the node has certificates (the public API with
/// HSTS, or the internal listener with mutual TLS).
pub enum HttpListener {
    /// Plain HTTP (no `tls.certs_dir`).
    Plain(TcpListener),
    /// HTTPS; `hsts` adds `Strict-Transport-Security` to every response.
    Tls {
        /// The listener.
        listener: TlsListener,
        /// Whether responses carry HSTS (the public API).
        hsts: bool,
    },
}

/// Bounds of the internal listener's handshakes: its clients are the other nodes, each
/// with a few pooled connections.
const INTERNAL_LIMITS: Limits = Limits {
    max_in_flight: 256,
    max_per_ip: 64,
    timeout: std::time::Duration::from_secs(5),
};

impl HttpListener {
    /// The public API on `listener`: HTTPS with HSTS when `tls` is given.
    pub fn public(listener: TcpListener, tls: Option<&NodeTls>) -> Result<Self, RunError> {
        Self::new(
            listener,
            tls.map(|t| t.public.clone()),
            Limits::default(),
            true,
        )
    }

    /// The internal listener: mutual TLS when `tls` is given.
    pub fn internal(listener: TcpListener, tls: Option<&NodeTls>) -> Result<Self, RunError> {
        Self::new(
            listener,
            tls.map(|t| t.internal.clone()),
            INTERNAL_LIMITS,
            false,
        )
    }

    fn new(
        listener: TcpListener,
        config: Option<Arc<colony_tls::rustls::ServerConfig>>,
        limits: Limits,
        hsts: bool,
    ) -> Result<Self, RunError> {
        let Some(config) = config else {
            return Ok(Self::Plain(listener));
        };
        let listener =
            TlsListener::new(listener, config, limits).context("starting the TLS listener")?;
        Ok(Self::Tls { listener, hsts })
    }

    /// Handshake counts, when TLS.
    pub fn handshakes(&self) -> Option<Arc<HandshakeStats>> {
        match self {
            Self::Plain(_) => None,
            Self::Tls { listener, .. } => Some(listener.stats()),
        }
    }

    /// Serves `app` until `stop`, then finishes in-flight requests.
    pub async fn serve(self, app: axum::Router, stop: CancellationToken) -> std::io::Result<()> {
        match self {
            Self::Plain(l) => serve_http(l, app, stop).await,
            Self::Tls { listener, hsts } => {
                let app = if hsts {
                    app.layer(axum::middleware::map_response(hsts_header))
                } else {
                    app
                };
                let app = app.into_make_service_with_connect_info::<PeerInfo>();
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            }
        }
    }
}

/// `Strict-Transport-Security` on every HTTPS response (a year, as browsers expect).
async fn hsts_header(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// The node's certificates and the TLS configurations built on them.
#[derive(Debug, Clone)]
pub struct NodeTls {
    /// CA, node certificate and key (reloadable).
    pub identity: Arc<NodeIdentity>,
    /// The public API's server.
    pub public: Arc<colony_tls::rustls::ServerConfig>,
    /// The internal listener's and the actor transport's server (mutual TLS).
    pub internal: Arc<colony_tls::rustls::ServerConfig>,
    /// The node-to-node client (mutual TLS).
    pub client: Arc<colony_tls::rustls::ClientConfig>,
}

/// The node's TLS, when `tls.certs_dir` is set; a missing or bad file is a config error
/// naming the key.
pub fn load_tls(config: &Config) -> Result<Option<NodeTls>, ConfigError> {
    let Some(dir) = &config.tls.certs_dir else {
        return Ok(None);
    };
    let bad = |e: colony_tls::TlsError| ConfigError::new("tls.certs_dir", e.to_string());
    let identity = Arc::new(NodeIdentity::load(dir).map_err(bad)?);
    Ok(Some(NodeTls {
        public: Arc::new(
            colony_tls::server::public(&identity, !config.tls.admin_clients.is_empty())
                .map_err(bad)?,
        ),
        internal: Arc::new(colony_tls::server::internal(&identity).map_err(bad)?),
        client: Arc::new(colony_tls::server::internal_client(&identity).map_err(bad)?),
        identity,
    }))
}

/// Re-reads the node certificate and key every `interval` when they changed, and on
/// SIGHUP, until `stop`. A bad pair is logged and the one in use stays.
pub async fn watch_certificates(
    identity: Arc<NodeIdentity>,
    interval: std::time::Duration,
    mut hangup: tokio::signal::unix::Signal,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error = None;
    loop {
        let force = tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => false,
            _ = hangup.recv() => true,
        };
        let id = identity.clone();
        // Small files, but still disk reads and signature checks: off the workers.
        let result = tokio::task::spawn_blocking(move || id.reload(force)).await;
        match result {
            Ok(Ok(true)) => {
                last_error = None;
                tracing::info!(
                    dir = %identity.dir().display(),
                    not_after = identity.not_after(),
                    "loaded a new node certificate; new connections use it"
                );
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                let text = e.to_string();
                // Once per distinct error, not every check while the files are wrong.
                if force || last_error.as_ref() != Some(&text) {
                    tracing::warn!(error = %text, "the node certificate was not reloaded; the current one stays in use");
                }
                last_error = Some(text);
            }
            Err(e) => tracing::warn!(error = %e, "certificate reload task failed"),
        }
    }
}

/// What the evaluation runtime is started with, besides the config.
pub struct EvaluatorWiring<'a> {
    /// This node.
    pub node_id: u64,
    /// Raft, for checkpoints.
    pub raft: &'a RaftNode,
    /// Metrics, for provider latency.
    pub metrics: &'a Metrics,
    /// Opens tenant credentials.
    pub sealing_key: Arc<colony_core::credential::SealingKey>,
    /// This node's own addresses, which provider calls never reach.
    pub own_listeners: Vec<SocketAddr>,
    /// The operator's credentials.
    pub operator_credentials: Vec<OperatorCredential>,
}

/// The spec limits of the node config.
pub fn spec_limits(config: &Config) -> colony_eval::SpecLimits {
    colony_eval::SpecLimits {
        max_cases: config.evaluations.max_cases,
        max_prompt_bytes: config.evaluations.max_prompt_bytes,
        max_reference_bytes: config.evaluations.max_reference_bytes,
        max_output_bytes: config.evaluations.max_output_bytes,
        ..colony_eval::SpecLimits::default()
    }
}

/// Starts the evaluation runtime: provider clients, the response cache, the actors.
pub async fn start_evaluator(
    config: &Config,
    w: EvaluatorWiring<'_>,
) -> Result<Evaluator, RunError> {
    let rules = EgressPolicy::parse(&config.providers.egress.allow)
        .map_err(|e| ConfigError::new("providers.egress.allow", e.to_string()))?;
    let egress = EgressPolicy::new(rules, w.own_listeners);
    let registry = Arc::new(
        Registry::new(BreakerConfig::default(), egress)
            .map_err(|e| anyhow::anyhow!("creating provider clients: {e}"))?,
    );
    let cache = if config.evaluations.cache {
        let dir = config.data_dir.join("cache");
        let db = sled::Config::new().path(&dir).open().map_err(|e| {
            ConfigError::new(
                "data_dir",
                format!("cannot open the response cache in {}: {e}", dir.display()),
            )
        })?;
        let tree = db
            .open_tree("responses")
            .map_err(|e| anyhow::anyhow!("opening the response cache: {e}"))?;
        Some(ResponseCache::new(tree, config.evaluations.cache_ttl))
    } else {
        None
    };
    let e = &config.evaluations;
    let ctx = RunContext {
        raft: w.raft.clone(),
        node_id: w.node_id,
        registry,
        cache,
        counters: Arc::default(),
        latency: Some(w.metrics.provider_latency.clone()),
        settings: RunSettings {
            checkpoint_every: e.checkpoint_every,
            checkpoint_interval: e.checkpoint_interval,
        },
        credentials: Credentials::new(w.sealing_key, w.operator_credentials),
        scoring: Arc::new(tokio::sync::Semaphore::new(e.scoring_threads.max(1))),
        limits: RunLimits {
            score_timeout: e.score_timeout,
            max_output_bytes: e.max_output_bytes,
            max_evaluation_output_bytes: e.max_evaluation_output_bytes,
            max_response_bytes: e.max_response_bytes,
            // Half the entry cap leaves room for the proposal's own fields.
            max_checkpoint_bytes: config.raft.max_entry_bytes / 2,
        },
        component: colony_supervision::Component::new(
            "evaluations",
            colony_supervision::ComponentKind::Supervisor,
        ),
    };
    Evaluator::start(ctx)
        .await
        .map_err(|e| RunError::Other(anyhow::Error::new(e)))
}
