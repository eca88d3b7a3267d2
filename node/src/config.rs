//! Node configuration: embedded defaults, then the TOML file, then `COLONY_*` environment
//! variables, then command-line flags. Every key is listed once in [`KEYS`]; file keys,
//! variables and flags all go through [`Config::set`], so every error names its key.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration error: which key, and what is wrong with it. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key (`http.listen`), variable or file concerned.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config key `{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

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
    /// Entries kept after a snapshot.
    pub logs_kept_after_snapshot: u64,
}

/// Rate limiting.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Lifetime of a tenant concurrency lease that is never released (its ingress node
    /// crashed or lost the owner): the longest a lost release holds a slot.
    pub lease_ttl: Duration,
    /// How often each owner sends changed buckets to their successor: a crashed owner's
    /// buckets continue from a copy at most this old (plus one send).
    pub replication_interval: Duration,
    /// How long after a membership change a new owner asks a bucket's previous owner for
    /// its state before starting afresh.
    pub handoff_window: Duration,
    /// Timeout of asking a previous owner for one bucket.
    pub pull_timeout: Duration,
}

/// Evaluations.
#[derive(Debug, Clone)]
pub struct EvaluationsConfig {
    /// Most cases in one evaluation spec.
    pub max_cases: usize,
    /// Checkpoint once this many results wait...
    pub checkpoint_every: usize,
    /// ...or once the oldest has waited this long.
    pub checkpoint_interval: Duration,
    /// How long a cached provider response is reused.
    pub cache_ttl: Duration,
    /// Whether provider responses are cached at all.
    pub cache: bool,
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
    ("ratelimit.lease_ttl_ms", "60000"),
    ("ratelimit.replication_interval_ms", "100"),
    ("ratelimit.handoff_window_ms", "10000"),
    ("ratelimit.pull_timeout_ms", "500"),
    ("evaluations.max_cases", "10000"),
    ("evaluations.checkpoint_every", "50"),
    ("evaluations.checkpoint_interval_ms", "500"),
    ("evaluations.cache", "true"),
    ("evaluations.cache_ttl_ms", "86400000"),
    ("log.format", "pretty"),
    ("log.level", "info,openraft=warn"),
];

/// Shortest accepted cluster secret.
pub const MIN_SECRET_LEN: usize = 16;

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

fn parse_positive(key: &str, v: &str) -> Result<u64, ConfigError> {
    let n = parse_u64(key, v)?;
    if n == 0 {
        return Err(ConfigError::new(key, "must be at least 1"));
    }
    Ok(n)
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
            },
            ratelimit: RateLimitConfig {
                lease_ttl: Duration::ZERO,
                replication_interval: Duration::ZERO,
                handoff_window: Duration::ZERO,
                pull_timeout: Duration::ZERO,
            },
            evaluations: EvaluationsConfig {
                max_cases: 0,
                checkpoint_every: 0,
                checkpoint_interval: Duration::ZERO,
                cache_ttl: Duration::ZERO,
                cache: true,
            },
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
            other => return Err(unknown_key(other)),
        }
        Ok(())
    }

    /// Applies a TOML document: every key must be known and of the right kind.
    pub fn apply_toml(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new(file, format!("not valid TOML: {}", e.message()))
        })?;
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
        if !self.cluster.secret.is_empty() && self.cluster.secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::new(
                "cluster.secret",
                format!("must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        Ok(())
    }
}

fn unknown_key(key: &str) -> ConfigError {
    let hint = KEYS
        .iter()
        .map(|(k, _)| *k)
        .min_by_key(|k| edit_distance(k, key))
        .filter(|k| edit_distance(k, key) <= 3)
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

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
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
}
