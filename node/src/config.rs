//! Node configuration: the defaults in `configs/single.toml` (embedded in the binary), then
//! the TOML file, then `COLONY_*` environment variables, then command-line flags.
//!
//! The layers are merged as TOML tables and read into the structs below with serde
//! (`deny_unknown_fields`), so a key is declared once, as a field, and documented once,
//! with its default, in `configs/single.toml`. Every error names its key: serde's path to
//! the failing value is the key.

pub use crate::config_error::ConfigError;
use crate::config_fields as field;
pub use crate::config_fields::LogFormat;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The defaults: every key, with its documentation.
const DEFAULTS: &str = include_str!("../../configs/single.toml");

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the public HTTP API.
    #[serde(deserialize_with = "field::addr")]
    pub listen: SocketAddr,
    /// Address other nodes should use for this node's HTTP API, when different from
    /// `listen` (0.0.0.0, NAT); drains of a named node are passed there.
    #[serde(deserialize_with = "field::optional_addr")]
    pub advertise: Option<SocketAddr>,
    /// Largest request body accepted.
    #[serde(deserialize_with = "field::count::<_, usize, 1024, 1073741824>")]
    pub max_body_bytes: usize,
    /// How long a write may wait for Raft.
    #[serde(rename = "write_timeout_ms", deserialize_with = "field::millis")]
    pub write_timeout: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    #[serde(rename = "shutdown_grace_ms", deserialize_with = "field::millis")]
    pub shutdown_grace: Duration,
}

/// Gossip (SWIM membership over UDP) settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipConfig {
    /// UDP address to bind.
    #[serde(deserialize_with = "field::addr")]
    pub listen: SocketAddr,
    /// Address other nodes should use, when different from `listen` (NAT, 0.0.0.0).
    #[serde(deserialize_with = "field::optional_addr")]
    pub advertise: Option<SocketAddr>,
    /// How often each node probes one member.
    #[serde(rename = "probe_period_ms", deserialize_with = "field::millis")]
    pub probe_period: Duration,
    /// How long a probe waits for an ack before asking others to probe indirectly.
    #[serde(rename = "probe_rtt_ms", deserialize_with = "field::millis")]
    pub probe_rtt: Duration,
    /// How long a member stays suspect before it is declared down.
    #[serde(rename = "suspect_to_down_ms", deserialize_with = "field::millis")]
    pub suspect_to_down: Duration,
    /// Version 1 (unencrypted, pre-0.2) gossip: `off`, `accept` or `send`.
    #[serde(deserialize_with = "field::gossip_legacy")]
    pub legacy: colony_cluster::membership::Legacy,
}

/// Cluster formation and safety settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Gossip addresses of nodes to join through.
    #[serde(deserialize_with = "field::addrs")]
    pub seeds: Vec<SocketAddr>,
    /// Start a new cluster if this node has no data, even with seeds.
    pub bootstrap: bool,
    /// Shared secret: authenticates gossip packets and internal calls.
    pub secret: String,
    /// How long a voter may be down before the leader replaces it.
    #[serde(rename = "voter_down_grace_ms", deserialize_with = "field::millis")]
    pub voter_down_grace: Duration,
    /// Largest gap between committed and applied entries for `/readyz` to say ready.
    #[serde(deserialize_with = "field::whole")]
    pub max_ready_lag: u64,
    /// Test-only fault injection endpoint (`PUT /v1/testing/faults`).
    pub fault_injection: bool,
    /// TCP address of the actor transport (ractor_cluster): routed rate-limit checks.
    #[serde(deserialize_with = "field::addr")]
    pub listen: SocketAddr,
    /// Address other nodes should dial, when different from `listen`.
    #[serde(deserialize_with = "field::optional_addr")]
    pub advertise: Option<SocketAddr>,
}

impl std::fmt::Debug for ClusterConfig {
    /// Every field but the secret, which is redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("seeds", &self.seeds)
            .field("bootstrap", &self.bootstrap)
            .field("secret", &"<redacted>")
            .field("voter_down_grace", &self.voter_down_grace)
            .field("max_ready_lag", &self.max_ready_lag)
            .field("fault_injection", &self.fault_injection)
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .finish()
    }
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    /// Address of the internal listener (Raft RPCs, forwarded writes).
    #[serde(deserialize_with = "field::addr")]
    pub listen: SocketAddr,
    /// Address other nodes should use, when different from `listen`.
    #[serde(deserialize_with = "field::optional_addr")]
    pub advertise: Option<SocketAddr>,
    /// Leader heartbeat interval.
    #[serde(rename = "heartbeat_ms", deserialize_with = "field::millis")]
    pub heartbeat: Duration,
    /// Election timeout, lower bound.
    #[serde(rename = "election_timeout_min_ms", deserialize_with = "field::millis")]
    pub election_timeout_min: Duration,
    /// Election timeout, upper bound.
    #[serde(rename = "election_timeout_max_ms", deserialize_with = "field::millis")]
    pub election_timeout_max: Duration,
    /// Snapshot after this many entries.
    #[serde(deserialize_with = "field::positive")]
    pub snapshot_after_logs: u64,
    /// Largest encoded Raft entry proposed.
    #[serde(deserialize_with = "field::count::<_, usize, 65536, 1073741824>")]
    pub max_entry_bytes: usize,
    /// Entries kept after a snapshot.
    #[serde(deserialize_with = "field::whole")]
    pub logs_kept_after_snapshot: u64,
}

