//! Multi-process test harness: starts the real `colony` binary on ephemeral ports, talks to
//! it over real HTTP, and kills every process it started when the test ends (even on panic).

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The admin token tests start nodes with (unless a test wants a generated one).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// How long a node may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The built binary under test.
pub fn colony_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_colony"))
}

/// A running node. Dropping it kills the process.
pub struct Node {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The node's data dir.
    pub data_dir: PathBuf,
    /// Everything the node logged so far (JSON lines).
    pub log: Arc<Mutex<Vec<String>>>,
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
}

impl Node {
    /// Starts a node on `data_dir` with default options and waits until it is ready.
    pub fn start(data_dir: &Path) -> Node {
        Self::start_with(data_dir, NodeOptions::default())
    }

    /// Starts a node and waits until it is ready.
    pub fn start_with(data_dir: &Path, opts: NodeOptions) -> Node {
        let mut cmd = Command::new(colony_bin());
        cmd.arg("node")
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--http",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                "info,openraft=warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for s in &opts.sets {
            cmd.args(["--set", s]);
        }
        // Keep the developer's COLONY_* variables out of the test.
        for (k, _) in std::env::vars() {
            if k.starts_with("COLONY_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        if !opts.no_admin_token {
            cmd.env("COLONY_ADMIN_TOKEN", ADMIN_TOKEN);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn colony");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("colony node ready"))
                    {
                        if let Some(url) = v["fields"]["http"].as_str() {
                            let _ = tx.send(url.to_string());
                        }
                    }
                }
                log2.lock().unwrap().push(line);
            }
        });
        let mut node = Node {
            child: Some(child),
            url: String::new(),
            data_dir: data_dir.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => {
                    node.url = url;
                    break;
                }
                Err(_) => {
                    if let Some(status) = node
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                    {
                        panic!(
                            "colony exited early with {status}; log:\n{}",
                            node.log_text()
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "colony did not become ready; log:\n{}",
                        node.log_text()
                    );
                }
            }
        }
        node.wait_ready();
        node
    }

    /// Polls `/readyz` until 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.get("/readyz", None).status == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node never became ready; log:\n{}", self.log_text());
    }

    /// All log lines so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = c.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("node did not exit within {within:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
        let mut req = ureq::request(method, &format!("{}{}", self.url, path))
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

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
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
    tempfile::Builder::new()
        .prefix("colony-test-")
        .tempdir()
        .expect("temp dir")
}

/// Runs the binary with `args` and `env` (no COLONY_* from the caller), expecting it to exit
/// by itself within `within`; returns (exit code, stderr).
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)], within: Duration) -> (Option<i32>, String) {
    let mut cmd = Command::new(colony_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("COLONY_") {
            cmd.env_remove(k);
        }
    }
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
