//! Multi-process test harness: starts the real `colony` binary on ephemeral ports, talks to
//! it over real HTTP, and kills every process it started when the test ends (even on panic).
//!
//! The process work is `colony-nodeproc`'s, shared with `benches/` and `chaos/`: each
//! [`Node`] wraps a [`colony_nodeproc::Node`] (spawn on port-0 listeners or in place on
//! given ones, the bound addresses read from the "colony node listening" log line, the log
//! captured, readiness wait, SIGTERM and a bounded wait for the exit, `kill -9`, and
//! `kill -9` on drop), and [`temp_dir`] is its `testsuite` feature's. What stays here is
//! test-only: the fixed [`ADMIN_TOKEN`] and [`CLUSTER_SECRET`], [`NodeOptions`], the
//! requests and their [`Resp`] (headers, raw bodies: `ureq` directly), [`run_to_exit`],
//! [`eventually`], and the test [`Cluster`] (whose restarts may come back with a new
//! identity on a wiped data dir, which `benches/` and `chaos/` refuse).

#![allow(dead_code)]

use colony_nodeproc::{Addrs, Client, Log, Spec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The admin token tests start nodes with (unless a test wants a generated one).
pub const ADMIN_TOKEN: &str = "3f9c2a7b8e1d4f6a0b5c9e2d7a1f3b8c6e4d2a9f7b1c5e3d8a6f2b4c9e1d7a3f";

/// How long a node may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The built binary under test.
pub fn colony_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_colony"))
}

/// The cluster secret test clusters share.
pub const CLUSTER_SECRET: &str = "9b1e7c3a5f2d8b4e6a0c9f1d3b7e5a2c8f4d6b0e9a3c7f1b5d2e8a4c6f0b9d3e";

/// A running node. Dropping it kills the process.
pub struct Node {
    /// The process (killed when dropped).
    process: colony_nodeproc::Node,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Bound HTTP address.
    pub http_addr: String,
    /// Bound gossip address.
    pub gossip_addr: String,
    /// Bound internal (Raft) address.
    pub raft_addr: String,
    /// Bound actor-transport (ractor_cluster) address.
    pub cluster_addr: String,
    /// The node's data dir.
    pub data_dir: PathBuf,
    /// Everything the node logged so far (JSON lines); a clone outlives the node.
    pub log: Log,
}

/// Options for starting a node.
#[derive(Clone, Default)]
pub struct NodeOptions {
    /// Extra `--set key=value` pairs.
    pub sets: Vec<String>,
    /// Environment variables; `COLONY_ADMIN_TOKEN` defaults to [`ADMIN_TOKEN`].
    pub env: Vec<(String, String)>,
    /// Do not set `COLONY_ADMIN_TOKEN` (the node generates one on a new cluster).
    pub no_admin_token: bool,
    /// Gossip addresses to join through (sets the cluster secret too).
    pub seeds: Vec<String>,
    /// Fixed addresses (http, gossip, raft, cluster) instead of port 0, e.g. to restart in
    /// place.
    pub addrs: Option<(String, String, String, String)>,
    /// Do not wait for `/readyz` (e.g. a node expected never to join).
    pub no_wait_ready: bool,
    /// `--certs-dir` (TLS on every listener); trust its `ca.crt` with
    /// `colony_nodeproc::http::trust_ca` so requests verify the node.
    pub certs_dir: Option<PathBuf>,
}