/// Rate limiting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Lifetime of a tenant concurrency lease that is never released (its ingress node
    /// crashed or lost the owner): the longest a lost release holds a slot.
    #[serde(rename = "lease_ttl_ms", deserialize_with = "field::millis")]
    pub lease_ttl: Duration,
    /// How often each owner sends changed buckets to their successors: a crashed owner's
    /// buckets continue from a copy at most this old (plus one send).
    #[serde(rename = "replication_interval_ms", deserialize_with = "field::millis")]
    pub replication_interval: Duration,
    /// How many successors keep a replica of each bucket (1-4; each one costs a copy of
    /// every changed bucket per replication round): the owner and up to this many less one
    /// of them may crash together with the bound above.
    #[serde(deserialize_with = "field::count::<_, usize, 1, 4>")]
    pub replicas: usize,
    /// How long after a membership change a new owner asks a bucket's previous owner for
    /// its state before starting afresh.
    #[serde(rename = "handoff_window_ms", deserialize_with = "field::millis")]
    pub handoff_window: Duration,
    /// Timeout of asking a previous owner for one bucket.
    #[serde(rename = "pull_timeout_ms", deserialize_with = "field::millis")]
    pub pull_timeout: Duration,
    /// Largest `duration_ms` of a check item.
    #[serde(deserialize_with = "field::positive")]
    pub max_duration_ms: u64,
    /// Most live buckets one tenant may have on one node.
    #[serde(deserialize_with = "field::positive")]
    pub max_buckets_per_tenant: usize,
}

/// Evaluations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationsConfig {
    /// Most cases in one evaluation spec.
    #[serde(deserialize_with = "field::positive")]
    pub max_cases: usize,
    /// Most evaluations one tenant may have queued or running at once.
    #[serde(deserialize_with = "field::count::<_, u32, 1, 4294967295>")]
    pub max_live_per_tenant: u32,
    /// Most evaluations one tenant may store, of any status.
    #[serde(deserialize_with = "field::count::<_, u32, 1, 4294967295>")]
    pub max_stored_per_tenant: u32,
    /// Checkpoint once this many results wait...
    #[serde(deserialize_with = "field::positive")]
    pub checkpoint_every: usize,
    /// ...or once the oldest has waited this long.
    #[serde(rename = "checkpoint_interval_ms", deserialize_with = "field::millis")]
    pub checkpoint_interval: Duration,
    /// How long a cached provider response is reused.
    #[serde(rename = "cache_ttl_ms", deserialize_with = "field::millis")]
    pub cache_ttl: Duration,
    /// Whether provider responses are cached at all.
    pub cache: bool,
    /// Largest rendered prompt of one case.
    #[serde(deserialize_with = "field::positive")]
    pub max_prompt_bytes: usize,
    /// Largest references of one case.
    #[serde(deserialize_with = "field::positive")]
    pub max_reference_bytes: usize,
    /// Largest output stored and scored.
    #[serde(deserialize_with = "field::positive")]
    pub max_output_bytes: usize,
    /// Most output bytes stored for one evaluation.
    #[serde(deserialize_with = "field::positive")]
    pub max_evaluation_output_bytes: usize,
    /// Largest provider response body read.
    #[serde(deserialize_with = "field::positive")]
    pub max_response_bytes: usize,
    /// Longest one case's scoring may take.
    #[serde(rename = "score_timeout_ms", deserialize_with = "field::millis")]
    pub score_timeout: Duration,
    /// Cases scored at once (blocking threads).
    #[serde(deserialize_with = "field::count::<_, usize, 1, 64>")]
    pub scoring_threads: usize,
}

/// Where an operator credential's value is read from, once, at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An environment variable (removed from the environment after it is read).
    Env(String),
    /// A file (its content, without a trailing newline).
    File(PathBuf),
}

/// A provider credential the operator configures (`[[providers.credentials]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorCredentialConfig {
    /// Name specs use (`"credential": "name"`).
    pub name: String,
    /// Where the value comes from.
    pub source: CredentialSource,
    /// `host:port` pairs it may be sent to.
    pub allowed_hosts: Vec<String>,
    /// Tenant ids that may use it; `*` for all.
    pub tenants: Vec<String>,
    /// PEM file of the private CA its endpoint's certificate chains to.
    pub ca_file: Option<PathBuf>,
}

/// One `[[providers.credentials]]` table as written; [`Config`] checks what spans entries
/// and keys (exactly one source, unique names, not a node variable).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialEntry {
    #[serde(deserialize_with = "field::credential_name")]
    name: String,
    #[serde(default, deserialize_with = "field::variable_name")]
    from_env: Option<String>,
    #[serde(default, deserialize_with = "field::credential_file")]
    from_file: Option<PathBuf>,
    #[serde(deserialize_with = "field::allowed_hosts")]
    allowed_hosts: Vec<String>,
    #[serde(deserialize_with = "field::credential_tenants")]
    tenants: Vec<String>,
    #[serde(default, deserialize_with = "field::credential_file")]
    ca_file: Option<PathBuf>,
}

/// An operator credential with its value, loaded at start. `Debug` leaves the value out.
#[derive(Clone)]
pub struct LoadedCredential {
    /// Name.
    pub name: String,
    /// The value.
    pub value: String,
    /// `host:port` pairs it may be sent to.
    pub allowed_hosts: Vec<String>,
    /// Tenant ids that may use it.
    pub tenants: Vec<String>,
    /// PEM of its private CA, checked.
    pub ca_pem: Option<String>,
}

// Hand-written so the value never reaches a log line.
impl fmt::Debug for LoadedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCredential")
            .field("name", &self.name)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

/// Provider egress exceptions (`[providers.egress]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// CIDRs and `host:port` pairs provider calls may reach although they are loopback,
    /// private, link-local or otherwise special.
    #[serde(deserialize_with = "field::egress_allow")]
    pub allow: Vec<String>,
}

