//! Wiring of one node: config, storage, Raft, bootstrap, HTTP, signals, shutdown.

use crate::bootstrap::{ensure_cluster_initialised, local_secret, Secrets};
use crate::cli::NodeArgs;
use crate::config::{Config, ConfigError, LogConfig, LogFormat};
use crate::datadir;
use crate::error::RunError;
use anyhow::Context;
use colony_api::{
    ApiSettings, AppParts, AppState, DrainPhase, EvaluationParts, Lifecycle, Metrics,
};
use colony_cluster::actor_link::{ActorLink, ActorLinkConfig};
use colony_cluster::membership::{
    MemberEvent, MemberStatus, Membership, MembershipConfig, NodeMeta, NodeState,
    EVENT_CHANNEL_CAPACITY,
};
use colony_cluster::raft::NodeInfo;
use colony_cluster::transport::faults::Faults;
use colony_cluster::voters::VoterSettings;
use colony_cluster::RaftNode;
use colony_cluster::RaftNodeConfig;
use colony_evaluator::{
    Credentials, Evaluator, EvaluatorConfig, OperatorCredential, RunContext, RunLimits, RunSettings,
};
use colony_limiter::{
    Buckets, BucketsConfig, ClusterView, Handoff, HandoffConfig, Limiter, LimiterConfig, Router,
    RouterArgs, ROUTER_GROUP, ROUTER_SCOPE,
};
use colony_providers::{BreakerConfig, EgressPolicy, Registry, ResponseCache};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait on drain for this node's own view to drop it as a bucket owner.
const DRAIN_VIEW_WAIT: Duration = Duration::from_secs(2);

/// On drain, the transport stays up until no routed call arrived for this long (peers
/// still sending here have learnt that this node is draining)...
const DRAIN_QUIET: Duration = Duration::from_millis(300);

/// ...or for at most this long.
const DRAIN_QUIET_MAX: Duration = Duration::from_secs(5);

/// On drain, the longest wait for another node to take over Raft leadership.
const DRAIN_STEP_DOWN_WAIT: Duration = Duration::from_secs(5);

/// On drain, the longest wait for running evaluations to checkpoint and stop.
const DRAIN_EVALUATIONS_WAIT: Duration = Duration::from_secs(10);

/// What the evaluation runtime is started with, besides the config.
struct EvaluatorWiring<'a> {
    node_id: u64,
    raft: &'a RaftNode,
    membership: &'a Membership,
    metrics: &'a Metrics,
    sealing_key: Arc<colony_core::credential::SealingKey>,
    own_listeners: Vec<std::net::SocketAddr>,
    operator_credentials: Vec<OperatorCredential>,
}

/// The spec limits of the node config.
fn spec_limits(config: &Config) -> colony_eval::SpecLimits {
    colony_eval::SpecLimits {
        max_cases: config.evaluations.max_cases,
        max_prompt_bytes: config.evaluations.max_prompt_bytes,
        max_reference_bytes: config.evaluations.max_reference_bytes,
        max_output_bytes: config.evaluations.max_output_bytes,
        ..colony_eval::SpecLimits::default()
    }
}

/// Starts the evaluation runtime: provider clients, the response cache, the actors.
async fn start_evaluator(
    config: &Config,
    w: EvaluatorWiring<'_>,
    stop: tokio::sync::watch::Receiver<bool>,
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
    };
    Evaluator::start(ctx, w.membership.clone(), EvaluatorConfig::default(), stop)
        .await
        .map_err(|e| RunError::Other(anyhow::Error::new(e)))
}

/// Builds the config: defaults, then the file, then `COLONY_*` variables, then flags.
pub fn load_config(args: &NodeArgs) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let file = args
        .config
        .clone()
        .or_else(|| std::env::var_os("COLONY_CONFIG").map(Into::into));
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(
                format!("--config {shown}"),
                format!("cannot read the file: {e}"),
            )
        })?;
        config.apply_toml(&text, &shown)?;
    }
    config.apply_env(std::env::vars())?;
    for (key, value) in args.overrides() {
        if crate::config::SECRET_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::new(
                format!("--set {key}"),
                format!(
                    "a secret on the command line is visible to every local user (ps, \
                     /proc/PID/cmdline): set {} or put it in the config file",
                    crate::config::env_name(&key)
                ),
            ));
        }
        config.set(&key, &value)?;
    }
    config.validate()?;
    Ok(config)
}

