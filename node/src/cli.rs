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
// Parsed once at startup: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run one node (the default).
    Node(NodeArgs),
    /// Run a local N-node cluster as child processes (data in ./colony-dev); Ctrl-C stops all.
    Dev(DevArgs),
    /// Create the cluster CA, node and client certificates (`colony certs create-ca ...`).
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Health probe for containers: GET PATH on this host's node; exit 0 on 2xx, else 1.
    Probe(ProbeArgs),
}

/// Options of `colony probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The path to GET.
    #[arg(default_value = "/readyz")]
    pub path: String,
    /// `IP:PORT` of the API (default: 127.0.0.1 and the port of COLONY_HTTP_LISTEN, else 8080).
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<String>,
    /// CA to verify an HTTPS API with (default: ca.crt in COLONY_TLS_CERTS_DIR; HTTPS when
    /// either is set, plain HTTP otherwise).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

/// `colony certs` subcommands, as `cockroach cert`.
#[derive(Debug, Subcommand)]
// The variants are the subcommand names (create-ca, create-node, create-client).
#[allow(clippy::enum_variant_names)]
pub enum CertsCommand {
    /// Create the cluster CA: CERTS_DIR/ca.crt and the key at --ca-key (keep it off the nodes).
    CreateCa {
        #[command(flatten)]
        common: CertsArgs,
    },
    /// Create CERTS_DIR/node.crt and node.key for the hosts and IP addresses a node is reached at.
    CreateNode {
        /// DNS names and IP addresses of the node (its advertised raft and HTTP hosts).
        #[arg(required = true, value_name = "HOST")]
        hosts: Vec<String>,
        #[command(flatten)]
        common: CertsArgs,
    },
    /// Create CERTS_DIR/client.NAME.crt and client.NAME.key for a client (an admin, a tool).
    CreateClient {
        /// The client's name ([A-Za-z0-9._-], at most 64).
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        common: CertsArgs,
    },
}

/// What every `colony certs` subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Directory of ca.crt and the certificates created.
    #[arg(long, value_name = "DIR")]
    pub certs_dir: PathBuf,
    /// The CA's private key (written by create-ca, read by the others).
    #[arg(long, value_name = "FILE")]
    pub ca_key: PathBuf,
    /// Days the new certificate is valid (default 3650 for the CA, 1830 otherwise).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub lifetime_days: Option<u32>,
    /// Replace files that exist (by default they are kept and the command fails).
    #[arg(long)]
    pub overwrite: bool,
}

/// Options of `colony dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Number of nodes (1-9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub nodes: u16,
    /// Node i listens on HTTP base+i, gossip base+100+i, raft base+200+i, cluster base+300+i.
    #[arg(long, default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1024..=65000))]
    pub base_port: u16,
    /// Parent directory of the nodes' data dirs.
    #[arg(long, default_value = "./colony-dev", value_name = "DIR")]
    pub dir: PathBuf,
    /// Plain HTTP and no mutual TLS (by default the nodes get a CA and certificates in
    /// DIR/certs and speak TLS on every listener).
    #[arg(long)]
    pub no_tls: bool,
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
    /// Gossip (UDP) listen address (key gossip.listen).
    #[arg(long, value_name = "ADDR")]
    pub gossip: Option<String>,
    /// Internal Raft listen address (key raft.listen).
    #[arg(long, value_name = "ADDR")]
    pub raft: Option<String>,
    /// Actor transport (TCP) listen address: routed rate-limit checks (key cluster.listen).
    #[arg(long, value_name = "ADDR")]
    pub cluster: Option<String>,
    /// Gossip address of a node to join through (key cluster.seeds; repeatable).
    #[arg(long = "seed", value_name = "ADDR")]
    pub seeds: Vec<String>,
    /// Start a new cluster if this node has no data, even with seeds (key cluster.bootstrap).
    #[arg(long)]
    pub bootstrap: bool,
    /// Log format: pretty or json (key log.format).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or colony=debug (key log.level).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Certificates directory (ca.crt, node.crt, node.key): serve HTTPS (key tls.certs_dir).
    #[arg(long, value_name = "DIR")]
    pub certs_dir: Option<String>,
    /// Allow non-loopback listeners without TLS: traffic in clear (key tls.insecure).
    #[arg(long)]
    pub insecure: bool,
    /// Set any config key, e.g. --set raft.heartbeat_ms=50 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl NodeArgs {
    /// The flags as (key, value) overrides, in the order they apply.
    pub fn overrides(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let flags = [
            ("data_dir", &self.data_dir),
            ("http.listen", &self.http),
            ("gossip.listen", &self.gossip),
            ("raft.listen", &self.raft),
            ("cluster.listen", &self.cluster),
            ("log.format", &self.log_format),
            ("log.level", &self.log_level),
            ("tls.certs_dir", &self.certs_dir),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                out.push((key.to_string(), v.clone()));
            }
        }
        if !self.seeds.is_empty() {
            out.push(("cluster.seeds".to_string(), self.seeds.join(",")));
        }
        if self.bootstrap {
            out.push(("cluster.bootstrap".to_string(), "true".to_string()));
        }
        if self.insecure {
            out.push(("tls.insecure".to_string(), "true".to_string()));
        }
        for kv in &self.set {
            match kv.split_once('=') {
                Some((k, v)) => out.push((k.trim().to_string(), v.to_string())),
                None => out.push((kv.clone(), String::new())),
            }
        }
        out
    }
}