/// Model providers: egress policy and operator credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Egress exceptions.
    pub egress: EgressConfig,
    /// Operator credentials, checked across entries.
    #[serde(skip)]
    pub credentials: Vec<OperatorCredentialConfig>,
    /// The `[[providers.credentials]]` tables as written.
    #[serde(default, rename = "credentials")]
    entries: Vec<CredentialEntry>,
}

/// TLS (`[tls]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Directory of `ca.crt`, `node.crt` and `node.key`; none = plain HTTP.
    #[serde(deserialize_with = "field::optional_path")]
    pub certs_dir: Option<PathBuf>,
    /// How often the node's certificate files are checked for changes.
    #[serde(rename = "reload_check_ms", deserialize_with = "field::millis")]
    pub reload_check: Duration,
    /// Allows non-loopback listeners without TLS (traffic in clear).
    pub insecure: bool,
    /// Client certificate names (common names) that are admins on the API.
    #[serde(deserialize_with = "field::client_names")]
    pub admin_clients: Vec<String>,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    #[serde(deserialize_with = "field::log_format")]
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `colony=debug,info`.
    #[serde(deserialize_with = "field::log_level")]
    pub level: String,
}

/// The whole node configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the node keeps its data.
    #[serde(deserialize_with = "field::non_empty_path")]
    pub data_dir: PathBuf,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Gossip settings.
    pub gossip: GossipConfig,
    /// Cluster settings.
    pub cluster: ClusterConfig,
    /// Raft settings.
    pub raft: RaftConfig,
    /// Rate-limit settings.
    pub ratelimit: RateLimitConfig,
    /// Evaluation settings.
    pub evaluations: EvaluationsConfig,
    /// Provider egress and credentials.
    pub providers: ProvidersConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// Log settings.
    pub log: LogConfig,
    /// The merged layers this was read from; later layers are merged into them.
    #[serde(skip)]
    layers: Layers,
}

/// A merged TOML table. `Debug` leaves it out: it holds the cluster secret.
#[derive(Clone, Default)]
struct Layers(toml::Table);

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Layers(..)")
    }
}

/// Why `providers.credentials` has no variable or `--set` form.
const CREDENTIALS_ONLY_IN_FILE: &str = "operator credentials are set only in the config file, \
     as [[providers.credentials]] tables; there is no variable or flag form";

/// Largest operator credential file read (`from_file`).
const MAX_CREDENTIAL_FILE_BYTES: u64 = 64 * 1024;

/// Keys that hold secrets: never taken from the command line (`--set`), where every local
/// user can read them.
pub const SECRET_KEYS: &[&str] = &["cluster.secret"];

/// Environment variables that are not configuration keys but are read by the node.
pub const OTHER_VARIABLES: &[&str] = &["COLONY_ADMIN_TOKEN", "COLONY_CONFIG"];

/// The environment variable of a key: `http.listen` -> `COLONY_HTTP_LISTEN`.
pub fn env_name(key: &str) -> String {
    format!("COLONY_{}", key.to_ascii_uppercase().replace('.', "_"))
}

/// The embedded defaults as a table.
fn defaults() -> &'static toml::Table {
    static TABLE: OnceLock<toml::Table> = OnceLock::new();
    TABLE.get_or_init(|| match DEFAULTS.parse() {
        Ok(t) => t,
        // A constant of the binary, checked by a unit test: a failure here is a bug.
        Err(e) => panic!("configs/single.toml is not valid TOML: {e}"),
    })
}

/// Every key (dotted), with its default value.
pub fn keys() -> &'static [(String, toml::Value)] {
    static KEYS: OnceLock<Vec<(String, toml::Value)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut out = Vec::new();
        leaves("", defaults(), &mut out);
        out
    })
}

