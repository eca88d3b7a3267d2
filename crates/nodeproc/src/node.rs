//! One real `colony` node process: port-0 listeners whose bound addresses are read from
//! the node's JSON log ("colony node listening"), restarts in place on given addresses,
//! its log lines kept in memory (the last [`Spec::log_lines`], for error messages and
//! checks) and optionally appended to a file, signals, a bounded wait for its exit, and
//! `kill -9` when dropped, also on error or panic.

use crate::http::Client;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Log lines [`Spec::new`] keeps per node, shown when something goes wrong.
const LOG_TAIL: usize = 200;

/// What every node is started with.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The `colony` binary.
    pub bin: PathBuf,
    /// `COLONY_ADMIN_TOKEN` (the bootstrapping node stores its hash; every node accepts it).
    pub admin_token: String,
    /// `COLONY_CLUSTER_SECRET`.
    pub cluster_secret: String,
    /// Bound on every wait (start, readiness, convergence).
    pub wait: Duration,
    /// Where to append each node's log (`<label>.log`), if anywhere.
    pub log_dir: Option<PathBuf>,
    /// Config overrides passed to every node as `--set KEY=VALUE` (empty: the defaults).
    pub sets: Vec<String>,
    /// A command the binary is run under (e.g. `ip netns exec NS`); empty: none. It must
    /// exec the binary, so the child's pid is the node's.
    pub wrap: Vec<String>,
    /// Environment variables set for every node besides the two secrets, in order (a
    /// later value for the same name wins, also over the secrets). [`Spec::new`] allows
    /// egress to loopback (`COLONY_PROVIDERS_EGRESS_ALLOW`), where the mock providers of
    /// tests, benches and chaos runs listen.
    pub env: Vec<(String, String)>,
    /// Variables removed after the two secrets are set and before [`Spec::env`] (e.g.
    /// `COLONY_ADMIN_TOKEN`: a node bootstrapping a new cluster then generates its own).
    pub env_remove: Vec<String>,
    /// How many of its last log lines each node keeps in memory ([`Node::log`]);
    /// `usize::MAX` keeps all. [`Spec::new`]: 200.
    pub log_lines: usize,
    /// `--certs-dir` of every node (TLS on every listener), if any; see
    /// [`Spec::with_tls`].
    pub certs_dir: Option<PathBuf>,
}

impl Spec {
    /// A spec with a fresh admin token and cluster secret, named after `label` (e.g.
    /// `bench`) so a stray process can be told apart.
    pub fn new(bin: PathBuf, wait: Duration, log_dir: Option<PathBuf>, label: &str) -> Spec {
        // Nodes refuse secrets of under 128 bits: 256 random bits each.
        let random = || hex::encode(rand::random::<[u8; 32]>());
        Spec {
            bin,
            admin_token: format!("{label}-admin-{}", random()),
            cluster_secret: format!("{label}-secret-{}", random()),
            wait,
            log_dir,
            sets: Vec::new(),
            wrap: Vec::new(),
            env: vec![(
                "COLONY_PROVIDERS_EGRESS_ALLOW".to_string(),
                "127.0.0.0/8".to_string(),
            )],
            env_remove: Vec::new(),
            log_lines: LOG_TAIL,
            certs_dir: None,
        }
    }

    /// Turns TLS on for every node: creates a CA and one node certificate for `hosts`
    /// (e.g. 127.0.0.1 and localhost: loopback nodes share it) in `dir` with the binary's
    /// `colony certs`, and trusts the CA in every [`crate::Client`] made from now on.
    pub fn with_tls(mut self, dir: &Path, hosts: &[String]) -> Result<Spec, String> {
        let certs = dir.join("certs");
        let key = dir.join("ca.key");
        let run = |args: &[&str]| -> Result<(), String> {
            let out = Command::new(&self.bin)
                .arg("certs")
                .args(args)
                .arg("--certs-dir")
                .arg(&certs)
                .arg("--ca-key")
                .arg(&key)
                .arg("--overwrite")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running colony certs: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "colony certs {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        run(&["create-ca"])?;
        let mut node = vec!["create-node"];
        node.extend(hosts.iter().map(String::as_str));
        run(&node)?;
        let ca = std::fs::read(certs.join("ca.crt")).map_err(|e| format!("reading ca.crt: {e}"))?;
        crate::http::trust_ca(&ca)?;
        self.certs_dir = Some(certs);
        Ok(self)
    }
}

/// Removes the caller's `COLONY_*` and `RUST_LOG` variables from `cmd`, so the process
/// gets only the settings it is given.
pub fn scrub_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_str()
            .is_some_and(|k| k.starts_with("COLONY_") || k == "RUST_LOG")
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The addresses a node is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addrs {
    /// HTTP, `127.0.0.1:P`.
    pub http: String,
    /// Gossip (UDP).
    pub gossip: String,
    /// Internal Raft listener.
    pub raft: String,
    /// Actor transport (ractor_cluster) listener.
    pub cluster: String,
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The binary could not be run.
    #[error("starting {bin}: {source}")]
    Start {
        /// The binary.
        bin: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The log file could not be opened.
    #[error("opening {path}: {source}")]
    LogFile {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The process ended before it was listening.
    #[error("colony exited early with {status}; last log lines:\n{tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its last log lines.
        tail: String,
    },
    /// The process did not report its addresses in time.
    #[error("colony did not log its listening addresses within {wait:?}; last log lines:\n{tail}")]
    NotListening {
        /// How long was waited.
        wait: Duration,
        /// Its last log lines.
        tail: String,
    },
}

/// Why a node did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// The process ended.
    #[error("exited with {status}; last log lines:\n{tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its last log lines.
        tail: String,
    },
    /// `/readyz` did not answer 200 in time.
    #[error("not ready within {wait:?} (last /readyz: {last}); last log lines:\n{tail}")]
    Timeout {
        /// How long was waited.
        wait: Duration,
        /// The last answer or transport error.
        last: String,
        /// Its last log lines.
        tail: String,
    },
}

