//! Node configuration: embedded defaults, then the TOML file, then `COLONY_*` environment
//! variables, then command-line flags. Every key is listed once in [`KEYS`]; file keys,
//! variables and flags all go through [`Config::set`], so every error names its key.

pub use crate::config_error::ConfigError;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// HTTP listener settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address of the public HTTP API.
    pub listen: SocketAddr,
    /// Address other nodes should use for this node's HTTP API, when different from
    /// `listen` (0.0.0.0, NAT); drains of a named node are passed there.
    pub advertise: Option<SocketAddr>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long a write may wait for Raft.
    pub write_timeout: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
}

/// Gossip (SWIM membership over UDP) settings.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// UDP address to bind.
    pub listen: SocketAddr,
    /// Address other nodes should use, when different from `listen` (NAT, 0.0.0.0).
    pub advertise: Option<SocketAddr>,
    /// How often each node probes one member.
    pub probe_period: Duration,
    /// How long a probe waits for an ack before asking others to probe indirectly.
    pub probe_rtt: Duration,
    /// How long a member stays suspect before it is declared down.
    pub suspect_to_down: Duration,
}

/// Cluster formation and safety settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Gossip addresses of nodes to join through.
    pub seeds: Vec<SocketAddr>,
    /// Start a new cluster if this node has no data, even with seeds.
    pub bootstrap: bool,
    /// Shared secret: authenticates gossip packets and internal calls.
    pub secret: String,
    /// How long a voter may be down before the leader replaces it.
    pub voter_down_grace: Duration,
    /// Largest gap between committed and applied entries for `/readyz` to say ready.
    pub max_ready_lag: u64,
    /// Test-only fault injection endpoint (`PUT /v1/testing/faults`).
    pub fault_injection: bool,
    /// TCP address of the actor transport (ractor_cluster): routed rate-limit checks.
    pub listen: SocketAddr,
    /// Address other nodes should dial, when different from `listen`.
    pub advertise: Option<SocketAddr>,
}

/// Raft timing and log compaction.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// Address of the internal listener (Raft RPCs, forwarded writes).
    pub listen: SocketAddr,
    /// Address other nodes should use, when different from `listen`.
    pub advertise: Option<SocketAddr>,
    /// Leader heartbeat interval.
    pub heartbeat: Duration,
    /// Election timeout, lower bound.
    pub election_timeout_min: Duration,
    /// Election timeout, upper bound.
    pub election_timeout_max: Duration,
    /// Snapshot after this many entries.
    pub snapshot_after_logs: u64,
    /// Largest encoded Raft entry proposed.
    pub max_entry_bytes: usize,
    /// Entries kept after a snapshot.
    pub logs_kept_after_snapshot: u64,
}

/// Rate limiting.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Lifetime of a tenant concurrency lease that is never released (its ingress node
    /// crashed or lost the owner): the longest a lost release holds a slot.
    pub lease_ttl: Duration,
    /// How often each owner sends changed buckets to their successors: a crashed owner's
    /// buckets continue from a copy at most this old (plus one send).
    pub replication_interval: Duration,
    /// How many successors keep a replica of each bucket: the owner and up to this many
    /// less one of them may crash together with the bound above.
    pub replicas: usize,
    /// How long after a membership change a new owner asks a bucket's previous owner for
    /// its state before starting afresh.
    pub handoff_window: Duration,
    /// Timeout of asking a previous owner for one bucket.
    pub pull_timeout: Duration,
    /// Largest `duration_ms` of a check item.
    pub max_duration_ms: u64,
    /// Most live buckets one tenant may have on one node.
    pub max_buckets_per_tenant: usize,
}