impl Node {
    /// Creates tenant `id` on the enterprise tier (10000/min, so tests of buckets and
    /// evaluations do not run into tier limits) and returns its API key.
    #[track_caller]
    pub fn create_tenant(&self, id: &str) -> String {
        let r = self.admin(
            "POST",
            "/v1/tenants",
            &serde_json::json!({"id": id, "name": id, "tier": "enterprise"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["api_key"].as_str().unwrap_or_default().to_string()
    }

    /// `GET /v1/evaluations/{id}` as the tenant with `key`; asserts 200.
    #[track_caller]
    pub fn evaluation(&self, key: &str, id: &str) -> Value {
        self.get(&format!("/v1/evaluations/{id}"), Some(key))
            .ok()
            .clone()
    }

    /// Polls the evaluation until it has one of `statuses` (at most `within`) and
    /// returns it; panics with the last state seen otherwise.
    #[track_caller]
    pub fn wait_evaluation(
        &self,
        key: &str,
        id: &str,
        statuses: &[&str],
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.evaluation(key, id);
            if statuses.iter().any(|s| v["status"] == *s) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "evaluation {id} never reached {statuses:?}; last: {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a node on `data_dir` with default options and waits until it is ready.
    pub fn start(data_dir: &Path) -> Node {
        Self::start_with(data_dir, NodeOptions::default())
    }

    /// Starts a node and waits until it is ready.
    pub fn start_with(data_dir: &Path, opts: NodeOptions) -> Node {
        let mut spec = Spec::new(colony_bin(), START_TIMEOUT, None, "test");
        spec.admin_token = ADMIN_TOKEN.to_string();
        spec.cluster_secret = CLUSTER_SECRET.to_string();
        // Every line kept: tests search the whole log (e.g. for a secret that must not be
        // there).
        spec.log_lines = usize::MAX;
        spec.sets.clone_from(&opts.sets);
        spec.certs_dir.clone_from(&opts.certs_dir);
        if opts.no_admin_token {
            spec.env_remove.push("COLONY_ADMIN_TOKEN".to_string());
        }
        // After Spec::new's COLONY_PROVIDERS_EGRESS_ALLOW (the tests' mock providers listen
        // on loopback): a test of the egress policy overrides it with its own value.
        spec.env.extend(opts.env.iter().cloned());
        let addrs = opts
            .addrs
            .as_ref()
            .map(|(http, gossip, raft, cluster)| Addrs {
                http: http.clone(),
                gossip: gossip.clone(),
                raft: raft.clone(),
                cluster: cluster.clone(),
            });
        let process =
            colony_nodeproc::Node::spawn(&spec, "node", data_dir, addrs.as_ref(), &opts.seeds)
                .unwrap_or_else(|e| panic!("{e}"));
        let a = process.addrs.clone();
        let mut node = Node {
            url: process.url(),
            http_addr: a.http,
            gossip_addr: a.gossip,
            raft_addr: a.raft,
            cluster_addr: a.cluster,
            data_dir: data_dir.to_path_buf(),
            log: process.log(),
            process,
        };
        if !opts.no_wait_ready {
            node.wait_ready();
        }
        node
    }

    /// The addresses this node is bound to, to restart it in place.
    pub fn addrs(&self) -> (String, String, String, String) {
        (
            self.http_addr.clone(),
            self.gossip_addr.clone(),
            self.raft_addr.clone(),
            self.cluster_addr.clone(),
        )
    }

    /// This node's Raft id (from `/v1/cluster`).
    pub fn id(&self) -> String {
        self.admin_get("/v1/cluster").ok()["node_id"]
            .as_str()
            .expect("node_id")
            .to_string()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Polls `/readyz` until 200; panics if the process exits or [`START_TIMEOUT`] passes.
    pub fn wait_ready(&mut self) {
        let client = Client::new(Duration::from_secs(15));
        if let Err(e) = self.process.wait_ready(&client, START_TIMEOUT) {
            panic!("node never became ready: {e}");
        }
    }

    /// All log lines so far.
    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid().expect("running")
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.process
            .terminate(within)
            .unwrap_or_else(|e| panic!("terminating the node: {e}"))
    }

    /// Waits (bounded) for the process to exit on its own and returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        self.process
            .wait_exit(within)
            .unwrap_or_else(|e| panic!("waiting for the node to exit: {e}"))
    }

    /// A request; never fails on HTTP error statuses.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let req = self.request(method, path, token);
        let res = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        Resp::from(res)
    }

    /// A request with a raw body and content type.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Resp {
        let mut req = self.request(method, path, token);
        if let Some(ct) = content_type {
            req = req.set("content-type", ct);
        }
        Resp::from(req.send_bytes(body))
    }

    /// A request builder with auth and a timeout.
    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> ureq::Request {
        let mut agent = ureq::AgentBuilder::new();
        if let Some(tls) = colony_nodeproc::http::tls_config() {
            agent = agent.tls_config(tls);
        }
        let mut req = agent
            .build()
            .request(method, &format!("{}{}", self.url, path))
            .timeout(Duration::from_secs(15));
        if let Some(t) = token {
            req = req.set("authorization", &format!("Bearer {t}"));
        }
        req
    }

    /// GET.
    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, token, None)
    }

    /// Admin GET.
    pub fn admin_get(&self, path: &str) -> Resp {
        self.get(path, Some(ADMIN_TOKEN))
    }

    /// Admin request with a JSON body.
    pub fn admin(&self, method: &str, path: &str, body: &Value) -> Resp {
        self.call(method, path, Some(ADMIN_TOKEN), Some(body))
    }
}

