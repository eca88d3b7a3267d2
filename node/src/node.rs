//! One node's lifecycle, in named steps: [`Node::start`] binds and starts every component,
//! [`Node::serve`] runs until a stop is asked for, [`Node::drain`] hands this node's work to
//! the others phase by phase (`/v1/cluster` shows the phase), and [`Node::shutdown`] stops
//! the components, flushes storage and joins every task the node spawned.
//!
//! Every long-lived component is supervised ([`crate::supervised`]) and listed, with its
//! observable state, in `/v1/cluster`'s `components`.

use crate::bootstrap::{local_secret, Secrets};
use crate::components::{self, Addresses, EvaluatorWiring, Listeners, RateLimiter};
use crate::config::{Config, ConfigError};
use crate::datadir;
use crate::error::RunError;
use crate::join::join_until_stopped;
use crate::signals::shutdown_signal;
use crate::supervised::Supervision;
use anyhow::Context;
use colony_api::{
    AppParts, AppState, DrainPhase, EvaluationParts, Lifecycle, Metrics, TransportSecurity,
};
use colony_cluster::actor_link::{ActorLink, ActorLinkConfig, ActorTls};
use colony_cluster::membership::{Membership, NodeState, EVENT_CHANNEL_CAPACITY};
use colony_cluster::transport::faults::Faults;
use colony_cluster::voters::VoterSettings;
use colony_cluster::RaftNode;
use colony_evaluator::{Evaluator, EvaluatorConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// On shutdown, the longest wait for the node's tasks to end after everything stopped;
/// one still running then is reported (and ends with the process).
const TASKS_JOIN_WAIT: Duration = Duration::from_secs(2);

/// On drain, the longest wait for a join still under way to end (it ends at once unless
/// it is initialising the cluster, one Raft write).
const DRAIN_JOIN_WAIT: Duration = Duration::from_secs(5);

/// Background voter maintenance runs this often.
const VOTERS_INTERVAL: Duration = Duration::from_millis(500);

/// The node's stop signal: a token for its own tasks (the supervision's), and a watch for
/// the components that take one.
struct Stop {
    token: CancellationToken,
    watch: watch::Sender<bool>,
}

impl Stop {
    fn new(token: CancellationToken) -> Stop {
        Stop {
            token,
            watch: watch::channel(false).0,
        }
    }

    fn receiver(&self) -> watch::Receiver<bool> {
        self.watch.subscribe()
    }

    fn trigger(&self) {
        self.token.cancel();
        self.watch.send_replace(true);
    }
}

/// A running node: its components and the tasks it spawned.
pub struct Node {
    config: Config,
    raft: RaftNode,
    membership: Membership,
    link: ActorLink,
    rate: RateLimiter,
    evaluator: Evaluator,
    lifecycle: Lifecycle,
    stop: Stop,
    /// Every task the node spawned (joined on shutdown) and every component's state.
    supervision: Supervision,
    http: JoinHandle<std::io::Result<()>>,
    internal_http: JoinHandle<std::io::Result<()>>,
    /// Joining the cluster, until it has.
    join: Option<JoinHandle<Result<(), RunError>>>,
    /// Stops the join (on drain, before the node is marked draining).
    join_stop: CancellationToken,
}

/// What the node needs from its data dir and secret before any component starts.
struct Ground {
    node_id: u64,
    secret: String,
    sealing_key: Arc<colony_core::credential::SealingKey>,
    /// The node's certificates and TLS configs (`tls.certs_dir`), when TLS is on.
    tls: Option<components::NodeTls>,
}

/// Prepares the data dir (owner-only) and reads the node id and the cluster secret.
fn prepare(config: &Config) -> Result<Ground, RunError> {
    let dir = &config.data_dir;
    datadir::prepare(dir)?;
    crate::secrets::restrict_data_dir(dir).map_err(|e| {
        ConfigError::new(
            "data_dir",
            format!("cannot restrict {} to its owner: {e}", dir.display()),
        )
    })?;
    let node_id = datadir::node_id(dir)?;
    let tls = components::load_tls(config)?;
    // Without seeds a single node still runs gossip; with no secret configured it gets a
    // random one, so nobody can join it until it is restarted with a shared secret. It is
    // kept in the data dir (0600) so credentials sealed with it still open after a restart.
    let secret = if config.cluster.secret.is_empty() {
        local_secret(dir)?
    } else {
        config.cluster.secret.clone()
    };
    let sealing_key = Arc::new(
        colony_core::credential::SealingKey::derive(secret.as_bytes())
            .map_err(|e| anyhow::anyhow!("deriving the credential key: {e}"))?,
    );
    Ok(Ground {
        node_id,
        secret,
        sealing_key,
        tls,
    })
}

impl Node {
    /// Binds every listener, opens storage and starts every component; joining the
    /// cluster goes on in the background, so `/healthz` and `/readyz` answer meanwhile.
    pub async fn start(config: Config, secrets: Secrets) -> Result<Node, RunError> {
        if let Some(e) = &secrets.environ_wipe_error {
            tracing::warn!(
                error = %e,
                "could not zero the secrets in /proc/self/environ (they are gone from the environment)"
            );
        }
        let ground = prepare(&config)?;
        let listeners = Listeners::bind(&config).await?;
        let addrs = listeners.addrs;
        let faults = Faults::new(config.cluster.fault_injection);
        let raft = components::start_raft(
            &config,
            ground.node_id,
            &addrs,
            &ground.secret,
            &faults,
            ground.tls.as_ref(),
        )
        .await?;
        let sv = Supervision::new();
        let stop = Stop::new(sv.stop.clone());
        sv.watch_raft(&raft);
        let (membership, member_events) =
            components::start_membership(&config, ground.node_id, &addrs, &ground.secret).await?;
        sv.watch_membership(&membership);
        let (link_events_tx, link_events) = tokio::sync::mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let member_events = shared(member_events);
        sv.task("member_events", {
            let token = stop.token.clone();
            move || {
                let (events, link, token) =
                    (member_events.clone(), link_events_tx.clone(), token.clone());
                async move {
                    let mut events = events.lock_owned().await;
                    components::forward_member_events(&mut events, link, token).await
                }
            }
        });
        let internal = components::HttpListener::internal(listeners.raft, ground.tls.as_ref())?;
        let internal_handshakes = internal.handshakes();
        let internal_http = sv
            .tasks
            .spawn(internal.serve(raft.internal_router(faults.clone()), stop.token.clone()));
        let voter_settings = VoterSettings {
            grace: config.cluster.voter_down_grace,
            interval: VOTERS_INTERVAL,
            max_promote_lag: config.cluster.max_ready_lag,
        };
        sv.task("voters", {
            let (raft, membership, stop) = (raft.clone(), membership.clone(), stop.receiver());
            move || {
                colony_cluster::voters::run(
                    raft.clone(),
                    membership.clone(),
                    voter_settings.clone(),
                    stop.clone(),
                )
            }
        });
        let link = ActorLink::start(
            ActorLinkConfig {
                node_id: ground.node_id,
                advertise: addrs.cluster,
                cookie: ground.secret.clone(),
                tls: ground.tls.as_ref().map(|t| ActorTls {
                    server: t.internal.clone(),
                    client: t.client.clone(),
                }),
            },
            listeners.cluster,
        )
        .await
        .context("starting the actor transport")?;
        let link_events = shared(link_events);
        sv.task("actor_link", {
            let (link, membership, stop) = (link.clone(), membership.clone(), stop.receiver());
            move || {
                let (link, membership, events, stop) = (
                    link.clone(),
                    membership.clone(),
                    link_events.clone(),
                    stop.clone(),
                );
                async move {
                    let mut events = events.lock_owned().await;
                    link.run(membership, &mut events, stop).await
                }
            }
        });
        let parts = Parts {
            ground,
            addrs,
            faults,
            raft,
            membership,
            link,
            supervision: sv,
            stop,
            internal_http,
            internal_handshakes,
        };
        parts.start_work(config, listeners.http, secrets).await
    }

    /// Runs until SIGTERM, SIGINT or `POST /v1/cluster/drain`, and says which. A join that
    /// fails ends the node with its error.
    pub async fn serve(&mut self) -> Result<&'static str, RunError> {
        let lifecycle = self.lifecycle.clone();
        let stop_requested = async move {
            tokio::select! {
                s = shutdown_signal() => s,
                () = lifecycle.drain_requested() => "POST /v1/cluster/drain",
            }
        };
        tokio::pin!(stop_requested);
        let fatal = self.supervision.fatal.clone();
        let died = async move { fatal.raised().await };
        tokio::pin!(died);
        if let Some(join) = self.join.as_mut() {
            let joined = tokio::select! {
                s = &mut stop_requested => return Ok(s),
                why = &mut died => return Err(component_died(why)),
                r = join => r,
            };
            self.join = None;
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(anyhow::anyhow!("joining task failed: {e}").into()),
            }
        }
        tokio::select! {
            s = stop_requested => Ok(s),
            why = died => Err(component_died(why)),
        }
    }

    /// Hands this node's work to the others: evaluations, then buckets, then Raft
    /// leadership; then stops taking requests and lets in-flight ones finish.
    pub async fn drain(&mut self, reason: &'static str) {
        tracing::info!(
            signal = reason,
            "shutting down: readiness off, finishing in-flight requests"
        );
        self.lifecycle.start_draining();
        // A join still under way must end first: going active after this would undo the
        // draining state, and peers would route buckets back here.
        self.join_stop.cancel();
        if let Some(mut join) = self.join.take() {
            if tokio::time::timeout(DRAIN_JOIN_WAIT, &mut join)
                .await
                .is_err()
            {
                join.abort();
                tracing::warn!("the join did not end in time; it is aborted and the node drains");
            }
        }
        self.membership.set_state(NodeState::Draining);
        // Evaluations stop here at a checkpoint; the leader moves them to active nodes.
        self.lifecycle.set_phase(DrainPhase::HandingOffEvaluations);
        self.evaluator.drain(DRAIN_EVALUATIONS_WAIT).await;
        // Hand every bucket to its new owner before the HTTP server and the actor transport
        // stop: checks still routed here meanwhile are answered "moved" and sent on.
        self.lifecycle.set_phase(DrainPhase::HandingOffBuckets);
        let handed = self
            .rate
            .handoff
            .drain(&self.rate.buckets, DRAIN_VIEW_WAIT)
            .await;
        tracing::info!(
            buckets = handed,
            "rate-limit buckets handed to their new owners"
        );
        if !self.rate.handoff.members().is_empty() {
            self.lifecycle
                .set_phase(DrainPhase::WaitingForPeersToStopRoutingHere);
            self.rate
                .handoff
                .wait_quiet(DRAIN_QUIET, DRAIN_QUIET_MAX)
                .await;
        }
        // Last: Raft leadership (writes above, e.g. checkpoints, still went through it).
        self.lifecycle
            .set_phase(DrainPhase::SteppingDownAsRaftLeader);
        if colony_cluster::voters::step_down(&self.raft, &self.membership, DRAIN_STEP_DOWN_WAIT)
            .await
        {
            tracing::info!(leader = ?self.raft.status().leader, "drain: another node leads now");
        }
        self.lifecycle.set_phase(DrainPhase::FinishingRequests);
        self.stop.trigger();
        self.finish_requests().await;
    }

    /// Waits up to `http.shutdown_grace_ms` for the HTTP server to finish in-flight
    /// requests, then closes the ones left.
    async fn finish_requests(&mut self) {
        let grace = self.config.http.shutdown_grace;
        match tokio::time::timeout(grace, &mut self.http).await {
            Ok(Ok(Ok(()))) => tracing::info!("in-flight requests finished"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "http server task failed"),
            Err(_) => {
                tracing::warn!(
                    grace_ms = grace.as_millis() as u64,
                    "in-flight requests did not finish within http.shutdown_grace_ms; closing them"
                );
                self.http.abort();
            }
        }
    }

    /// Stops every component, leaves gossip, flushes storage and joins the node's tasks.
    pub async fn shutdown(self) -> Result<(), RunError> {
        self.lifecycle.set_phase(DrainPhase::Leaving);
        self.stop.trigger();
        self.evaluator.stop().await;
        self.link.stop().await;
        self.rate.router.stop(None);
        self.rate.buckets.stop().await;
        self.membership.leave().await;
        self.raft
            .shutdown()
            .await
            .context("stopping raft and flushing storage")?;
        // Peers' idle connections would hold the internal server open; Raft is down.
        self.internal_http.abort();
        let tasks = &self.supervision.tasks;
        tasks.close();
        if tokio::time::timeout(TASKS_JOIN_WAIT, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = tasks.len(),
                "some tasks did not end on shutdown; they end with the process"
            );
        }
        tracing::info!("storage flushed; bye");
        Ok(())
    }
}