/// Evaluations.
#[derive(Debug, Clone)]
pub struct EvaluationsConfig {
    /// Most cases in one evaluation spec.
    pub max_cases: usize,
    /// Most evaluations one tenant may have queued or running at once.
    pub max_live_per_tenant: u32,
    /// Most evaluations one tenant may store, of any status.
    pub max_stored_per_tenant: u32,
    /// Checkpoint once this many results wait...
    pub checkpoint_every: usize,
    /// ...or once the oldest has waited this long.
    pub checkpoint_interval: Duration,
    /// How long a cached provider response is reused.
    pub cache_ttl: Duration,
    /// Whether provider responses are cached at all.
    pub cache: bool,
    /// Largest rendered prompt of one case.
    pub max_prompt_bytes: usize,
    /// Largest references of one case.
    pub max_reference_bytes: usize,
    /// Largest output stored and scored.
    pub max_output_bytes: usize,
    /// Most output bytes stored for one evaluation.
    pub max_evaluation_output_bytes: usize,
    /// Largest provider response body read.
    pub max_response_bytes: usize,
    /// Longest one case's scoring may take.
    pub score_timeout: Duration,
    /// Cases scored at once (blocking threads).
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

/// Model providers: egress policy and operator credentials.
#[derive(Debug, Clone, Default)]
pub struct ProvidersConfig {
    /// CIDRs and `host:port` pairs provider calls may reach although they are loopback,
    /// private, link-local or otherwise special.
    pub egress_allow: Vec<String>,
    /// Operator credentials.
    pub credentials: Vec<OperatorCredentialConfig>,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `colony=debug,info`.
    pub level: String,
}

/// The whole node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the node keeps its data.
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
    /// Log settings.
    pub log: LogConfig,
}

/// Every configuration key, with its default as written in `configs/single.toml`.
pub const KEYS: &[(&str, &str)] = &[
    ("data_dir", "./colony-data"),
    ("http.listen", "127.0.0.1:8080"),
    ("http.advertise", ""),
    ("http.max_body_bytes", "1048576"),
    ("http.write_timeout_ms", "5000"),
    ("http.shutdown_grace_ms", "10000"),
    ("gossip.listen", "127.0.0.1:7946"),
    ("gossip.advertise", ""),
    ("gossip.probe_period_ms", "400"),
    ("gossip.probe_rtt_ms", "200"),
    ("gossip.suspect_to_down_ms", "1000"),
    ("cluster.seeds", ""),
    ("cluster.bootstrap", "false"),
    ("cluster.secret", ""),
    ("cluster.voter_down_grace_ms", "30000"),
    ("cluster.max_ready_lag", "100"),
    ("cluster.fault_injection", "false"),
    ("cluster.listen", "127.0.0.1:7947"),
    ("cluster.advertise", ""),
    ("raft.listen", "127.0.0.1:7948"),
    ("raft.advertise", ""),
    ("raft.heartbeat_ms", "100"),
    ("raft.election_timeout_min_ms", "300"),
    ("raft.election_timeout_max_ms", "600"),
    ("raft.snapshot_after_logs", "5000"),
    ("raft.logs_kept_after_snapshot", "1000"),
    ("raft.max_entry_bytes", "2097152"),
    ("ratelimit.lease_ttl_ms", "60000"),
    ("ratelimit.replication_interval_ms", "100"),
    ("ratelimit.replicas", "2"),
    ("ratelimit.handoff_window_ms", "10000"),
    ("ratelimit.pull_timeout_ms", "500"),
    ("ratelimit.max_duration_ms", "86400000"),
    ("ratelimit.max_buckets_per_tenant", "100000"),
    ("evaluations.max_cases", "10000"),
    ("evaluations.max_live_per_tenant", "32"),
    ("evaluations.max_stored_per_tenant", "1000"),
    ("evaluations.checkpoint_every", "50"),
    ("evaluations.checkpoint_interval_ms", "500"),
    ("evaluations.cache", "true"),
    ("evaluations.cache_ttl_ms", "86400000"),
    ("evaluations.max_prompt_bytes", "65536"),
    ("evaluations.max_reference_bytes", "65536"),
    ("evaluations.max_output_bytes", "65536"),
    ("evaluations.max_evaluation_output_bytes", "268435456"),
    ("evaluations.max_response_bytes", "1048576"),
    ("evaluations.score_timeout_ms", "2000"),
    ("evaluations.scoring_threads", "1"),
    ("providers.egress.allow", ""),
    ("log.format", "pretty"),
    ("log.level", "info,openraft=warn"),
];

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