/// A response: status, headers we care about, and the body as JSON (or text).
#[derive(Debug)]
pub struct Resp {
    /// HTTP status (0 when the request failed at the transport level).
    pub status: u16,
    /// `content-type`.
    pub content_type: String,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// Other headers by lowercase name.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub text: String,
    /// Body as JSON (`Null` when not JSON).
    pub json: Value,
}

impl Resp {
    /// A header by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts this is a problem+json with `status`, and returns the problem.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "not problem+json: {self:?}"
        );
        assert_eq!(self.json["status"], status, "{}", self.text);
        assert!(
            self.json["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:colony:problem:")),
            "{}",
            self.text
        );
        assert!(
            self.json["title"].is_string() && self.json["detail"].is_string(),
            "{}",
            self.text
        );
        assert!(
            self.request_id.is_some(),
            "every response carries x-request-id"
        );
        &self.json
    }

    /// Asserts a 2xx status and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(
            (200..300).contains(&self.status),
            "expected 2xx, got {}: {}",
            self.status,
            self.text
        );
        &self.json
    }
}

impl From<Result<ureq::Response, ureq::Error>> for Resp {
    fn from(r: Result<ureq::Response, ureq::Error>) -> Self {
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => {
                return Resp {
                    status: 0,
                    content_type: String::new(),
                    request_id: None,
                    headers: vec![],
                    text: e.to_string(),
                    json: Value::Null,
                }
            }
        };
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                resp.header(&n)
                    .map(|v| (n.to_ascii_lowercase(), v.to_string()))
            })
            .collect();
        let status = resp.status();
        let content_type = resp.header("content-type").unwrap_or_default().to_string();
        let request_id = resp.header("x-request-id").map(str::to_string);
        let text = resp.into_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            content_type,
            request_id,
            headers,
            text,
            json,
        }
    }
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    colony_nodeproc::testsuite::temp_dir("colony-test-").expect("temp dir")
}