/// The leaves of `table`, as dotted keys.
fn leaves(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => leaves(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// The default of `key`, if it is one.
fn default_of(key: &str) -> Option<&'static toml::Value> {
    keys().iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `text` as a value of the same TOML type as `default` (variables and flags are text).
fn typed(key: &str, text: &str, default: &toml::Value) -> Result<toml::Value, ConfigError> {
    let v = text.trim();
    Ok(match default {
        toml::Value::Integer(_) => toml::Value::Integer(v.parse().map_err(|_| {
            ConfigError::new(key, format!("{} is not a whole number", field::shown(text)))
        })?),
        toml::Value::Boolean(_) => toml::Value::Boolean(match v {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                return Err(ConfigError::new(
                    key,
                    format!("{} is not true or false", field::shown(text)),
                ))
            }
        }),
        // Lists are comma-separated.
        toml::Value::Array(_) => toml::Value::Array(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        _ => toml::Value::String(text.to_string()),
    })
}

/// Merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Names the key of a serde error: its path, plus the field when one is missing.
fn key_error(err: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let path = err.path().to_string();
    let message = err.inner().message().to_string();
    let quoted = |prefix: &str| -> Option<String> {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('`'))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    let at = |field: &str| {
        if path == "." || path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(missing) = quoted("missing field ") {
        return ConfigError::new(at(&missing), "required");
    }
    // The path ends at an unknown key; one outside a credential table gets a hint.
    if message.starts_with("unknown field") && !path.starts_with("providers.credentials") {
        return unknown_key(&path);
    }
    // serde quotes the offending value ("invalid type: integer `…`"): not a secret's.
    if SECRET_KEYS.contains(&path.as_str()) {
        return ConfigError::new(path, "must be a string (the value is not shown)");
    }
    ConfigError::new(path, message)
}

impl Default for Config {
    fn default() -> Self {
        match Config::from_layers(defaults().clone()) {
            Ok(c) => c,
            // A constant of the binary, checked by a unit test: a failure here is a bug.
            Err(e) => panic!("a built-in default is invalid: {e}"),
        }
    }
}

impl Config {
    /// Reads merged layers, and checks what spans several keys of a credential.
    fn from_layers(layers: toml::Table) -> Result<Config, ConfigError> {
        let mut config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(layers.clone()))
                .map_err(key_error)?;
        config.providers.credentials = check_credentials(&config.providers.entries)?;
        config.layers = Layers(layers);
        Ok(config)
    }

    /// Merges `over` into the layers; on an error nothing changes.
    fn apply(&mut self, over: toml::Table) -> Result<(), ConfigError> {
        let mut layers = self.layers.0.clone();
        merge(&mut layers, over);
        *self = Config::from_layers(layers)?;
        Ok(())
    }

    /// Sets one key from its text form (a variable or a flag).
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), ConfigError> {
        if key == "providers.credentials" {
            return Err(ConfigError::new(key, CREDENTIALS_ONLY_IN_FILE));
        }
        let Some(default) = default_of(key) else {
            return Err(unknown_key(key));
        };
        let mut over = toml::Table::new();
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        over.insert(last.to_string(), typed(key, v, default)?);
        for part in parts.into_iter().rev() {
            let mut outer = toml::Table::new();
            outer.insert(part.to_string(), toml::Value::Table(over));
            over = outer;
        }
        self.apply(over)
    }

    /// Applies a TOML document: every key must be known and of the right kind.
    pub fn apply_toml(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new(file, format!("not valid TOML: {}", e.message()))
        })?;
        self.apply(table)
    }

    /// Applies `COLONY_*` variables from `vars`; an unknown `COLONY_*` variable is an error.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            if !name.starts_with("COLONY_") || OTHER_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            // A credential's own variable (`from_env`) may be named COLONY_*: not a key.
            let credential_variable = self
                .providers
                .credentials
                .iter()
                .any(|c| matches!(&c.source, CredentialSource::Env(v) if *v == name));
            if credential_variable {
                continue;
            }
            if name.starts_with("COLONY_PROVIDERS_CREDENTIALS") {
                return Err(ConfigError::new(&name, CREDENTIALS_ONLY_IN_FILE));
            }
            let Some((key, _)) = keys().iter().find(|(k, _)| env_name(k) == name) else {
                return Err(ConfigError::new(
                    &name,
                    "unknown variable; each config key has one, e.g. COLONY_HTTP_LISTEN for http.listen",
                ));
            };
            self.set(key, &value)
                .map_err(|e| ConfigError::new(format!("{} (from {name})", e.key), e.problem))?;
        }
        Ok(())
    }

    /// Checks relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.raft;
        if r.election_timeout_min >= r.election_timeout_max {
            return Err(ConfigError::new(
                "raft.election_timeout_max_ms",
                "must be greater than raft.election_timeout_min_ms",
            ));
        }
        if r.heartbeat >= r.election_timeout_min {
            return Err(ConfigError::new(
                "raft.heartbeat_ms",
                "must be less than raft.election_timeout_min_ms",
            ));
        }
        let g = &self.gossip;
        if g.probe_rtt >= g.probe_period {
            return Err(ConfigError::new(
                "gossip.probe_rtt_ms",
                "must be less than gossip.probe_period_ms",
            ));
        }
        let joins = !self.cluster.seeds.is_empty() || self.cluster.bootstrap;
        if joins && self.cluster.secret.is_empty() {
            return Err(ConfigError::new(
                "cluster.secret",
                "a cluster (seeds or bootstrap) needs a shared secret, the same on every node \
                 (set COLONY_CLUSTER_SECRET)",
            ));
        }
        // Placeholders, short and predictable secrets are refused (secrets.rs).
        if !self.cluster.secret.is_empty() {
            crate::secrets::check_secret("cluster.secret", &self.cluster.secret)?;
        }
        // Secure by default: traffic leaves the host only encrypted, unless the operator
        // says otherwise in so many words.
        if self.tls.certs_dir.is_none() && !self.tls.insecure {
            let listeners = [
                ("http.listen", self.http.listen),
                ("raft.listen", self.raft.listen),
                ("cluster.listen", self.cluster.listen),
                ("gossip.listen", self.gossip.listen),
            ];
            if let Some((key, addr)) = listeners.iter().find(|(_, a)| !a.ip().is_loopback()) {
                return Err(ConfigError::new(
                    "tls.certs_dir",
                    format!(
                        "{key} is {addr}, not a loopback address, and TLS is off: give the \
                         node certificates (--certs-dir, see `colony certs`) or pass \
                         --insecure (tls.insecure) to send cluster traffic in clear"
                    ),
                ));
            }
        }
        if !self.tls.admin_clients.is_empty() && self.tls.certs_dir.is_none() {
            return Err(ConfigError::new(
                "tls.admin_clients",
                "client certificates need TLS: set tls.certs_dir too",
            ));
        }
        if self.raft.max_entry_bytes < self.http.max_body_bytes + 64 * 1024 {
            return Err(ConfigError::new(
                "raft.max_entry_bytes",
                "must be at least http.max_body_bytes + 65536 (a submitted spec is one entry)",
            ));
        }
        Ok(())
    }

    /// Reads every operator credential's value (once, at start).
    pub fn load_operator_credentials(&self) -> Result<Vec<LoadedCredential>, ConfigError> {
        let mut out = Vec::new();
        for (i, c) in self.providers.credentials.iter().enumerate() {
            let (field, value) = match &c.source {
                CredentialSource::Env(var) => (
                    "from_env",
                    std::env::var(var).map_err(|_| {
                        ConfigError::new(
                            format!("providers.credentials[{i}].from_env"),
                            format!("variable {} is not set", field::shown_variable(var)),
                        )
                    })?,
                ),
                CredentialSource::File(path) => (
                    "from_file",
                    read_credential_file(path).map_err(|e| {
                        ConfigError::new(
                            format!("providers.credentials[{i}].from_file"),
                            format!(
                                "cannot read {}: {e}",
                                field::shown_path(&path.display().to_string())
                            ),
                        )
                    })?,
                ),
            };
            let value = value.trim_end_matches(['\r', '\n']).to_string();
            colony_core::credential::check_value(&value).map_err(|e| {
                ConfigError::new(format!("providers.credentials[{i}].{field}"), e.to_string())
            })?;
            let ca_pem = match &c.ca_file {
                None => None,
                Some(path) => {
                    let key = format!("providers.credentials[{i}].ca_file");
                    let shown = || field::shown_path(&path.display().to_string());
                    let pem = read_credential_file(path).map_err(|e| {
                        ConfigError::new(key.clone(), format!("cannot read {}: {e}", shown()))
                    })?;
                    colony_tls::client::private_ca(pem.as_bytes(), colony_tls::client::ALPN_HTTP1)
                        .map_err(|e| ConfigError::new(key, format!("{}: {e}", shown())))?;
                    Some(pem)
                }
            };
            out.push(LoadedCredential {
                name: c.name.clone(),
                value,
                allowed_hosts: c.allowed_hosts.clone(),
                tenants: c.tenants.clone(),
                ca_pem,
            });
        }
        Ok(out)
    }

    /// The environment variables holding secrets: removed once read.
    pub fn secret_env_names(&self) -> Vec<String> {
        let mut names = vec![
            "COLONY_ADMIN_TOKEN".to_string(),
            "COLONY_CLUSTER_SECRET".to_string(),
        ];
        for c in &self.providers.credentials {
            if let CredentialSource::Env(var) = &c.source {
                names.push(var.clone());
            }
        }
        names
    }
}