/// Starts the tracing subscriber. `RUST_LOG`, when set, wins over `log.level`.
pub fn init_logging(log: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
}

/// Runs the node until SIGTERM/SIGINT, then shuts down gracefully.
pub async fn run(config: Config, secrets: Secrets) -> Result<(), RunError> {
    let Secrets {
        admin_token: env_token,
        operator_credentials,
        environ_wipe_error,
    } = secrets;
    if let Some(e) = environ_wipe_error {
        tracing::warn!(
            error = %e,
            "could not zero the secrets in /proc/self/environ (they are gone from the environment)"
        );
    }
    let dir = config.data_dir.clone();
    datadir::prepare(&dir)?;
    crate::secrets::restrict_data_dir(&dir).map_err(|e| {
        ConfigError::new(
            "data_dir",
            format!("cannot restrict {} to its owner: {e}", dir.display()),
        )
    })?;
    let node_id = datadir::node_id(&dir)?;

    // Bind every listener before opening storage so a clash is reported before anything
    // is written. Port 0 is allowed (tests); the bound address is what others are told.
    let listener = bind("http.listen", config.http.listen).await?;
    let http_bound = listener
        .local_addr()
        .context("reading the HTTP listen address")?;
    let http_addr = config.http.advertise.unwrap_or(http_bound);
    let raft_listener = bind("raft.listen", config.raft.listen).await?;
    let raft_bound = raft_listener
        .local_addr()
        .context("reading the raft listen address")?;
    let raft_addr = config.raft.advertise.unwrap_or(raft_bound);
    let cluster_listener = bind("cluster.listen", config.cluster.listen).await?;
    let cluster_bound = cluster_listener
        .local_addr()
        .context("reading the cluster listen address")?;
    let cluster_addr = config.cluster.advertise.unwrap_or(cluster_bound);

    // Without seeds a single node still runs gossip; with no secret configured it gets a
    // random one, so nobody can join it until it is restarted with a shared secret.
    // It is kept in the data dir (0600) so credentials sealed with it still open after a
    // restart.
    let secret = if config.cluster.secret.is_empty() {
        local_secret(&dir)?
    } else {
        config.cluster.secret.clone()
    };
    let sealing_key = Arc::new(
        colony_core::credential::SealingKey::derive(secret.as_bytes())
            .map_err(|e| anyhow::anyhow!("deriving the credential key: {e}"))?,
    );
    let faults = Faults::new(config.cluster.fault_injection);

    let raft = RaftNode::start(RaftNodeConfig {
        node_id,
        info: NodeInfo { raft_addr: raft_addr.to_string(), http_addr: http_addr.to_string() },
        dir: dir.join("raft"),
        heartbeat_interval: config.raft.heartbeat,
        election_timeout_min: config.raft.election_timeout_min,
        election_timeout_max: config.raft.election_timeout_max,
        snapshot_after_logs: config.raft.snapshot_after_logs,
        logs_kept_after_snapshot: config.raft.logs_kept_after_snapshot,
        secret: secret.clone(),
        faults: faults.clone(),
        max_entry_bytes: config.raft.max_entry_bytes,
    })
    .await
    .map_err(|e| match e {
        colony_cluster::node::NodeError::Open { dir, source } => ConfigError::new(
            "data_dir",
            format!("cannot open the database in {dir} (is another colony node using this data dir?): {source}"),
        )
        .into(),
        other => RunError::Other(anyhow::Error::new(other).context("starting raft")),
    })?;

    let meta = NodeMeta {
        node_id,
        http_addr: http_addr.to_string(),
        raft_addr: raft_addr.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        state: NodeState::Joining,
        cluster_addr: cluster_addr.to_string(),
        features: colony_cluster::features::SUPPORTED
            .iter()
            .map(|f| f.to_string())
            .collect(),
    };
    let mut gossip_cfg = MembershipConfig::lan_defaults(
        node_id,
        config.gossip.listen,
        secret.as_bytes().to_vec(),
        meta,
    );
    gossip_cfg.advertise = config.gossip.advertise;
    gossip_cfg.seeds = config.cluster.seeds.clone();
    gossip_cfg.probe_period = config.gossip.probe_period;
    gossip_cfg.probe_rtt = config.gossip.probe_rtt;
    gossip_cfg.suspect_to_down = config.gossip.suspect_to_down;
    let (membership, mut member_events) = Membership::start(gossip_cfg).await.map_err(|e| {
        RunError::Config(ConfigError::new(
            "gossip.listen",
            format!("cannot start gossip on {}: {e}", config.gossip.listen),
        ))
    })?;
    let gossip_addr = membership.local_addr();
    // Member events are logged and passed on to the actor transport, which dials and drops
    // sessions as members come and go; the member table itself is read on demand.
    let (link_events_tx, link_events) = tokio::sync::mpsc::channel(EVENT_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        while let Some(event) = member_events.recv().await {
            // A full channel loses nothing for good: the link also reconciles periodically.
            let _ = link_events_tx.try_send(event.clone());
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
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    // Internal listener: Raft RPCs and forwarded writes.
    let internal = raft.internal_router(faults.clone());
    let mut internal_stop = stop_rx.clone();
    let internal_server = tokio::spawn(async move {
        axum::serve(raft_listener, internal)
            .with_graceful_shutdown(async move {
                let _ = internal_stop.wait_for(|s| *s).await;
            })
            .await
    });

    tokio::spawn(colony_cluster::voters::run(
        raft.clone(),
        membership.clone(),
        VoterSettings {
            grace: config.cluster.voter_down_grace,
            interval: Duration::from_millis(500),
            max_promote_lag: config.cluster.max_ready_lag,
        },
        stop_rx.clone(),
    ));

    let link = ActorLink::start(
        ActorLinkConfig {
            node_id,
            advertise: cluster_addr,
            cookie: secret.clone(),
        },
        cluster_listener,
    )
    .await
    .context("starting the actor transport")?;
    tokio::spawn(
        link.clone()
            .run(membership.clone(), link_events, stop_rx.clone()),
    );
    let view: Arc<dyn ClusterView> = Arc::new(NodeView {
        membership: membership.clone(),
        link: link.clone(),
    });
    let handoff = Handoff::new(
        node_id,
        view.clone(),
        HandoffConfig {
            window: config.ratelimit.handoff_window,
            pull_timeout: config.ratelimit.pull_timeout,
            replication_interval: config.ratelimit.replication_interval,
            replicas: config.ratelimit.replicas,
            ..HandoffConfig::default()
        },
    );
    let buckets = Buckets::start(BucketsConfig {
        handoff: Some(handoff.clone()),
        max_buckets_per_tenant: config.ratelimit.max_buckets_per_tenant,
        ..BucketsConfig::default()
    })
    .await
    .context("starting the bucket actors")?;
    tokio::spawn(handoff.clone().run(buckets.clone(), stop_rx.clone()));
    let router = Router::start(RouterArgs {
        buckets: buckets.clone(),
        node_id,
    })
    .await
    .map_err(|e| anyhow::anyhow!("starting the router actor: {e}"))?;
    let limiter = Limiter::new(node_id, buckets.clone(), view, LimiterConfig::default());

    let metrics = Arc::new(Metrics::new().context("creating metrics")?);
    // Bound and advertised: a listener on 0.0.0.0 is reachable at every local address.
    let mut own_listeners = vec![
        http_bound,
        http_addr,
        raft_bound,
        raft_addr,
        cluster_bound,
        cluster_addr,
        gossip_addr,
    ];
    own_listeners.extend(config.gossip.advertise);
    own_listeners.sort();
    own_listeners.dedup();
    let evaluator = start_evaluator(
        &config,
        EvaluatorWiring {
            node_id,
            raft: &raft,
            membership: &membership,
            metrics: &metrics,
            sealing_key: sealing_key.clone(),
            own_listeners,
            operator_credentials,
        },
        stop_rx.clone(),
    )
    .await?;

    let lifecycle = Lifecycle::default();
    let app = AppState::new(AppParts {
        raft: raft.clone(),
        membership: membership.clone(),
        faults: faults.clone(),
        buckets: buckets.clone(),
        limiter,
        metrics,
        lifecycle: lifecycle.clone(),
        settings: Arc::new(ApiSettings {
            max_body_bytes: config.http.max_body_bytes,
            write_timeout: config.http.write_timeout,
            max_ready_lag: config.cluster.max_ready_lag,
            lease_ttl: config.ratelimit.lease_ttl,
            spec_limits: spec_limits(&config),
            max_duration_ms: config.ratelimit.max_duration_ms,
            max_live_evaluations: config.evaluations.max_live_per_tenant,
            max_stored_evaluations: config.evaluations.max_stored_per_tenant,
        }),
        sealing_key,
        eval_cache: colony_api::routes::EvalCache::default(),
        evaluations: Some(EvaluationParts {
            counters: evaluator.counters_arc(),
            providers: evaluator.registry(),
        }),
    });
    let api = colony_api::router(app);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, api)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(
        http = %format!("http://{http_bound}"),
        gossip = %gossip_addr,
        raft = %raft_addr,
        cluster = %cluster_addr,
        data_dir = %dir.display(),
        node_id,
        "colony node listening; /readyz turns 200 once it is part of a cluster"
    );

    // Joining runs in the background so the node answers /healthz and /readyz meanwhile.
    let join = tokio::spawn(join_cluster(
        raft.clone(),
        membership.clone(),
        config.clone(),
        dir.clone(),
        env_token,
    ));

    // SIGTERM, SIGINT or `POST /v1/cluster/drain`: the same drain.
    let stop_requested = async {
        tokio::select! {
            s = shutdown_signal() => s,
            () = lifecycle.drain_requested() => "POST /v1/cluster/drain",
        }
    };
    let signal = tokio::select! {
        s = stop_requested => s,
        r = join => match r {
            Ok(Ok(())) => tokio::select! {
                s = shutdown_signal() => s,
                () = lifecycle.drain_requested() => "POST /v1/cluster/drain",
            },
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(anyhow::anyhow!("joining task failed: {e}").into()),
        },
    };
    tracing::info!(
        signal,
        "shutting down: readiness off, finishing in-flight requests"
    );
    lifecycle.start_draining();
    membership.set_state(NodeState::Draining);
    // Evaluations stop here at a checkpoint; the leader moves them to active nodes.
    lifecycle.set_phase(DrainPhase::HandingOffEvaluations);
    evaluator.drain(DRAIN_EVALUATIONS_WAIT).await;
    // Hand every bucket to its new owner before the HTTP server and the actor transport
    // stop: checks still routed here meanwhile are answered "moved" and sent on.
    lifecycle.set_phase(DrainPhase::HandingOffBuckets);
    let handed = handoff.drain(&buckets, DRAIN_VIEW_WAIT).await;
    tracing::info!(
        buckets = handed,
        "rate-limit buckets handed to their new owners"
    );
    if !handoff.members().is_empty() {
        lifecycle.set_phase(DrainPhase::WaitingForPeersToStopRoutingHere);
        handoff.wait_quiet(DRAIN_QUIET, DRAIN_QUIET_MAX).await;
    }
    // Last: Raft leadership (writes above, e.g. checkpoints, still went through it).
    lifecycle.set_phase(DrainPhase::SteppingDownAsRaftLeader);
    if colony_cluster::voters::step_down(&raft, &membership, DRAIN_STEP_DOWN_WAIT).await {
        tracing::info!(leader = ?raft.status().leader, "drain: another node leads now");
    }
    lifecycle.set_phase(DrainPhase::FinishingRequests);
    let _ = stop_tx.send(true);
    match tokio::time::timeout(config.http.shutdown_grace, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("in-flight requests finished"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "http server task failed"),
        Err(_) => tracing::warn!(
            grace_ms = config.http.shutdown_grace.as_millis() as u64,
            "in-flight requests did not finish within http.shutdown_grace_ms; closing them"
        ),
    }
    lifecycle.set_phase(DrainPhase::Leaving);
    evaluator.stop().await;
    link.stop().await;
    router.stop(None);
    buckets.stop().await;
    membership.leave().await;
    raft.shutdown()
        .await
        .context("stopping raft and flushing storage")?;
    internal_server.abort();
    tracing::info!("storage flushed; bye");
    Ok(())
}

/// The routing layer's view of the cluster: gossip membership for ownership, the actor
/// transport for reaching owners.
struct NodeView {
    membership: Membership,
    link: ActorLink,
}

impl ClusterView for NodeView {
    fn active_members(&self) -> Vec<u64> {
        // Draining and joining nodes own nothing: their buckets move to the active ones.
        self.membership
            .members()
            .into_iter()
            .filter(|m| {
                m.status == MemberStatus::Alive
                    && m.meta
                        .as_ref()
                        .is_some_and(|x| x.state == NodeState::Active)
            })
            .map(|m| m.node_id)
            .collect()
    }

    fn router_of(&self, node: u64) -> Option<ractor::ActorCell> {
        self.link.remote_member(ROUTER_SCOPE, ROUTER_GROUP, node)
    }

    fn is_alive(&self, node: u64) -> bool {
        self.membership
            .members()
            .iter()
            .any(|m| m.node_id == node && m.status != MemberStatus::Down)
    }

    fn serves_alone_when_empty(&self) -> bool {
        // Joining: not an owner yet, and peers may be holding its buckets meanwhile.
        self.membership
            .members()
            .first()
            .and_then(|me| me.meta.as_ref())
            .is_none_or(|m| m.state != NodeState::Joining)
    }

    fn handoff_enabled(&self) -> bool {
        colony_cluster::features::enabled(
            &self.membership.members(),
            colony_cluster::features::BUCKET_HANDOFF_V1,
        )
    }
}

async fn bind(
    key: &str,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, ConfigError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ConfigError::new(key, format!("cannot listen on {addr}: {e}")))
}