/// Runs the binary with `args` and `env` (no COLONY_* or RUST_LOG from the caller),
/// expecting it to exit by itself within `within`; returns (exit code, stderr).
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)], within: Duration) -> (Option<i32>, String) {
    let mut cmd = Command::new(colony_bin());
    colony_nodeproc::scrub_env(&mut cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn colony");
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                use std::io::Read;
                let _ = s.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("colony {args:?} did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `within`.
#[track_caller]
pub fn eventually<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A cluster of real node processes on loopback. Dropping it kills them all.
pub struct Cluster {
    /// Nodes by index; `None` while stopped.
    pub nodes: Vec<Option<Node>>,
    /// Their data dirs (kept across restarts).
    pub dirs: Vec<tempfile::TempDir>,
    /// Bound addresses of each node, for restarts in place.
    pub addrs: Vec<(String, String, String, String)>,
    /// Options every node starts with.
    pub base: NodeOptions,
}

impl Cluster {
    /// Starts `n` nodes: the first bootstraps, the others join through it. Waits until every
    /// node is ready and the first node sees `min(n, 3)` voters or more.
    pub fn start(n: usize, base: NodeOptions) -> Cluster {
        let mut c = Cluster {
            nodes: Vec::new(),
            dirs: Vec::new(),
            addrs: Vec::new(),
            base,
        };
        for i in 0..n {
            c.dirs.push(temp_dir());
            let mut opts = c.base.clone();
            if i > 0 {
                opts.seeds = vec![c.node(0).gossip_addr.clone()];
            }
            let node = Node::start_with(c.dirs[i].path(), opts);
            c.addrs.push(node.addrs());
            c.nodes.push(Some(node));
        }
        let want = n.min(3);
        eventually(Duration::from_secs(60), "voters formed", || {
            let v = c.node(0).admin_get("/v1/cluster");
            (v.json["raft"]["voters"].as_array().map_or(0, Vec::len) >= want).then_some(())
        });
        c
    }

    /// A running node.
    #[track_caller]
    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Indexes of running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    /// `kill -9` node `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut n) = self.nodes[i].take() {
            n.kill9();
        }
    }

    /// Creates tenant `id` on the enterprise tier (10000 requests/min, so tests that make
    /// many requests test their own buckets, not the tier's) and returns its API key.
    pub fn enterprise_tenant(&self, id: &str) -> String {
        let r = self.node(self.running()[0]).admin(
            "POST",
            "/v1/tenants",
            &serde_json::json!({"id": id, "name": id, "tier": "enterprise"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["api_key"]
            .as_str()
            .expect("api_key in the answer")
            .to_string()
    }

    /// Starts one more node that joins through the running ones; returns its index.
    pub fn add(&mut self) -> usize {
        let mut opts = self.base.clone();
        opts.seeds = self
            .running()
            .into_iter()
            .map(|j| self.addrs[j].1.clone())
            .collect();
        let dir = temp_dir();
        let node = Node::start_with(dir.path(), opts);
        self.dirs.push(dir);
        self.addrs.push(node.addrs());
        self.nodes.push(Some(node));
        self.nodes.len() - 1
    }

    /// Waits for node `i` to exit on its own (e.g. drained over the API).
    pub fn wait_exit(&mut self, i: usize, within: Duration) -> ExitStatus {
        let mut n = self.nodes[i].take().expect("node is running");
        n.wait_exit(within)
    }

    /// Sends SIGTERM to node `i` (a graceful drain) and waits for its exit status.
    pub fn terminate(&mut self, i: usize, within: Duration) -> ExitStatus {
        let mut n = self.nodes[i].take().expect("node is running");
        n.terminate(within)
    }

    /// Restarts node `i` on its old data dir and addresses, joining through a running node.
    pub fn restart(&mut self, i: usize) {
        let mut opts = self.base.clone();
        opts.addrs = Some(self.addrs[i].clone());
        opts.seeds = self
            .running()
            .into_iter()
            .filter(|j| *j != i)
            .map(|j| self.addrs[j].1.clone())
            .collect();
        let node = Node::start_with(self.dirs[i].path(), opts);
        self.nodes[i] = Some(node);
    }

    /// The index of the node the running nodes agree is the leader.
    pub fn leader(&self, within: Duration) -> usize {
        eventually(within, "a leader all running nodes agree on", || {
            let ids: Vec<(usize, Value)> = self
                .running()
                .into_iter()
                .map(|i| (i, self.node(i).admin_get("/v1/cluster").json))
                .collect();
            let leader = ids[0].1["raft"]["leader"].as_str()?.to_string();
            if !ids
                .iter()
                .all(|(_, v)| v["raft"]["leader"].as_str() == Some(leader.as_str()))
            {
                return None;
            }
            ids.iter()
                .find(|(_, v)| v["node_id"].as_str() == Some(leader.as_str()))
                .map(|(i, _)| *i)
        })
    }

    /// The audit chain head (hash, entries) of node `i`.
    pub fn audit_head(&self, i: usize) -> (String, u64) {
        let v = self.node(i).admin_get("/v1/audit/verify");
        let v = v.ok();
        assert_eq!(v["ok"], true, "{v}");
        (
            v["head_hash"].as_str().unwrap_or_default().to_string(),
            v["entries_checked"].as_u64().unwrap_or(0),
        )
    }

    /// Waits until every running node sees exactly `n` active members.
    pub fn wait_active(&self, n: usize) {
        for i in self.running() {
            eventually(Duration::from_secs(30), "members active", || {
                let v = self.node(i).admin_get("/v1/cluster");
                let active = v.json["members"]
                    .as_array()?
                    .iter()
                    .filter(|m| m["state"] == "active")
                    .count();
                (active == n).then_some(())
            });
        }
    }

    /// Waits until every running node can reach every bucket owner: a batch of peeks
    /// (hits 0, nothing charged) over many keys, sent with tenant key `api_key`, answers
    /// without errors on each node.
    pub fn wait_routable(&self, api_key: &str) {
        let peeks: Vec<Value> = (0..30)
            .map(|k| serde_json::json!({"name": "warmup", "key": format!("k{k}"), "hits": 0, "limit": 10, "duration_ms": 60_000}))
            .collect();
        let body = serde_json::json!({ "requests": peeks });
        for i in self.running() {
            eventually(Duration::from_secs(30), "every owner reachable", || {
                let r =
                    self.node(i)
                        .call("POST", "/v1/ratelimit/check", Some(api_key), Some(&body));
                (r.status == 200
                    && r.json["responses"]
                        .as_array()?
                        .iter()
                        .all(|x| x.get("error").is_none()))
                .then_some(())
            });
        }
    }

    /// Waits until every running node has the same audit head and tenant list.
    pub fn wait_converged(&self, within: Duration) -> (String, u64) {
        eventually(
            within,
            "all running nodes converge on the same state",
            || {
                let heads: Vec<_> = self
                    .running()
                    .into_iter()
                    .map(|i| self.audit_head(i))
                    .collect();
                let tenants: Vec<_> = self
                    .running()
                    .into_iter()
                    .map(|i| self.node(i).admin_get("/v1/tenants").json.to_string())
                    .collect();
                (heads.windows(2).all(|w| w[0] == w[1]) && tenants.windows(2).all(|w| w[0] == w[1]))
                    .then(|| heads[0].clone())
            },
        )
    }
}
