//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Colony: a self-healing cluster for multi-tenant LLM evaluation and rate limiting.
#[derive(Debug, Parser)]
#[command(name = "colony", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to run; `node` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Node options when no subcommand is given.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node (the default).
    Node(NodeArgs),
}

/// Options of `colony node`. Flags override the config file and `COLONY_*` variables.
#[derive(Debug, Clone, Default, Args)]
pub struct NodeArgs {
    /// TOML config file (see configs/single.toml); also COLONY_CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (key data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// HTTP listen address (key http.listen).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Log format: pretty or json (key log.format).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or colony=debug (key log.level).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Set any config key, e.g. --set raft.heartbeat_ms=50 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl NodeArgs {
    /// The flags as (key, value) overrides, in the order they apply.
    pub fn overrides(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v.clone()));
            }
        };
        push("data_dir", &self.data_dir);
        push("http.listen", &self.http);
        push("log.format", &self.log_format);
        push("log.level", &self.log_level);
        for kv in &self.set {
            match kv.split_once('=') {
                Some((k, v)) => out.push((k.trim().to_string(), v.to_string())),
                None => out.push((kv.clone(), String::new())),
            }
        }
        out
    }
}
