//! Running one node: the config, logging, signals, and the node's lifecycle.

use crate::bootstrap::Secrets;
use crate::cli::NodeArgs;
use crate::config::{Config, ConfigError, LogConfig, LogFormat};
use crate::error::RunError;
use crate::node::Node;

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

/// Runs the node until SIGTERM, SIGINT or a drain request, then drains and shuts down. A
/// node that fails (its join, or a component it cannot do without) shuts down without a
/// drain, so storage is flushed and peers see it leave, and exits with the error.
pub async fn run(config: Config, secrets: Secrets) -> Result<(), RunError> {
    let mut node = Node::start(config, secrets).await?;
    match node.serve().await {
        Ok(reason) => {
            node.drain(reason).await;
            node.shutdown().await
        }
        Err(e) => {
            tracing::error!(error = %e, "the node failed; shutting down without a drain");
            if let Err(stop) = node.shutdown().await {
                tracing::warn!(error = %stop, "shutting down after the failure");
            }
            Err(e)
        }
    }
}