/// Why [`Node::wait_exit`] or [`Node::terminate`] has no exit status.
#[derive(Debug, thiserror::Error)]
pub enum NoExit {
    /// The process was not running (already killed or reaped).
    #[error("the process is not running")]
    NotRunning,
    /// It did not exit within the bound, and was killed (`kill -9`).
    #[error("the process did not exit within {0:?}; killed")]
    Killed(Duration),
    /// The signal could not be sent; the process was left as it was.
    #[error("signalling the process: {0}")]
    Signal(std::io::Error),
    /// Waiting for it failed; it was killed.
    #[error("waiting for the process: {0}; killed")]
    Wait(std::io::Error),
}

/// A node's log lines (its JSON log on stderr) as they arrive, shared with the thread that
/// reads them: a clone stays readable after the node is gone.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<VecDeque<String>>>);

impl Log {
    /// The kept lines, joined with newlines.
    pub fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Appends `line`, dropping the oldest lines beyond `keep`.
    fn push(&self, line: String, keep: usize) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.push_back(line);
        while lines.len() > keep {
            lines.pop_front();
        }
    }
}

/// A running node process. Dropping it kills the process.
#[derive(Debug)]
pub struct Node {
    child: Option<Child>,
    /// Bound addresses.
    pub addrs: Addrs,
    /// `https` when the node serves TLS, else `http` (from its listening line).
    pub scheme: &'static str,
    /// The node id it logged at start.
    pub id: String,
    log: Log,
}