fn parse_u64(key: &str, v: &str) -> Result<u64, ConfigError> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| ConfigError::new(key, format!("{v:?} is not a whole number")))
}

fn parse_addr(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.trim().parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("{v:?} is not a socket address (expected e.g. 127.0.0.1:7946)"),
        )
    })
}

fn parse_optional_addr(key: &str, v: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if v.trim().is_empty() {
        Ok(None)
    } else {
        parse_addr(key, v).map(Some)
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::new(key, format!("{v:?} is not true or false"))),
    }
}

/// Most replicas per bucket: each one costs a copy of every changed bucket per
/// replication round.
const MAX_BUCKET_REPLICAS: u64 = 4;

fn parse_positive(key: &str, v: &str) -> Result<u64, ConfigError> {
    let n = parse_u64(key, v)?;
    if n == 0 {
        return Err(ConfigError::new(key, "must be at least 1"));
    }
    Ok(n)
}

fn parse_positive_u32(key: &str, v: &str) -> Result<u32, ConfigError> {
    u32::try_from(parse_positive(key, v)?)
        .map_err(|_| ConfigError::new(key, "must be at most 4294967295"))
}

fn parse_ms(key: &str, v: &str) -> Result<Duration, ConfigError> {
    let ms = parse_u64(key, v)?;
    if ms == 0 {
        return Err(ConfigError::new(key, "must be at least 1 (milliseconds)"));
    }
    Ok(Duration::from_millis(ms))
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            data_dir: PathBuf::new(),
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                advertise: None,
                max_body_bytes: 0,
                write_timeout: Duration::ZERO,
                shutdown_grace: Duration::ZERO,
            },
            gossip: GossipConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 7946)),
                advertise: None,
                probe_period: Duration::ZERO,
                probe_rtt: Duration::ZERO,
                suspect_to_down: Duration::ZERO,
            },
            cluster: ClusterConfig {
                seeds: Vec::new(),
                bootstrap: false,
                secret: String::new(),
                voter_down_grace: Duration::ZERO,
                max_ready_lag: 0,
                fault_injection: false,
                listen: SocketAddr::from(([127, 0, 0, 1], 7947)),
                advertise: None,
            },
            raft: RaftConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 7948)),
                advertise: None,
                heartbeat: Duration::ZERO,
                election_timeout_min: Duration::ZERO,
                election_timeout_max: Duration::ZERO,
                snapshot_after_logs: 0,
                logs_kept_after_snapshot: 0,
                max_entry_bytes: 0,
            },
            ratelimit: RateLimitConfig {
                lease_ttl: Duration::ZERO,
                replication_interval: Duration::ZERO,
                replicas: 0,
                handoff_window: Duration::ZERO,
                pull_timeout: Duration::ZERO,
                max_duration_ms: 0,
                max_buckets_per_tenant: 0,
            },
            evaluations: EvaluationsConfig {
                max_cases: 0,
                max_live_per_tenant: 0,
                max_stored_per_tenant: 0,
                checkpoint_every: 0,
                checkpoint_interval: Duration::ZERO,
                cache_ttl: Duration::ZERO,
                cache: true,
                max_prompt_bytes: 0,
                max_reference_bytes: 0,
                max_output_bytes: 0,
                max_evaluation_output_bytes: 0,
                max_response_bytes: 0,
                score_timeout: Duration::ZERO,
                scoring_threads: 0,
            },
            providers: ProvidersConfig::default(),
            log: LogConfig {
                format: LogFormat::Pretty,
                level: String::new(),
            },
        };
        for (key, default) in KEYS {
            // The defaults are constants checked by a unit test; a failure here is a bug.
            if let Err(e) = c.set(key, default) {
                panic!("built-in default is invalid: {e}");
            }
        }
        c
    }
}