/// A node half started: the cluster layer is up, the work (rate limiter, evaluations,
/// HTTP API, joining) is not yet.
struct Parts {
    ground: Ground,
    addrs: Addresses,
    faults: Faults,
    raft: RaftNode,
    membership: Membership,
    link: ActorLink,
    supervision: Supervision,
    stop: Stop,
    internal_http: JoinHandle<std::io::Result<()>>,
    /// The internal listener's handshake counts, when TLS.
    internal_handshakes: Option<Arc<colony_tls::listener::HandshakeStats>>,
}

impl Parts {
    /// Starts the rate limiter, the evaluation runtime, the HTTP API and joining.
    async fn start_work(
        self,
        config: Config,
        http_listener: tokio::net::TcpListener,
        secrets: Secrets,
    ) -> Result<Node, RunError> {
        let (node_id, stop, sv) = (self.ground.node_id, self.stop, self.supervision);
        let (rate, limiter) =
            components::start_rate_limiter(&config, node_id, &self.membership, &self.link).await?;
        sv.components.add(rate.buckets.component().clone());
        sv.task("handoff", {
            let (handoff, buckets, stop) =
                (rate.handoff.clone(), rate.buckets.clone(), stop.receiver());
            move || handoff.clone().run(buckets.clone(), stop.clone())
        });
        let metrics = Arc::new(Metrics::new().context("creating metrics")?);
        let gossip_addr = self.membership.local_addr();
        let evaluator = components::start_evaluator(
            &config,
            EvaluatorWiring {
                node_id,
                raft: &self.raft,
                metrics: &metrics,
                sealing_key: self.ground.sealing_key.clone(),
                own_listeners: self.addrs.own(gossip_addr, config.gossip.advertise),
                operator_credentials: secrets.operator_credentials,
            },
        )
        .await?;
        sv.components.add(evaluator.component().clone());
        sv.task("evaluation_scheduler", {
            let (evaluator, membership, stop) =
                (evaluator.clone(), self.membership.clone(), stop.receiver());
            move || {
                evaluator.clone().schedule(
                    membership.clone(),
                    EvaluatorConfig::default(),
                    stop.clone(),
                )
            }
        });
        let lifecycle = Lifecycle::default();
        let tls = self.ground.tls.clone();
        let public = components::HttpListener::public(http_listener, tls.as_ref())?;
        if let Some(identity) = tls.as_ref().map(|t| &t.identity) {
            let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .context("listening for SIGHUP")?;
            sv.tasks.spawn(components::watch_certificates(
                identity.clone(),
                config.tls.reload_check,
                hangup,
                stop.token.clone(),
            ));
        }
        let transport = TransportSecurity {
            listeners: if tls.is_some() {
                vec![
                    ("http", "tls"),
                    ("raft", "mutual tls"),
                    ("cluster", "mutual tls"),
                    ("gossip", "plain, HMAC-authenticated"),
                ]
            } else {
                vec![
                    ("http", "plain"),
                    ("raft", "plain, cluster-secret header"),
                    ("cluster", "plain, cookie challenge"),
                    ("gossip", "plain, HMAC-authenticated"),
                ]
            },
            handshakes: [
                ("http", public.handshakes()),
                ("raft", self.internal_handshakes),
            ]
            .into_iter()
            .filter_map(|(name, stats)| stats.map(|s| (name, s)))
            .collect(),
            identity: tls.map(|t| t.identity),
            admin_clients: config.tls.admin_clients.clone(),
        };
        let app = AppState::new(AppParts {
            raft: self.raft.clone(),
            membership: self.membership.clone(),
            faults: self.faults,
            buckets: rate.buckets.clone(),
            limiter,
            metrics,
            lifecycle: lifecycle.clone(),
            components: sv.components.clone(),
            settings: components::api_settings(&config),
            sealing_key: self.ground.sealing_key,
            eval_cache: colony_api::routes::EvalCache::default(),
            evaluations: Some(EvaluationParts {
                counters: evaluator.counters_arc(),
                providers: evaluator.registry(),
            }),
            transport,
        });
        let app = colony_api::router(app);
        let http = sv.tasks.spawn(public.serve(app, stop.token.clone()));
        log_listening(&config, node_id, &self.addrs, gossip_addr);
        let join_stop = stop.token.child_token();
        let join = sv.tasks.spawn(join_until_stopped(
            self.raft.clone(),
            self.membership.clone(),
            config.clone(),
            secrets.admin_token,
            join_stop.clone(),
        ));
        Ok(Node {
            config,
            raft: self.raft,
            membership: self.membership,
            link: self.link,
            rate,
            evaluator,
            lifecycle,
            stop,
            supervision: sv,
            http,
            internal_http: self.internal_http,
            join: Some(join),
            join_stop,
        })
    }
}

/// A receiver that successive runs of a supervised task take in turn: a run that failed
/// or panicked released it, so its restart goes on with the same channel.
fn shared<T>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>> {
    Arc::new(tokio::sync::Mutex::new(rx))
}

/// The error a node stops with when a component it cannot do without died.
fn component_died(why: String) -> RunError {
    anyhow::anyhow!(
        "a component died, so the node stops (its process supervisor restarts it): {why}"
    )
    .into()
}

/// Says where the node listens.
fn log_listening(config: &Config, node_id: u64, addrs: &Addresses, gossip: SocketAddr) {
    tracing::info!(
        http = %format!(
            "{}://{}",
            if config.tls.certs_dir.is_some() { "https" } else { "http" },
            addrs.http_bound
        ),
        gossip = %gossip,
        raft = %addrs.raft,
        cluster = %addrs.cluster,
        data_dir = %config.data_dir.display(),
        node_id,
        "colony node listening; /readyz turns 200 once it is part of a cluster"
    );
}