/// Checks what spans the fields or entries of `[[providers.credentials]]`: exactly one
/// source, which is not one of the node's own variables (the admin token or cluster secret
/// must never be sent to a provider), and unique names.
fn check_credentials(
    entries: &[CredentialEntry],
) -> Result<Vec<OperatorCredentialConfig>, ConfigError> {
    let mut out: Vec<OperatorCredentialConfig> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |f: &str| format!("providers.credentials[{i}].{f}");
        if out.iter().any(|c| c.name == e.name) {
            return Err(ConfigError::new(
                at("name"),
                format!("duplicate credential name {:?}", e.name),
            ));
        }
        let source = match (&e.from_env, &e.from_file) {
            (Some(var), None) => {
                let own = OTHER_VARIABLES.contains(&var.as_str())
                    || keys().iter().any(|(k, _)| env_name(k) == *var);
                if own {
                    return Err(ConfigError::new(
                        at("from_env"),
                        format!(
                            "{var} is one of the node's own variables; give the credential its \
                             own (e.g. OPENAI_API_KEY)"
                        ),
                    ));
                }
                CredentialSource::Env(var.clone())
            }
            (None, Some(path)) => CredentialSource::File(path.clone()),
            _ => {
                return Err(ConfigError::new(
                    at("from_env"),
                    "give exactly one of from_env and from_file",
                ))
            }
        };
        out.push(OperatorCredentialConfig {
            name: e.name.clone(),
            source,
            allowed_hosts: e.allowed_hosts.clone(),
            tenants: e.tenants.clone(),
            ca_file: e.ca_file.clone(),
        });
    }
    Ok(out)
}

/// Reads a credential file, refusing one larger than [`MAX_CREDENTIAL_FILE_BYTES`]
/// (rather than cutting it, or reading `/dev/zero` forever).
fn read_credential_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CREDENTIAL_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CREDENTIAL_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CREDENTIAL_FILE_BYTES} bytes; is this the right file?"),
        ));
    }
    Ok(text)
}