impl Node {
    /// The API's base URL (`https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addrs.http)
    }

    /// Starts a node and waits (bounded by `spec.wait`) until it logs its bound addresses.
    /// `addrs` fixes the listeners (a restart in place); `None` uses port 0. `label` names
    /// its log file.
    pub fn spawn(
        spec: &Spec,
        label: &str,
        data_dir: &Path,
        addrs: Option<&Addrs>,
        seeds: &[String],
    ) -> Result<Node, SpawnError> {
        let (http, gossip, raft, cluster) = match addrs {
            Some(a) => (
                a.http.as_str(),
                a.gossip.as_str(),
                a.raft.as_str(),
                a.cluster.as_str(),
            ),
            None => ("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"),
        };
        let mut cmd = match spec.wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&spec.bin);
                c
            }
            None => Command::new(&spec.bin),
        };
        // Only the spec's settings: keep the caller's COLONY_* variables out.
        scrub_env(&mut cmd);
        cmd.arg("node")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", http, "--gossip", gossip, "--raft", raft])
            .args(["--cluster", cluster])
            .args(["--log-format", "json", "--log-level", "info,openraft=warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for seed in seeds {
            cmd.args(["--seed", seed]);
        }
        for kv in &spec.sets {
            cmd.args(["--set", kv]);
        }
        if let Some(dir) = &spec.certs_dir {
            cmd.arg("--certs-dir").arg(dir);
        }
        cmd.env("COLONY_ADMIN_TOKEN", &spec.admin_token)
            .env("COLONY_CLUSTER_SECRET", &spec.cluster_secret);
        for k in &spec.env_remove {
            cmd.env_remove(k);
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        let mut file = match &spec.log_dir {
            Some(dir) => {
                let path = dir.join(format!("{label}.log"));
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| SpawnError::LogFile {
                        path: path.display().to_string(),
                        source,
                    })?;
                Some(std::io::BufWriter::new(f))
            }
            None => None,
        };
        let mut child = cmd.spawn().map_err(|source| SpawnError::Start {
            bin: spec.bin.display().to_string(),
            source,
        })?;
        let stderr = child.stderr.take();
        let log = Log::default();
        let keep = spec.log_lines;
        let mut node = Node {
            child: Some(child),
            addrs: Addrs {
                http: String::new(),
                gossip: String::new(),
                raft: String::new(),
                cluster: String::new(),
            },
            scheme: "http",
            id: String::new(),
            log: log.clone(),
        };
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = stderr {
            // Drains stderr for the whole life of the process (a full pipe would block the
            // node) and reports the "listening" line.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(found) = parse_listening(&line) {
                        let _ = tx.send(found);
                    }
                    if let Some(f) = file.as_mut() {
                        // Best effort: a full disk must not stop the node.
                        let _ = writeln!(f, "{line}").and_then(|()| f.flush());
                    }
                    log.push(line, keep);
                }
            });
        }
        let deadline = Instant::now() + spec.wait;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok((addrs, id, scheme)) => {
                    node.addrs = addrs;
                    node.id = id;
                    node.scheme = scheme;
                    return Ok(node);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    if let Some(status) = node.exit_status() {
                        return Err(SpawnError::Exited {
                            status,
                            tail: node.log_tail(),
                        });
                    }
                    if Instant::now() > deadline {
                        return Err(SpawnError::NotListening {
                            wait: spec.wait,
                            tail: node.log_tail(),
                        });
                    }
                }
            }
        }
    }

    /// The OS process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, if the process has exited (and was not reaped yet).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Whether the process runs (a stopped process counts as running).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends signal `name` (`TERM`, `STOP`, `CONT`, ...) with kill(1).
    pub fn signal(&self, name: &str) -> std::io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| std::io::Error::other("the process is not running"))?;
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| std::io::Error::new(e.kind(), format!("running kill(1): {e}")))?;
        if !status.success() {
            return Err(std::io::Error::other(format!(
                "kill -{name} {pid} failed with {status}"
            )));
        }
        Ok(())
    }

    /// Waits up to `within` (polling every 20 ms) for the process to exit by itself, and
    /// reaps it; if it still runs then, kills it (`kill -9`) and says so.
    pub fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus, NoExit> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut().ok_or(NoExit::NotRunning)?;
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Ok(status);
                }
                Ok(None) if Instant::now() <= deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    self.kill9();
                    return Err(NoExit::Killed(within));
                }
                Err(e) => {
                    self.kill9();
                    return Err(NoExit::Wait(e));
                }
            }
        }
    }

    /// SIGTERM (a graceful drain), then [`Node::wait_exit`].
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus, NoExit> {
        if self.child.is_none() {
            return Err(NoExit::NotRunning);
        }
        self.signal("TERM").map_err(NoExit::Signal)?;
        self.wait_exit(within)
    }

    /// `kill -9` and reap; returns the instant right after the signal was sent.
    pub fn kill9(&mut self) -> Instant {
        let mut at = Instant::now();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            at = Instant::now();
            let _ = c.wait();
        }
        at
    }

    /// Polls `/readyz` every 50 ms until it answers 200, the process exits, or `wait`
    /// passes.
    pub fn wait_ready(&mut self, client: &Client, wait: Duration) -> Result<(), NotReady> {
        let deadline = Instant::now() + wait;
        let url = format!("{}/readyz", self.url());
        loop {
            let last = match client.get(&url, None) {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => format!("{} {}", r.status, r.text),
                Err(e) => e.to_string(),
            };
            if let Some(status) = self.exit_status() {
                return Err(NotReady::Exited {
                    status,
                    tail: self.log_tail(),
                });
            }
            if Instant::now() > deadline {
                return Err(NotReady::Timeout {
                    wait,
                    last,
                    tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last log lines (the kept ones, see [`Spec::log_lines`]), joined with newlines.
    pub fn log_tail(&self) -> String {
        self.log.text()
    }

    /// A handle on the kept log lines, readable after the node is gone.
    pub fn log(&self) -> Log {
        self.log.clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped (SIGSTOP) process.
        self.kill9();
    }
}

/// Parses the node's "colony node listening" JSON log line into its addresses and id.
fn parse_listening(line: &str) -> Option<(Addrs, String, &'static str)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let f = &v["fields"];
    if !f["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("colony node listening"))
    {
        return None;
    }
    let text = |k: &str| f[k].as_str().map(str::to_string);
    let id = match &f["node_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let http = text("http")?;
    let scheme = if http.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    Some((
        Addrs {
            http: http
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .to_string(),
            gossip: text("gossip")?,
            raft: text("raft")?,
            cluster: text("cluster").unwrap_or_default(),
        },
        id,
        scheme,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_addresses_and_id() {
        let line = r#"{"fields":{"message":"colony node listening; /readyz turns 200","http":"http://127.0.0.1:8080","gossip":"127.0.0.1:7946","raft":"127.0.0.1:7948","cluster":"127.0.0.1:7947","node_id":42}}"#;
        let (a, id, scheme) = parse_listening(line).unwrap_or_else(|| panic!("not parsed"));
        assert_eq!((a.http.as_str(), scheme), ("127.0.0.1:8080", "http"));
        let tls = line.replace("http://", "https://");
        let (a, _, scheme) = parse_listening(&tls).unwrap_or_else(|| panic!("not parsed"));
        assert_eq!((a.http.as_str(), scheme), ("127.0.0.1:8080", "https"));
        assert_eq!(
            (a.gossip.as_str(), a.cluster.as_str(), id.as_str()),
            ("127.0.0.1:7946", "127.0.0.1:7947", "42")
        );
        assert!(parse_listening(r#"{"fields":{"message":"other"}}"#).is_none());
        assert!(parse_listening("not json").is_none());
    }
}
