//! Wiring of one node: config, storage, Raft, bootstrap, HTTP, signals, shutdown.

use crate::cli::NodeArgs;
use crate::config::{Config, ConfigError, LogConfig, LogFormat};
use crate::datadir;
use anyhow::Context;
use colony_api::{ApiSettings, AppState, Lifecycle, Metrics};
use colony_cluster::raft::NodeInfo;
use colony_cluster::{RaftNode, RaftNodeConfig};
use colony_core::apikey::{generate_admin_token, hash_secret, secret_matches, MIN_ADMIN_TOKEN_LEN};
use colony_core::command::{Command, Proposal, ProposalMeta};
use colony_core::tier::default_tiers;
use std::sync::Arc;
use std::time::Duration;

/// How a node run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad configuration or environment the operator must fix: exit code 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else: exit code 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// How long a fresh or restarted node waits for a Raft leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(30);

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
pub async fn run(config: Config) -> Result<(), RunError> {
    let env_token = admin_token_from_env()?;
    let dir = config.data_dir.clone();
    datadir::prepare(&dir)?;
    let node_id = datadir::node_id(&dir)?;

    // Bind before opening storage so a port clash is reported before anything is written.
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| {
            ConfigError::new(
                "http.listen",
                format!("cannot listen on {}: {e}", config.http.listen),
            )
        })?;
    let http_addr = listener
        .local_addr()
        .context("reading the HTTP listen address")?;

    let raft = RaftNode::start(RaftNodeConfig {
        node_id,
        info: NodeInfo { raft_addr: String::new(), http_addr: http_addr.to_string() },
        dir: dir.join("raft"),
        heartbeat_interval: config.raft.heartbeat,
        election_timeout_min: config.raft.election_timeout_min,
        election_timeout_max: config.raft.election_timeout_max,
        snapshot_after_logs: config.raft.snapshot_after_logs,
        logs_kept_after_snapshot: config.raft.logs_kept_after_snapshot,
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

    if raft
        .bootstrap_if_new()
        .await
        .context("bootstrapping a new single-node cluster")?
    {
        tracing::info!(
            node_id,
            "bootstrapped a new cluster with this node as its only voter"
        );
    }
    let leader = raft
        .wait_for_leader(LEADER_WAIT)
        .await
        .context("waiting for a Raft leader")?;
    tracing::info!(node_id, leader, "raft is up");
    ensure_cluster_initialised(&raft, &dir, env_token).await?;

    let lifecycle = Lifecycle::default();
    let app = AppState {
        raft: raft.clone(),
        metrics: Arc::new(Metrics::new().context("creating metrics")?),
        lifecycle: lifecycle.clone(),
        settings: Arc::new(ApiSettings {
            max_body_bytes: config.http.max_body_bytes,
            write_timeout: config.http.write_timeout,
        }),
    };
    let router = colony_api::router(app);

    tracing::info!(
        http = %format!("http://{http_addr}"),
        data_dir = %dir.display(),
        node_id,
        "colony node ready; try: curl http://{http_addr}/readyz"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await
    });

    let signal = shutdown_signal().await;
    tracing::info!(
        signal,
        "shutting down: readiness off, finishing in-flight requests"
    );
    lifecycle.start_draining();
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
    raft.shutdown()
        .await
        .context("stopping raft and flushing storage")?;
    tracing::info!("storage flushed; bye");
    Ok(())
}

/// A new cluster gets its admin token hash and default tiers through Raft; an existing one
/// is checked against `COLONY_ADMIN_TOKEN` so a mismatch is reported, not silently refused.
async fn ensure_cluster_initialised(
    raft: &RaftNode,
    dir: &std::path::Path,
    env_token: Option<String>,
) -> Result<(), RunError> {
    let token_file = datadir::admin_token_path(dir);
    let existing = raft.read_state(|s| s.admin_token_hash.clone());
    if let Some(hash) = existing {
        let stored = if token_file.exists() {
            format!(" (stored in {})", token_file.display())
        } else {
            String::new()
        };
        match &env_token {
            Some(t) if !secret_matches(t, &hash) => tracing::error!(
                "COLONY_ADMIN_TOKEN differs from this cluster's admin token: requests with it will get 401. \
                 The cluster keeps the token it was created with{stored}"
            ),
            Some(_) => tracing::info!("admin token: COLONY_ADMIN_TOKEN (matches the cluster's)"),
            None if token_file.exists() => tracing::info!(
                "admin token: in {} — authenticate with `Authorization: Bearer $(cat {})`",
                token_file.display(),
                token_file.display()
            ),
            None => tracing::info!(
                "admin token: the one this cluster was created with (set by COLONY_ADMIN_TOKEN then)"
            ),
        }
        return Ok(());
    }
    let (token, generated) = match env_token {
        Some(t) => (t, false),
        None => (generate_admin_token(), true),
    };
    if generated {
        datadir::write_private(&token_file, &token).map_err(|e| {
            ConfigError::new(
                "data_dir",
                format!("cannot write {}: {e}", token_file.display()),
            )
        })?;
    }
    let proposal = Proposal::new(
        ProposalMeta {
            at_ms: colony_api::now_ms(),
            principal: format!("node:{}", raft.node_id()),
            request_id: colony_core::ids::random_request_id(),
        },
        Command::InitCluster {
            admin_token_hash: hash_secret(&token),
            tiers: default_tiers(colony_api::now_ms()),
        },
    );
    raft.write(proposal)
        .await
        .map_err(|e| anyhow::anyhow!("initialising the cluster: {e}"))?;
    if generated {
        tracing::info!(
            "admin token generated and stored in {} (mode 0600) — authenticate with `Authorization: Bearer $(cat {})`",
            token_file.display(),
            token_file.display()
        );
    } else {
        tracing::info!("admin token: COLONY_ADMIN_TOKEN (only its hash is stored)");
    }
    Ok(())
}

/// `COLONY_ADMIN_TOKEN`, checked before anything is written.
fn admin_token_from_env() -> Result<Option<String>, ConfigError> {
    match std::env::var("COLONY_ADMIN_TOKEN") {
        Ok(t) if t.len() < MIN_ADMIN_TOKEN_LEN => Err(ConfigError::new(
            "COLONY_ADMIN_TOKEN",
            format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters"),
        )),
        Ok(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(ConfigError::new(
            "COLONY_ADMIN_TOKEN",
            "must not contain spaces or control characters",
        )),
        Ok(t) => Ok(Some(t)),
        Err(_) => Ok(None),
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C) and names it.
async fn shutdown_signal() -> &'static str {
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