/// An unknown key, with the nearest known one when it is close.
fn unknown_key(key: &str) -> ConfigError {
    let hint = keys()
        .iter()
        .map(|(k, _)| k.as_str())
        .min_by_key(|k| strsim::levenshtein(k, key))
        .filter(|k| strsim::levenshtein(k, key) <= 3)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    ConfigError::new(
        key,
        format!("unknown key{hint} (configs/single.toml lists every key)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_key_has_a_text_form() {
        // configs/single.toml is the defaults: a field missing from it fails
        // Config::default(), a key in it without a field fails deny_unknown_fields.
        let c = Config::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.http.write_timeout, Duration::from_secs(5));
        assert_eq!(c.log.format, LogFormat::Pretty);
        assert!(keys().len() > 40, "{}", keys().len());
        // Every default reads back through its variable / --set text form.
        let mut from_text = Config::default();
        let mut variables = std::collections::HashSet::new();
        for (key, value) in keys() {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(a) => {
                    assert!(a.is_empty(), "{key}: list defaults are empty");
                    String::new()
                }
                other => panic!("{key}: a default of an unexpected kind: {other:?}"),
            };
            from_text
                .set(key, &text)
                .unwrap_or_else(|e| panic!("{key} = {text:?}: {e}"));
            assert!(
                variables.insert(env_name(key)),
                "{key}: its variable is unique"
            );
        }
        assert_eq!(
            format!("{:?}", from_text.cluster),
            format!("{:?}", c.cluster)
        );
        assert_eq!(format!("{:?}", from_text.raft), format!("{:?}", c.raft));
    }

    #[test]
    fn layers_keep_earlier_values_and_a_failed_one_changes_nothing() {
        let mut c = Config::default();
        c.apply_toml(
            "[http]
max_body_bytes = 2048
",
            "f",
        )
        .unwrap();
        c.apply_env([("COLONY_HTTP_LISTEN".to_string(), "127.0.0.1:9".to_string())])
            .unwrap();
        c.set("raft.heartbeat_ms", "50").unwrap();
        assert_eq!(c.http.max_body_bytes, 2048);
        assert_eq!(c.http.listen.port(), 9);
        assert_eq!(c.raft.heartbeat, Duration::from_millis(50));
        let e = c
            .apply_toml(
                "[http]\nlisten = \"127.0.0.1:10\"\nmax_body_bytes = 1\n",
                "f",
            )
            .unwrap_err();
        assert_eq!(e.key, "http.max_body_bytes");
        assert_eq!(c.http.listen.port(), 9, "a failed layer changes nothing");
        assert_eq!(c.http.max_body_bytes, 2048);
        assert_eq!(
            c.set("http.write_timeout_ms", "soon").unwrap_err().key,
            "http.write_timeout_ms"
        );
        assert_eq!(c.http.write_timeout, Duration::from_secs(5));
        // File values are typed: a number is not a string, nor a table a value.
        for (text, key) in [
            ("[http]\nmax_body_bytes = \"2048\"", "http.max_body_bytes"),
            ("[cluster]\nbootstrap = \"yes\"", "cluster.bootstrap"),
            ("[cluster]\nseeds = \"127.0.0.1:1\"", "cluster.seeds"),
            ("http = 1", "http"),
            ("[http.listen]\nport = 1", "http.listen"),
        ] {
            assert_eq!(
                Config::default().apply_toml(text, "f").unwrap_err().key,
                key,
                "{text}"
            );
        }
    }

    #[test]
    fn the_shipped_config_files_load() {
        for (name, text) in [
            (
                "configs/cluster/n1.toml",
                include_str!("../../configs/cluster/n1.toml"),
            ),
            (
                "configs/cluster/n2.toml",
                include_str!("../../configs/cluster/n2.toml"),
            ),
            (
                "configs/cluster/n3.toml",
                include_str!("../../configs/cluster/n3.toml"),
            ),
            (
                "deploy/systemd/colony.toml",
                include_str!("../../deploy/systemd/colony.toml"),
            ),
        ] {
            let mut c = Config::default();
            c.apply_toml(text, name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!c.cluster.seeds.is_empty(), "{name}");
        }
    }

    #[test]
    fn bucket_replicas_are_one_to_four() {
        let mut c = Config::default();
        assert_eq!(c.ratelimit.replicas, 2);
        for bad in ["0", "5", "-1", "two"] {
            let e = c
                .apply_toml(&format!("[ratelimit]\nreplicas = {bad:?}"), "f")
                .unwrap_err();
            assert_eq!(e.key, "ratelimit.replicas", "{bad}");
        }
        c.apply_toml("[ratelimit]\nreplicas = 4", "f").unwrap();
        assert_eq!(c.ratelimit.replicas, 4);
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = Config::default();
        assert_eq!(
            c.apply_toml("[http]\nlisten = \"nope\"", "f")
                .unwrap_err()
                .key,
            "http.listen"
        );
        assert_eq!(
            c.apply_toml("[http]\nlistn = \"x\"", "f").unwrap_err().key,
            "http.listn"
        );
        assert!(c
            .apply_toml("[http]\nlistn = \"x\"", "f")
            .unwrap_err()
            .problem
            .contains("did you mean `http.listen`"));
        assert_eq!(
            c.apply_toml("[bogus]\nx = 1", "f").unwrap_err().key,
            "bogus"
        );
        assert_eq!(
            c.apply_toml("data_dir = 1.5", "f").unwrap_err().key,
            "data_dir"
        );
        assert_eq!(c.apply_toml("x = [", "f.toml").unwrap_err().key, "f.toml");
        assert_eq!(
            c.apply_toml("[raft]\nheartbeat_ms = -1", "f")
                .unwrap_err()
                .key,
            "raft.heartbeat_ms"
        );
        assert_eq!(
            c.apply_toml("[log]\nformat = \"xml\"", "f")
                .unwrap_err()
                .key,
            "log.format"
        );
    }

    #[test]
    fn env_overrides_and_unknown_variables() {
        let mut c = Config::default();
        c.apply_env([
            ("COLONY_HTTP_LISTEN".to_string(), "127.0.0.1:9".to_string()),
            ("HOME".into(), "/".into()),
        ])
        .unwrap();
        assert_eq!(c.http.listen.port(), 9);
        let e = c
            .apply_env([("COLONY_HTTP_LISTN".to_string(), "x".to_string())])
            .unwrap_err();
        assert_eq!(e.key, "COLONY_HTTP_LISTN");
        let e = c
            .apply_env([("COLONY_HTTP_LISTEN".to_string(), "x".to_string())])
            .unwrap_err();
        assert!(e.key.starts_with("http.listen"));
        c.apply_env([("COLONY_ADMIN_TOKEN".to_string(), "whatever".to_string())])
            .unwrap();
    }

    #[test]
    fn relations_are_checked() {
        let mut c = Config::default();
        c.set("raft.election_timeout_min_ms", "700").unwrap();
        assert_eq!(
            c.validate().unwrap_err().key,
            "raft.election_timeout_max_ms"
        );
    }

    /// An `openssl rand -hex 32`.
    const GOOD_SECRET: &str = "3f9c2a7b8e1d4f6a0b5c9e2d7a1f3b8c6e4d2a9f7b1c5e3d8a6f2b4c9e1d7a3f";

    #[test]
    fn the_cluster_secret_must_be_strong() {
        let mut c = Config::default();
        c.set("cluster.bootstrap", "true").unwrap();
        assert_eq!(c.validate().unwrap_err().key, "cluster.secret");
        let repeated = "a".repeat(64);
        for weak in [
            "test-cluster-secret-0123456789",
            "CHANGE-ME-cluster-secret-please-0123456789",
            repeated.as_str(),
        ] {
            c.set("cluster.secret", weak).unwrap();
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, "cluster.secret");
            assert!(e.problem.contains("openssl rand -hex 32"), "{e}");
            assert!(
                !e.to_string().contains(weak),
                "the secret is not echoed: {e}"
            );
        }
        c.set("cluster.secret", GOOD_SECRET).unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn a_raft_entry_must_hold_a_request_body() {
        let mut c = Config::default();
        c.set("http.max_body_bytes", "4194304").unwrap();
        assert_eq!(c.validate().unwrap_err().key, "raft.max_entry_bytes");
        c.set("raft.max_entry_bytes", "8388608").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn limits_and_egress_allow() {
        let mut c = Config::default();
        assert!(c.providers.egress.allow.is_empty());
        assert!(c.providers.credentials.is_empty());
        assert_eq!(c.evaluations.max_prompt_bytes, 65536);
        assert_eq!(c.evaluations.max_reference_bytes, 65536);
        assert_eq!(c.evaluations.max_output_bytes, 65536);
        assert_eq!(c.evaluations.max_response_bytes, 1 << 20);
        assert_eq!(c.evaluations.score_timeout, Duration::from_secs(2));
        assert_eq!(c.evaluations.scoring_threads, 1);
        assert_eq!(c.raft.max_entry_bytes, 2 << 20);
        assert_eq!(c.ratelimit.max_duration_ms, 86_400_000);
        assert_eq!(c.ratelimit.max_buckets_per_tenant, 100_000);
        c.apply_toml(
            "[providers.egress]\nallow = [\"127.0.0.0/8\", \"localhost:11434\", \"10.1.2.3\"]\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            c.providers.egress.allow,
            ["127.0.0.0/8", "localhost:11434", "10.1.2.3"]
        );
        c.apply_env([(
            "COLONY_PROVIDERS_EGRESS_ALLOW".to_string(),
            "::1/128, [::1]:8000".to_string(),
        )])
        .unwrap();
        assert_eq!(c.providers.egress.allow, ["::1/128", "[::1]:8000"]);
        for bad in ["10.0.0.0/33", "localhost", "host:0", "a b:80"] {
            let e = c.set("providers.egress.allow", bad).unwrap_err();
            assert_eq!(e.key, "providers.egress.allow", "{bad}");
        }
        for (key, bad) in [
            ("evaluations.scoring_threads", "0"),
            ("evaluations.score_timeout_ms", "0"),
            ("evaluations.max_response_bytes", "x"),
            ("ratelimit.max_duration_ms", "0"),
            ("ratelimit.max_buckets_per_tenant", "0"),
            ("raft.max_entry_bytes", "1024"),
        ] {
            assert_eq!(c.set(key, bad).unwrap_err().key, key, "{bad}");
        }
    }

    const CREDENTIALS: &str = r#"
[[providers.credentials]]
name = "openai"
from_env = "COLONY_TEST_OPENAI_KEY"
allowed_hosts = ["api.openai.com:443"]
tenants = ["*"]

[[providers.credentials]]
name = "local.vllm"
from_file = "/run/secrets/vllm"
allowed_hosts = ["127.0.0.1:8000", "[::1]:8000"]
tenants = ["acme", "globex"]
"#;

    #[test]
    fn operator_credentials_come_from_the_file_only() {
        let mut c = Config::default();
        c.apply_toml(CREDENTIALS, "f").unwrap();
        let creds = &c.providers.credentials;
        assert_eq!(creds.len(), 2);
        assert_eq!(creds[0].name, "openai");
        assert_eq!(
            creds[0].source,
            CredentialSource::Env("COLONY_TEST_OPENAI_KEY".into())
        );
        assert_eq!(creds[0].allowed_hosts, ["api.openai.com:443"]);
        assert_eq!(
            creds[1].source,
            CredentialSource::File("/run/secrets/vllm".into())
        );
        assert_eq!(creds[1].tenants, ["acme", "globex"]);
        // A credential's own COLONY_* variable is not taken for an unknown key...
        c.apply_env([("COLONY_TEST_OPENAI_KEY".to_string(), "sk-x".to_string())])
            .unwrap();
        // ...and credentials have no variable or --set form.
        let e = c
            .apply_env([("COLONY_PROVIDERS_CREDENTIALS".to_string(), "x".to_string())])
            .unwrap_err();
        assert!(e.problem.contains("only in the config file"), "{e}");
        let e = c.set("providers.credentials", "x").unwrap_err();
        assert!(e.problem.contains("only in the config file"), "{e}");
        assert_eq!(
            c.secret_env_names(),
            [
                "COLONY_ADMIN_TOKEN",
                "COLONY_CLUSTER_SECRET",
                "COLONY_TEST_OPENAI_KEY"
            ]
        );
        assert_eq!(
            c.apply_toml("[providers]\ncredentials = \"x\"", "f")
                .unwrap_err()
                .key,
            "providers.credentials"
        );
    }

    #[test]
    fn operator_credential_errors_name_the_entry_and_field() {
        let first = "[[providers.credentials]]\nname = \"ok\"\nfrom_env = \"K\"\n\
                     allowed_hosts = [\"a.example:443\"]\ntenants = [\"*\"]\n";
        let hosts = "allowed_hosts = [\"h:1\"]";
        let all = "tenants = [\"*\"]";
        let cases = [
            (
                format!("name = \"bad name\"\nfrom_env = \"K2\"\n{hosts}\n{all}"),
                "name",
            ),
            (
                format!("name = \"ok\"\nfrom_env = \"K2\"\n{hosts}\n{all}"),
                "name",
            ),
            (format!("from_env = \"K2\"\n{hosts}\n{all}"), "name"),
            (
                format!("name = \"b\"\nfrom_env = \"K2\"\nfrom_file = \"/k\"\n{hosts}\n{all}"),
                "from_env",
            ),
            (format!("name = \"b\"\n{hosts}\n{all}"), "from_env"),
            (
                format!("name = \"b\"\nfrom_env = \"COLONY_ADMIN_TOKEN\"\n{hosts}\n{all}"),
                "from_env",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"COLONY_CLUSTER_SECRET\"\n{hosts}\n{all}"),
                "from_env",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"1BAD\"\n{hosts}\n{all}"),
                "from_env",
            ),
            (
                format!("name = \"b\"\nfrom_file = \"\"\n{hosts}\n{all}"),
                "from_file",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"K2\"\nallowed_hosts = []\n{all}"),
                "allowed_hosts",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"K2\"\nallowed_hosts = [\"no-port\"]\n{all}"),
                "allowed_hosts",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"K2\"\n{all}"),
                "allowed_hosts",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"K2\"\n{hosts}\ntenants = []"),
                "tenants",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"K2\"\n{hosts}\ntenants = [\"*\", \"acme\"]"),
                "tenants",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"K2\"\n{hosts}\ntenants = [\"Not An Id\"]"),
                "tenants",
            ),
            (
                format!("name = \"b\"\nfrom_env = \"K2\"\n{hosts}\n{all}\nvalue = \"sk\""),
                "value",
            ),
        ];
        for (second, field) in cases {
            let text = format!("{first}\n[[providers.credentials]]\n{second}\n");
            let e = Config::default().apply_toml(&text, "f").unwrap_err();
            assert_eq!(
                e.key,
                format!("providers.credentials[1].{field}"),
                "{second}"
            );
        }
    }

    #[test]
    fn operator_credentials_are_loaded_once_and_scrubbed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "sk-from-file\n").unwrap();
        let var = format!("COLONY_UNIT_TEST_CREDENTIAL_{}", std::process::id());
        std::env::set_var(&var, "sk-from-env");
        let text = format!(
            "[[providers.credentials]]\nname = \"a\"\nfrom_env = \"{var}\"\n\
             allowed_hosts = [\"h:443\"]\ntenants = [\"*\"]\n\n\
             [[providers.credentials]]\nname = \"b\"\nfrom_file = \"{}\"\n\
             allowed_hosts = [\"h:443\"]\ntenants = [\"acme\"]\n",
            file.display()
        );
        let mut c = Config::default();
        c.apply_toml(&text, "f").unwrap();
        let loaded = c.load_operator_credentials().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(
            (loaded[0].name.as_str(), loaded[0].value.as_str()),
            ("a", "sk-from-env")
        );
        assert_eq!(
            (loaded[1].name.as_str(), loaded[1].value.as_str()),
            ("b", "sk-from-file")
        );
        assert_eq!(loaded[1].allowed_hosts, ["h:443"]);
        assert_eq!(loaded[1].tenants, ["acme"]);
        assert!(
            !format!("{loaded:?}").contains("sk-from"),
            "Debug leaves values out"
        );

        let names = c.secret_env_names();
        assert!(names.contains(&var));
        let _ = crate::secrets::scrub_env(&names.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(std::env::var_os(&var).is_none());
        let e = c.load_operator_credentials().unwrap_err();
        assert_eq!(e.key, "providers.credentials[0].from_env");
        assert!(e.problem.contains(&var), "{e}");

        // The file: empty (after its newline), unreadable.
        c.providers.credentials.remove(0);
        std::fs::write(&file, "\n").unwrap();
        let e = c.load_operator_credentials().unwrap_err();
        assert_eq!(e.key, "providers.credentials[0].from_file");
        std::fs::remove_file(&file).unwrap();
        let e = c.load_operator_credentials().unwrap_err();
        assert_eq!(e.key, "providers.credentials[0].from_file");
    }

    #[test]
    fn errors_and_debug_never_show_a_secret() {
        let secret = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
        let mut c = Config::default();
        c.apply_toml(&format!("[cluster]\nsecret = \"{secret}\""), "f")
            .unwrap();
        assert!(
            !format!("{c:?}").contains(secret),
            "Debug redacts the secret"
        );

        // Unquoted, serde would quote the number back.
        let e = Config::default()
            .apply_toml("[cluster]\nsecret = 918273645546372819", "f")
            .unwrap_err();
        assert_eq!(e.key, "cluster.secret");
        assert!(!e.to_string().contains("918273645546372819"), "{e}");

        // A key pasted where its variable's name belongs is not echoed back.
        let pasted = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
        let e = Config::default()
            .apply_toml(
                &format!(
                    "[[providers.credentials]]\nname = \"a\"\nfrom_env = \"{pasted}\"\n\
                     allowed_hosts = [\"h:1\"]\ntenants = [\"*\"]"
                ),
                "f",
            )
            .unwrap_err();
        assert_eq!(e.key, "providers.credentials[0].from_env");
        assert!(!e.to_string().contains(pasted), "{e}");
        assert!(e.to_string().contains("not shown"), "{e}");
        let pasted_name = "sk_live_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
        let mut c = Config::default();
        c.apply_toml(
            &format!(
                "[[providers.credentials]]\nname = \"a\"\nfrom_env = \"{pasted_name}\"\n\
                 allowed_hosts = [\"h:1\"]\ntenants = [\"*\"]"
            ),
            "f",
        )
        .unwrap();
        let e = c.load_operator_credentials().unwrap_err();
        assert!(!e.to_string().contains(pasted_name), "{e}");
    }
}