impl Config {
    /// Sets one key from its text form.
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), ConfigError> {
        match key {
            "data_dir" => {
                if v.trim().is_empty() {
                    return Err(ConfigError::new(key, "must not be empty"));
                }
                self.data_dir = PathBuf::from(v);
            }
            "http.advertise" => self.http.advertise = parse_optional_addr(key, v)?,
            "http.listen" => {
                self.http.listen = v.trim().parse().map_err(|_| {
                    ConfigError::new(
                        key,
                        format!("{v:?} is not a socket address (expected e.g. 127.0.0.1:8080)"),
                    )
                })?;
            }
            "http.max_body_bytes" => {
                let n = parse_u64(key, v)?;
                if !(1024..=1 << 30).contains(&n) {
                    return Err(ConfigError::new(key, "must be between 1024 and 1073741824"));
                }
                self.http.max_body_bytes = n as usize;
            }
            "http.write_timeout_ms" => self.http.write_timeout = parse_ms(key, v)?,
            "http.shutdown_grace_ms" => self.http.shutdown_grace = parse_ms(key, v)?,
            "gossip.listen" => self.gossip.listen = parse_addr(key, v)?,
            "gossip.advertise" => self.gossip.advertise = parse_optional_addr(key, v)?,
            "gossip.probe_period_ms" => self.gossip.probe_period = parse_ms(key, v)?,
            "gossip.probe_rtt_ms" => self.gossip.probe_rtt = parse_ms(key, v)?,
            "gossip.suspect_to_down_ms" => self.gossip.suspect_to_down = parse_ms(key, v)?,
            "cluster.seeds" => {
                self.cluster.seeds = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| parse_addr(key, s))
                    .collect::<Result<_, _>>()?;
            }
            "cluster.bootstrap" => self.cluster.bootstrap = parse_bool(key, v)?,
            "cluster.secret" => self.cluster.secret = v.to_string(),
            "cluster.voter_down_grace_ms" => self.cluster.voter_down_grace = parse_ms(key, v)?,
            "cluster.max_ready_lag" => self.cluster.max_ready_lag = parse_u64(key, v)?,
            "cluster.fault_injection" => self.cluster.fault_injection = parse_bool(key, v)?,
            "ratelimit.lease_ttl_ms" => self.ratelimit.lease_ttl = parse_ms(key, v)?,
            "ratelimit.replication_interval_ms" => {
                self.ratelimit.replication_interval = parse_ms(key, v)?
            }
            "ratelimit.replicas" => {
                let n = parse_positive(key, v)?;
                if n > MAX_BUCKET_REPLICAS {
                    return Err(ConfigError::new(
                        key,
                        format!("must be at most {MAX_BUCKET_REPLICAS}"),
                    ));
                }
                self.ratelimit.replicas = n as usize
            }
            "ratelimit.handoff_window_ms" => self.ratelimit.handoff_window = parse_ms(key, v)?,
            "ratelimit.pull_timeout_ms" => self.ratelimit.pull_timeout = parse_ms(key, v)?,
            "evaluations.max_cases" => {
                self.evaluations.max_cases = parse_positive(key, v)? as usize
            }
            "evaluations.checkpoint_every" => {
                self.evaluations.checkpoint_every = parse_positive(key, v)? as usize
            }
            "evaluations.checkpoint_interval_ms" => {
                self.evaluations.checkpoint_interval = parse_ms(key, v)?
            }
            "evaluations.cache" => self.evaluations.cache = parse_bool(key, v)?,
            "evaluations.max_live_per_tenant" => {
                self.evaluations.max_live_per_tenant = parse_positive_u32(key, v)?
            }
            "evaluations.max_stored_per_tenant" => {
                self.evaluations.max_stored_per_tenant = parse_positive_u32(key, v)?
            }
            "evaluations.max_prompt_bytes" => {
                self.evaluations.max_prompt_bytes = parse_positive(key, v)? as usize
            }
            "evaluations.max_reference_bytes" => {
                self.evaluations.max_reference_bytes = parse_positive(key, v)? as usize
            }
            "evaluations.max_evaluation_output_bytes" => {
                self.evaluations.max_evaluation_output_bytes = parse_positive(key, v)? as usize
            }
            "evaluations.max_output_bytes" => {
                self.evaluations.max_output_bytes = parse_positive(key, v)? as usize
            }
            "evaluations.max_response_bytes" => {
                self.evaluations.max_response_bytes = parse_positive(key, v)? as usize
            }
            "evaluations.score_timeout_ms" => self.evaluations.score_timeout = parse_ms(key, v)?,
            "evaluations.scoring_threads" => {
                let n = parse_positive(key, v)?;
                if n > 64 {
                    return Err(ConfigError::new(key, "must be between 1 and 64"));
                }
                self.evaluations.scoring_threads = n as usize;
            }
            "ratelimit.max_duration_ms" => {
                self.ratelimit.max_duration_ms = parse_positive(key, v)?;
            }
            "ratelimit.max_buckets_per_tenant" => {
                self.ratelimit.max_buckets_per_tenant = parse_positive(key, v)? as usize
            }
            "raft.max_entry_bytes" => {
                let n = parse_u64(key, v)?;
                if !(65536..=1 << 30).contains(&n) {
                    return Err(ConfigError::new(
                        key,
                        "must be between 65536 and 1073741824",
                    ));
                }
                self.raft.max_entry_bytes = n as usize;
            }
            "providers.egress.allow" => {
                let entries: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                colony_providers::EgressPolicy::parse(&entries)
                    .map_err(|e| ConfigError::new(key, e.to_string()))?;
                self.providers.egress_allow = entries;
            }
            "evaluations.cache_ttl_ms" => self.evaluations.cache_ttl = parse_ms(key, v)?,
            "cluster.listen" => self.cluster.listen = parse_addr(key, v)?,
            "cluster.advertise" => self.cluster.advertise = parse_optional_addr(key, v)?,
            "raft.listen" => self.raft.listen = parse_addr(key, v)?,
            "raft.advertise" => self.raft.advertise = parse_optional_addr(key, v)?,
            "raft.heartbeat_ms" => self.raft.heartbeat = parse_ms(key, v)?,
            "raft.election_timeout_min_ms" => self.raft.election_timeout_min = parse_ms(key, v)?,
            "raft.election_timeout_max_ms" => self.raft.election_timeout_max = parse_ms(key, v)?,
            "raft.snapshot_after_logs" => {
                self.raft.snapshot_after_logs = parse_u64(key, v)?;
                if self.raft.snapshot_after_logs == 0 {
                    return Err(ConfigError::new(key, "must be at least 1"));
                }
            }
            "raft.logs_kept_after_snapshot" => {
                self.raft.logs_kept_after_snapshot = parse_u64(key, v)?
            }
            "log.format" => {
                self.log.format = match v.trim() {
                    "pretty" => LogFormat::Pretty,
                    "json" => LogFormat::Json,
                    other => {
                        return Err(ConfigError::new(
                            key,
                            format!("{other:?} is not one of \"pretty\", \"json\""),
                        ))
                    }
                }
            }
            "log.level" => {
                if tracing_subscriber::EnvFilter::try_new(v).is_err() {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "{v:?} is not a log filter (e.g. \"info\" or \"colony=debug,info\")"
                        ),
                    ));
                }
                self.log.level = v.to_string();
            }
            "providers.credentials" => return Err(ConfigError::new(key, CREDENTIALS_ONLY_IN_FILE)),
            other => return Err(unknown_key(other)),
        }
        Ok(())
    }

    /// Applies a TOML document: every key must be known and of the right kind.
    pub fn apply_toml(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new(file, format!("not valid TOML: {}", e.message()))
        })?;
        let mut table = table;
        // Arrays of tables have no flat key: `[[providers.credentials]]` is read apart.
        let credentials = match table.get_mut("providers").and_then(|p| p.as_table_mut()) {
            Some(p) => p.remove("credentials"),
            None => None,
        };
        if let Some(c) = credentials {
            let items = c.as_array().cloned().ok_or_else(|| {
                ConfigError::new(
                    "providers.credentials",
                    "must be an array of tables ([[providers.credentials]])",
                )
            })?;
            self.set_credentials(&items)?;
        }
        let mut flat = Vec::new();
        flatten("", &table, &mut flat)?;
        for (key, value) in flat {
            self.set(&key, &value)?;
        }
        Ok(())
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
            let Some((key, _)) = KEYS.iter().find(|(k, _)| env_name(k) == name) else {
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
                            format!("variable {var} is not set"),
                        )
                    })?,
                ),
                CredentialSource::File(path) => (
                    "from_file",
                    read_credential_file(path).map_err(|e| {
                        ConfigError::new(
                            format!("providers.credentials[{i}].from_file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?,
                ),
            };
            let value = value.trim_end_matches(['\r', '\n']).to_string();
            colony_core::credential::check_value(&value).map_err(|e| {
                ConfigError::new(format!("providers.credentials[{i}].{field}"), e.to_string())
            })?;
            out.push(LoadedCredential {
                name: c.name.clone(),
                value,
                allowed_hosts: c.allowed_hosts.clone(),
                tenants: c.tenants.clone(),
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

    /// Parses `[[providers.credentials]]`.
    fn set_credentials(&mut self, items: &[toml::Value]) -> Result<(), ConfigError> {
        let mut out: Vec<OperatorCredentialConfig> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = |f: &str| format!("providers.credentials[{i}].{f}");
            let t = item.as_table().ok_or_else(|| {
                ConfigError::new(format!("providers.credentials[{i}]"), "must be a table")
            })?;
            for k in t.keys() {
                if !["name", "from_env", "from_file", "allowed_hosts", "tenants"]
                    .contains(&k.as_str())
                {
                    return Err(ConfigError::new(
                        at(k),
                        "unknown key (name, from_env, from_file, allowed_hosts, tenants)",
                    ));
                }
            }
            let string = |f: &str| -> Result<Option<String>, ConfigError> {
                match t.get(f) {
                    None => Ok(None),
                    Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(ConfigError::new(at(f), "must be a string")),
                }
            };
            let strings = |f: &str| -> Result<Vec<String>, ConfigError> {
                match t.get(f) {
                    Some(toml::Value::Array(a)) => a
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| ConfigError::new(at(f), "must be a list of strings"))
                        })
                        .collect(),
                    _ => Err(ConfigError::new(at(f), "required: a list of strings")),
                }
            };
            let name = string("name")?.ok_or_else(|| ConfigError::new(at("name"), "required"))?;
            colony_core::credential::check_name(&name)
                .map_err(|e| ConfigError::new(at("name"), e.to_string()))?;
            if out.iter().any(|c| c.name == name) {
                return Err(ConfigError::new(
                    at("name"),
                    format!("duplicate credential name {name:?}"),
                ));
            }
            let source = match (string("from_env")?, string("from_file")?) {
                (Some(var), None) => {
                    check_credential_variable(&var)
                        .map_err(|p| ConfigError::new(at("from_env"), p))?;
                    CredentialSource::Env(var)
                }
                (None, Some(path)) if path.trim().is_empty() => {
                    return Err(ConfigError::new(at("from_file"), "must not be empty"))
                }
                (None, Some(path)) => CredentialSource::File(PathBuf::from(path)),
                _ => {
                    return Err(ConfigError::new(
                        at("from_env"),
                        "give exactly one of from_env and from_file",
                    ))
                }
            };
            let allowed_hosts =
                colony_core::credential::normalize_hosts(&strings("allowed_hosts")?)
                    .map_err(|e| ConfigError::new(at("allowed_hosts"), e.to_string()))?;
            let tenants = strings("tenants")?;
            if tenants.is_empty() {
                return Err(ConfigError::new(
                    at("tenants"),
                    "name at least one tenant id, or \"*\" for all",
                ));
            }
            check_credential_tenants(&tenants).map_err(|p| ConfigError::new(at("tenants"), p))?;
            out.push(OperatorCredentialConfig {
                name,
                source,
                allowed_hosts,
                tenants,
            });
        }
        self.providers.credentials = out;
        Ok(())
    }
}