/// How long a bootstrap-eligible node with seeds listens for an existing cluster first.
const BOOTSTRAP_PROBE: Duration = Duration::from_secs(3);

/// Bootstraps or joins, initialises a new cluster, then marks this node active.
async fn join_cluster(
    raft: RaftNode,
    membership: Membership,
    config: Config,
    dir: std::path::PathBuf,
    env_token: Option<String>,
) -> Result<(), RunError> {
    let initialized = raft.is_initialized().await.context("reading raft state")?;
    if !initialized {
        let no_seeds = config.cluster.seeds.is_empty();
        let mut bootstrap = no_seeds || config.cluster.bootstrap;
        if bootstrap && !no_seeds {
            // Guard against a second cluster when this node lost its data: if any seed is
            // already an active member of a cluster, join it instead.
            let deadline = tokio::time::Instant::now() + BOOTSTRAP_PROBE;
            while tokio::time::Instant::now() < deadline {
                let active = membership.members().iter().any(|m| {
                    !m.is_self
                        && m.meta
                            .as_ref()
                            .is_some_and(|x| x.state == NodeState::Active)
                });
                if active {
                    tracing::warn!("cluster.bootstrap is set but an existing cluster answered; joining it instead");
                    bootstrap = false;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if bootstrap {
            raft.bootstrap_if_new()
                .await
                .context("bootstrapping a new cluster")?;
            tracing::info!(
                node_id = raft.node_id(),
                "bootstrapped a new cluster with this node as its only voter"
            );
        } else {
            tracing::info!(seeds = ?config.cluster.seeds, "joining through the seeds; the leader adds this node");
        }
    }
    // Joiners wait as long as it takes (the leader adds them once gossip shows them).
    let leader = loop {
        match raft.wait_for_leader(Duration::from_secs(10)).await {
            Ok(l) => break l,
            Err(_) => tracing::info!("still waiting for a raft leader"),
        }
    };
    tracing::info!(node_id = raft.node_id(), leader, "raft is up");
    if leader != raft.node_id() {
        wait_for_gossip_peer(&membership, leader).await;
    }
    ensure_cluster_initialised(&raft, &dir, env_token).await?;
    membership.set_state(NodeState::Active);
    tracing::info!("this node is an active member");
    Ok(())
}

/// How long a joining node waits for gossip to list the Raft leader before going active.
const GOSSIP_PEER_WAIT: Duration = Duration::from_secs(10);

/// Waits (up to [`GOSSIP_PEER_WAIT`]) until gossip lists `leader` alive. Raft can reach a
/// restarted node before gossip does; active with a view of itself alone, it would own
/// every bucket with nobody to ask for the state an interim owner holds.
async fn wait_for_gossip_peer(membership: &Membership, leader: u64) {
    let deadline = tokio::time::Instant::now() + GOSSIP_PEER_WAIT;
    while tokio::time::Instant::now() < deadline {
        let seen = membership
            .members()
            .iter()
            .any(|m| m.node_id == leader && m.status == MemberStatus::Alive);
        if seen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(
        leader,
        "gossip does not list the raft leader yet; going active anyway"
    );
}

/// Waits for SIGTERM or SIGINT (Ctrl-C) and names it.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "ctrl-c"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}