/// Checks the `from_env` of an operator credential: a variable name, and not one of the
/// node's own (the admin token or cluster secret must never be sent to a provider).
fn check_credential_variable(var: &str) -> Result<(), String> {
    let mut chars = var.chars();
    let is_name = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return Err(format!(
            "{var:?} is not a variable name (letters, digits and '_', not starting with a digit)"
        ));
    }
    if OTHER_VARIABLES.contains(&var) || KEYS.iter().any(|(k, _)| env_name(k) == var) {
        return Err(format!(
            "{var} is one of the node's own variables; give the credential its own \
             (e.g. OPENAI_API_KEY)"
        ));
    }
    Ok(())
}

/// Checks the `tenants` of an operator credential: `["*"]`, or tenant ids.
fn check_credential_tenants(tenants: &[String]) -> Result<(), String> {
    if tenants.iter().any(|t| t == "*") {
        return if tenants.len() == 1 {
            Ok(())
        } else {
            Err("\"*\" (every tenant) must be the only entry".into())
        };
    }
    for t in tenants {
        colony_core::ids::validate_id(t).map_err(|p| format!("tenant id {t:?} {p}"))?;
    }
    Ok(())
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

fn unknown_key(key: &str) -> ConfigError {
    let hint = KEYS
        .iter()
        .map(|(k, _)| *k)
        .min_by_key(|k| strsim::levenshtein(k, key))
        .filter(|k| strsim::levenshtein(k, key) <= 3)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    ConfigError::new(
        key,
        format!("unknown key{hint} (configs/single.toml lists every key)"),
    )
}

/// Turns nested tables into dotted keys with scalar values as text.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => {
                if !KEYS
                    .iter()
                    .any(|(known, _)| known.starts_with(&format!("{key}.")))
                {
                    return Err(unknown_key(&key));
                }
                flatten(&key, t, out)?;
            }
            toml::Value::String(s) => out.push((key, s.clone())),
            toml::Value::Integer(i) => out.push((key, i.to_string())),
            toml::Value::Boolean(b) => out.push((key, b.to_string())),
            toml::Value::Array(items) if KEYS.iter().any(|(known, _)| *known == key) => {
                let strings: Option<Vec<&str>> = items.iter().map(|i| i.as_str()).collect();
                match strings {
                    Some(s) => out.push((key, s.join(","))),
                    None => return Err(ConfigError::new(key, "must be a list of strings")),
                }
            }
            toml::Value::Float(_) | toml::Value::Datetime(_) | toml::Value::Array(_) => {
                if !KEYS.iter().any(|(known, _)| *known == key) {
                    return Err(unknown_key(&key));
                }
                return Err(ConfigError::new(
                    key,
                    "has the wrong type (expected a string or a whole number)",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_example_file() {
        let c = Config::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        // configs/single.toml documents every key with its default.
        let text = include_str!("../../configs/single.toml");
        let mut from_file = Config::default();
        from_file.apply_toml(text, "configs/single.toml").unwrap();
        let table: toml::Table = text.parse().unwrap();
        let mut flat = Vec::new();
        flatten("", &table, &mut flat).unwrap();
        let mut documented: Vec<_> = flat.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        documented.sort();
        let mut keys: Vec<_> = KEYS.to_vec();
        keys.sort();
        assert_eq!(
            documented, keys,
            "configs/single.toml must list every key with its default"
        );
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
        assert!(c.providers.egress_allow.is_empty());
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
            c.providers.egress_allow,
            ["127.0.0.0/8", "localhost:11434", "10.1.2.3"]
        );
        c.apply_env([(
            "COLONY_PROVIDERS_EGRESS_ALLOW".to_string(),
            "::1/128, [::1]:8000".to_string(),
        )])
        .unwrap();
        assert_eq!(c.providers.egress_allow, ["::1/128", "[::1]:8000"]);
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
}
