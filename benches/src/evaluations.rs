//! `colony-bench evaluations`: cluster-wide evaluation throughput (cases per second) on N
//! real nodes with the builtin `mock` provider, and the cost of checkpointing results
//! through Raft, measured by running the same workload at several
//! `evaluations.checkpoint_every` values side by side.
//!
//! For each checkpoint setting a fresh cluster is started with `--set
//! evaluations.cache=false --set evaluations.checkpoint_every=K` (and, for the `end`
//! setting, a checkpoint interval so long that the only checkpoint is the last one). Each
//! round creates an enterprise-tier tenant, submits all evaluations at once (evaluation
//! *i* through node *i* mod N; the owner is chosen by rendezvous hashing of the id), and
//! polls `GET /v1/evaluations` until every one is `completed`.

use crate::cluster::{Cluster, Spec};
use crate::stats::{round1, Summary};
use anyhow::{anyhow, bail, Context, Result};
use colony_nodeproc::{Client, Reply, TransportError};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Checkpoint interval of the `end` setting: longer than any run, so results are
/// checkpointed once, when the last case of an evaluation finishes.
const END_INTERVAL_MS: u64 = 3_600_000;

/// Most attempts at one submission (503s are retried).
const SUBMIT_TRIES: u32 = 40;

/// `colony-bench evaluations`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `colony` binary (release build).
    #[arg(long)]
    pub colony: PathBuf,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Cases per evaluation.
    #[arg(long, default_value_t = 2000)]
    pub cases: usize,
    /// Evaluations submitted at once (spread over the nodes).
    #[arg(long, default_value_t = 6)]
    pub evaluations: usize,
    /// `concurrency` of each evaluation (provider calls in flight; the spec allows 64).
    #[arg(long, default_value_t = 64)]
    pub concurrency: u32,
    /// Latency of the mock provider (`params.latency_ms`).
    #[arg(long, default_value_t = 5)]
    pub latency_ms: u64,
    /// The `evaluations.checkpoint_every` values to compare; `end` means one checkpoint at
    /// the end of each evaluation (`checkpoint_every` = cases, interval 1 h).
    #[arg(long, value_delimiter = ',', default_value = "10,50,500,end")]
    pub checkpoint_every: Vec<String>,
    /// Rounds per setting, on the same cluster (a new tenant each round).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// How often the evaluations are polled.
    #[arg(long, default_value_t = 50)]
    pub poll_ms: u64,
    /// Write raw results here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Append each node's log to DIR/node-<i>.log.
    #[arg(long)]
    pub keep_logs: Option<PathBuf>,
    /// Bound on every wait for the cluster (start, readiness, the tenant's key).
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Bound on one round (submission to the last completion).
    #[arg(long, default_value_t = 600)]
    pub round_timeout_secs: u64,
}

/// One checkpoint setting.
#[derive(Debug, Clone)]
struct Setting {
    label: String,
    every: usize,
    interval_ms: Option<u64>,
}

impl Setting {
    fn parse(s: &str, cases: usize) -> Result<Setting> {
        if s == "end" {
            return Ok(Setting {
                label: "end".into(),
                every: cases.max(1),
                interval_ms: Some(END_INTERVAL_MS),
            });
        }
        let every: usize = s.parse().ok().filter(|k| *k > 0).ok_or_else(|| {
            anyhow!("--checkpoint-every: {s:?} is neither a positive integer nor `end`")
        })?;
        Ok(Setting {
            label: every.to_string(),
            every,
            interval_ms: None,
        })
    }

    fn sets(&self) -> Vec<String> {
        let mut v = vec![
            "evaluations.cache=false".to_string(),
            format!("evaluations.checkpoint_every={}", self.every),
        ];
        if let Some(ms) = self.interval_ms {
            v.push(format!("evaluations.checkpoint_interval_ms={ms}"));
        }
        v
    }

    fn interval_label(&self) -> String {
        match self.interval_ms {
            Some(ms) => format!("{ms} ms"),
            None => "500 ms (default)".into(),
        }
    }
}

/// One evaluation of a round.
#[derive(Debug, Clone)]
struct EvalOutcome {
    id: String,
    /// Submission attempts (more than 1: answered 503 and retried).
    tries: u32,
    via: usize,
    owner: Option<usize>,
    total: u64,
    done: u64,
    failed: u64,
    cached: u64,
    /// From the round's start to the 202 of the submission.
    accepted_ms: f64,
    /// From the round's start to the first poll that saw it `completed`.
    completed_ms: f64,
    /// `finished_at_ms - created_at_ms` as the nodes recorded them.
    server_ms: Option<f64>,
    created_at_ms: Option<u64>,
    finished_at_ms: Option<u64>,
}

impl EvalOutcome {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "submit_tries": self.tries,
            "submitted_via_node": self.via + 1,
            "owner_node": self.owner.map(|o| o + 1),
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cached": self.cached,
            "accepted_ms": round1(self.accepted_ms),
            "completed_ms": round1(self.completed_ms),
            "server_ms": self.server_ms.map(round1),
            "created_at_ms": self.created_at_ms,
            "finished_at_ms": self.finished_at_ms,
        })
    }
}

/// One round: all evaluations submitted at once until the last one completed.
#[derive(Debug, Clone)]
struct Round {
    evals: Vec<EvalOutcome>,
    cases: u64,
    wall_ms: f64,
    /// From the first `created_at_ms` to the last `finished_at_ms` (node clocks, ms).
    server_wall_ms: Option<f64>,
    polls: u64,
    /// Raft checkpoint writes during the round, summed over the nodes.
    checkpoints: Option<u64>,
    /// CPU seconds the node processes used during the round.
    node_cpu_s: Option<f64>,
}

impl Round {
    fn rate(&self) -> f64 {
        self.cases as f64 / (self.wall_ms / 1000.0)
    }

    fn server_rate(&self) -> Option<f64> {
        self.server_wall_ms
            .filter(|ms| *ms > 0.0)
            .map(|ms| self.cases as f64 / (ms / 1000.0))
    }

    fn to_json(&self) -> Value {
        json!({
            "cases": self.cases,
            "wall_ms": round1(self.wall_ms),
            "cases_per_s": round1(self.rate()),
            "server_wall_ms": self.server_wall_ms.map(round1),
            "server_cases_per_s": self.server_rate().map(round1),
            "polls": self.polls,
            "checkpoints": self.checkpoints,
            "node_cpu_s": self.node_cpu_s.map(|s| (s * 100.0).round() / 100.0),
            "node_cores_busy": self.node_cpu_s.map(|s| (s / (self.wall_ms / 1000.0) * 100.0).round() / 100.0),
            "evaluations": self.evals.iter().map(EvalOutcome::to_json).collect::<Vec<_>>(),
        })
    }
}

/// The spec of evaluation `e` of round `tag`: every prompt is distinct across
/// evaluations, rounds and settings, so nothing could be a cache hit even with the cache on.
fn spec_body(args: &Args, tag: &str, e: usize) -> Value {
    let cases: Vec<Value> = (0..args.cases)
        .map(|i| {
            let a = (i * 7 + e * 13) % 1000;
            let b = (i * 11 + 3) % 1000;
            json!({
                "vars": {"tag": tag, "e": e, "i": i, "a": a, "b": b},
                "reference": (a + b).to_string(),
            })
        })
        .collect();
    json!({
        "providers": [{
            "id": "mock",
            "kind": "builtin",
            "model": "mock",
            "params": {"latency_ms": args.latency_ms},
        }],
        "prompt": "[{{tag}} e{{e}} #{{i}}] What is {{a}} + {{b}}?",
        "cases": cases,
        "scorers": [{"type": "exact_match"}, {"type": "contains"}],
        "concurrency": args.concurrency,
    })
}

/// Creates an enterprise-tier tenant and waits until every node accepts its key.
fn create_tenant(cluster: &Cluster, client: &Client, id: &str) -> Result<String> {
    let r = client
        .call(
            "POST",
            &format!("{}/v1/tenants", cluster.url(0)),
            Some(cluster.admin_token()),
            Some(&json!({"id": id, "name": id, "tier": "enterprise"})),
        )
        .map_err(|e| anyhow!("POST /v1/tenants: {e}"))?;
    if !r.is_success() {
        bail!("POST /v1/tenants: {} {}", r.status, r.text);
    }
    let key = r.json()["api_key"]
        .as_str()
        .ok_or_else(|| anyhow!("POST /v1/tenants answered without api_key: {}", r.text))?
        .to_string();
    let deadline = Instant::now() + cluster.wait_bound();
    for i in 0..cluster.len() {
        let url = format!("{}/v1/evaluations", cluster.url(i));
        loop {
            let last = match client.get(&url, Some(&key)) {
                Ok(r) if r.status == 200 => break,
                Ok(r) => format!("{} {}", r.status, r.text),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!("node {} does not accept the tenant's key: {last}", i + 1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(key)
}

/// `colony_evaluation_events_total{event="checkpoints"}` of every node, summed.
fn checkpoints(cluster: &Cluster, client: &Client) -> Option<u64> {
    let mut sum = 0;
    for i in 0..cluster.len() {
        let r = client
            .get(
                &format!("{}/metrics", cluster.url(i)),
                Some(cluster.admin_token()),
            )
            .ok()?;
        sum += r
            .text
            .lines()
            .filter(|l| {
                l.starts_with("colony_evaluation_events_total{") && l.contains("\"checkpoints\"")
            })
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
    }
    Some(sum)
}

/// utime + stime of `pid` in seconds (clock ticks of 100 Hz, Linux's `USER_HZ`).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn nodes_cpu(cluster: &Cluster) -> Option<f64> {
    (0..cluster.len())
        .map(|i| cluster.pid(i).and_then(cpu_secs))
        .sum()
}

/// Runs one round on `cluster`.
fn round(args: &Args, cluster: &Cluster, tag: &str) -> Result<Round> {
    let client = Client::new(Duration::from_secs(10));
    let key = create_tenant(cluster, &client, tag)?;
    let bodies: Vec<Value> = (0..args.evaluations)
        .map(|e| spec_body(args, tag, e))
        .collect();
    let ckpt_before = checkpoints(cluster, &client);
    let cpu_before = nodes_cpu(cluster);
    let barrier = Arc::new(Barrier::new(args.evaluations + 1));
    let mut handles = Vec::new();
    for (e, body) in bodies.into_iter().enumerate() {
        let via = e % cluster.len();
        let url = format!("{}/v1/evaluations", cluster.url(via));
        let (client, key, barrier) = (client.clone(), key.clone(), barrier.clone());
        handles.push(std::thread::spawn(
            move || -> (Result<Reply, TransportError>, Instant, u32) {
                barrier.wait();
                // A 503 (the tier-limit check could not be answered) is retried after
                // 250 ms; the tries are reported, and the wait counts in the wall time.
                let mut tries = 0;
                loop {
                    tries += 1;
                    let r = client.call("POST", &url, Some(&key), Some(&body));
                    let retry = matches!(&r, Ok(reply) if reply.status == 503);
                    if !retry || tries >= SUBMIT_TRIES {
                        return (r, Instant::now(), tries);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            },
        ));
    }
    let t0 = Instant::now();
    barrier.wait();
    let mut evals = Vec::new();
    for (e, h) in handles.into_iter().enumerate() {
        let (r, at, tries) = h
            .join()
            .map_err(|_| anyhow!("a submission thread panicked"))?;
        let r = r.map_err(|err| anyhow!("POST /v1/evaluations (evaluation {e}): {err}"))?;
        if r.status != 202 {
            bail!(
                "POST /v1/evaluations (evaluation {e}): {} {}",
                r.status,
                r.text
            );
        }
        let id = r.json()["id"]
            .as_str()
            .ok_or_else(|| anyhow!("POST /v1/evaluations answered without id: {}", r.text))?
            .to_string();
        evals.push(EvalOutcome {
            id,
            tries,
            via: e % cluster.len(),
            owner: None,
            total: args.cases as u64,
            done: 0,
            failed: 0,
            cached: 0,
            accepted_ms: at.duration_since(t0).as_secs_f64() * 1000.0,
            completed_ms: f64::NAN,
            server_ms: None,
            created_at_ms: None,
            finished_at_ms: None,
        });
    }
    let deadline = t0 + Duration::from_secs(args.round_timeout_secs);
    let mut polls = 0u64;
    let mut last_err = String::new();
    let poll_client = Client::new(Duration::from_secs(2));
    loop {
        let node = (polls as usize) % cluster.len();
        polls += 1;
        match poll_client.get(&format!("{}/v1/evaluations", cluster.url(node)), Some(&key)) {
            Ok(r) if r.status == 200 => {
                let seen_at = t0.elapsed().as_secs_f64() * 1000.0;
                let list = r.json();
                let items = list["evaluations"].as_array().cloned().unwrap_or_default();
                for ev in &mut evals {
                    let Some(v) = items.iter().find(|v| v["id"].as_str() == Some(&ev.id)) else {
                        continue;
                    };
                    ev.owner = v["owner"]
                        .as_str()
                        .and_then(|o| cluster.ids().iter().position(|id| id == o));
                    ev.done = v["progress"]["done"].as_u64().unwrap_or(0);
                    ev.failed = v["progress"]["failed"].as_u64().unwrap_or(0);
                    ev.cached = v["progress"]["cached"].as_u64().unwrap_or(0);
                    let status = v["status"].as_str().unwrap_or("?");
                    match status {
                        "queued" | "running" => {}
                        "completed" => {
                            if ev.completed_ms.is_nan() {
                                ev.completed_ms = seen_at;
                                ev.created_at_ms = v["created_at_ms"].as_u64();
                                ev.finished_at_ms = v["finished_at_ms"].as_u64();
                                ev.server_ms = ev
                                    .created_at_ms
                                    .zip(ev.finished_at_ms)
                                    .map(|(c, f)| f.saturating_sub(c) as f64);
                            }
                        }
                        other => bail!(
                            "evaluation {} ended {other} (error {}), not completed",
                            ev.id,
                            v["error"]
                        ),
                    }
                }
            }
            Ok(r) => last_err = format!("node {}: {} {}", node + 1, r.status, r.text),
            Err(e) => last_err = format!("node {}: {e}", node + 1),
        }
        if evals.iter().all(|e| !e.completed_ms.is_nan()) {
            break;
        }
        if Instant::now() > deadline {
            let progress: Vec<String> = evals
                .iter()
                .map(|e| format!("{} {}/{}", e.id, e.done, e.total))
                .collect();
            bail!(
                "not every evaluation completed within {} s: {}; last poll error: {last_err}",
                args.round_timeout_secs,
                progress.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(args.poll_ms));
    }
    let wall_ms = evals.iter().map(|e| e.completed_ms).fold(0.0, f64::max);
    let cpu_after = nodes_cpu(cluster);
    let ckpt_after = checkpoints(cluster, &client);
    let first_created = evals.iter().filter_map(|e| e.created_at_ms).min();
    let last_finished = evals.iter().filter_map(|e| e.finished_at_ms).max();
    Ok(Round {
        cases: evals.iter().map(|e| e.total).sum(),
        server_wall_ms: first_created
            .zip(last_finished)
            .map(|(c, f)| f.saturating_sub(c) as f64),
        wall_ms,
        polls,
        checkpoints: ckpt_before
            .zip(ckpt_after)
            .map(|(b, a)| a.saturating_sub(b)),
        node_cpu_s: cpu_before.zip(cpu_after).map(|(b, a)| a - b),
        evals,
    })
}

/// The results of one setting.
#[derive(Debug)]
struct SettingResult {
    setting: Setting,
    rounds: Vec<Round>,
}

impl SettingResult {
    /// Cases/s of the median round.
    fn rate(&self) -> f64 {
        median_round(&self.rounds).rate()
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn print_round(setting: &Setting, idx: usize, r: &Round) {
    println!(
        "\n**checkpoint_every = {}, round {}**: {} cases in {:.0} ms = **{:.0} cases/s** \
         (node clocks: {}), {} checkpoints, node CPU {}",
        setting.label,
        idx + 1,
        r.cases,
        r.wall_ms,
        r.rate(),
        r.server_rate()
            .map_or_else(|| "-".into(), |v| format!("{v:.0} cases/s")),
        opt(r.checkpoints),
        r.node_cpu_s.map_or_else(
            || "-".into(),
            |s| format!("{s:.1} s ({:.2} cores)", s / (r.wall_ms / 1000.0))
        ),
    );
    println!();
    println!("| evaluation | submitted via | submit tries | owner | cases | failed | cached | accepted | completed (seen) | created → finished (node clocks) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for e in &r.evals {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} ms | {:.0} ms | {} |",
            e.id,
            e.via + 1,
            e.tries,
            opt(e.owner.map(|o| o + 1)),
            e.done,
            e.failed,
            e.cached,
            e.accepted_ms,
            e.completed_ms,
            e.server_ms
                .map_or_else(|| "-".into(), |v| format!("{v:.0} ms")),
        );
    }
}

/// `colony-bench evaluations`.
pub fn run(args: &Args) -> Result<()> {
    if args.nodes == 0 || args.evaluations == 0 || args.cases == 0 || args.rounds == 0 {
        bail!("--nodes, --evaluations, --cases and --rounds must be at least 1");
    }
    let settings: Vec<Setting> = args
        .checkpoint_every
        .iter()
        .map(|s| Setting::parse(s.trim(), args.cases))
        .collect::<Result<_>>()?;
    let command: String = std::env::args().collect::<Vec<_>>().join(" ");
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    if let Some(dir) = &args.keep_logs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let wait = Duration::from_secs(args.timeout_secs);
    let mut results: Vec<SettingResult> = Vec::new();
    for (si, setting) in settings.iter().enumerate() {
        let mut spec = Spec::new(args.colony.clone(), wait, args.keep_logs.clone(), "bench");
        spec.sets = setting.sets();
        eprintln!(
            "starting {} nodes with {}",
            args.nodes,
            spec.sets
                .iter()
                .map(|s| format!("--set {s}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let cluster = Cluster::start(spec, args.nodes)
            .with_context(|| format!("starting {} colony node(s)", args.nodes))?;
        let mut rounds = Vec::new();
        for ri in 0..args.rounds {
            let tag = format!("b{nonce}s{si}r{ri}");
            let r = round(args, &cluster, &tag).with_context(|| {
                format!("checkpoint_every = {}, round {}", setting.label, ri + 1)
            })?;
            eprintln!(
                "checkpoint_every = {}, round {}: {} cases in {:.0} ms = {:.0} cases/s",
                setting.label,
                ri + 1,
                r.cases,
                r.wall_ms,
                r.rate()
            );
            rounds.push(r);
        }
        drop(cluster);
        results.push(SettingResult {
            setting: setting.clone(),
            rounds,
        });
    }

    let baseline = results
        .iter()
        .find(|r| r.setting.label == "end")
        .map(SettingResult::rate);
    println!("## colony-bench evaluations\n");
    println!("```\n{command}\n```\n");
    println!(
        "{} nodes, {} evaluations x {} cases submitted at once, builtin `mock` at {} ms, \
         scorers exact_match + contains, concurrency {} per evaluation, response cache off, \
         {} round(s) per setting (the median round shown).\n",
        args.nodes, args.evaluations, args.cases, args.latency_ms, args.concurrency, args.rounds
    );
    println!("| checkpoint_every | checkpoint_interval_ms | Raft checkpoints | wall time | cases/s | cases/s (node clocks) | vs `end` (one checkpoint per evaluation) | node CPU (cores busy) | per evaluation min / median / max |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for res in &results {
        let mid = median_round(&res.rounds);
        let per: Vec<f64> = mid.evals.iter().map(|e| e.completed_ms).collect();
        let per = Summary::of(&per).map_or_else(
            || "-".into(),
            |s| format!("{:.0} / {:.0} / {:.0} ms", s.min, s.median, s.max),
        );
        println!(
            "| {} | {} | {} | {:.0} ms | **{:.0}** | {} | {} | {} | {} |",
            res.setting.label,
            res.setting.interval_label(),
            opt(mid.checkpoints),
            mid.wall_ms,
            res.rate(),
            mid.server_rate()
                .map_or_else(|| "-".into(), |v| format!("{v:.0}")),
            baseline.map_or_else(|| "-".into(), |b| format!("{:.2}×", res.rate() / b)),
            mid.node_cpu_s.map_or_else(
                || "-".into(),
                |s| format!("{:.1} s ({:.2})", s, s / (mid.wall_ms / 1000.0))
            ),
            per,
        );
    }
    for res in &results {
        for (i, r) in res.rounds.iter().enumerate() {
            print_round(&res.setting, i, r);
        }
    }
    let best = results.iter().map(SettingResult::rate).fold(0.0, f64::max);
    let default = results
        .iter()
        .find(|r| r.setting.label == "50")
        .map(SettingResult::rate);
    println!(
        "\nGoal 2,000 cases/s: {} at the default checkpoint_every = 50; best setting {best:.0} cases/s.",
        default.map_or_else(
            || "not run".into(),
            |d| format!(
                "{} ({d:.0} cases/s)",
                if d >= 2000.0 { "met" } else { "missed" }
            )
        ),
    );

    if let Some(path) = &args.json {
        let out = json!({
            "benchmark": "evaluations",
            "command": command,
            "machine": crate::ratelimit::machine(),
            "config": {
                "nodes": args.nodes,
                "evaluations": args.evaluations,
                "cases_per_evaluation": args.cases,
                "concurrency": args.concurrency,
                "mock_latency_ms": args.latency_ms,
                "scorers": ["exact_match", "contains"],
                "rounds": args.rounds,
                "poll_ms": args.poll_ms,
            },
            "settings": results.iter().map(|r| json!({
                "checkpoint_every": r.setting.label,
                "sets": r.setting.sets(),
                "cases_per_s_median": round1(r.rate()),
                "vs_end": baseline.map(|b| (r.rate() / b * 1000.0).round() / 1000.0),
                "rounds": r.rounds.iter().map(Round::to_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The round whose rate is the median (the lower middle one for an even count).
fn median_round(rounds: &[Round]) -> &Round {
    let mut idx: Vec<usize> = (0..rounds.len()).collect();
    idx.sort_by(|a, b| rounds[*a].rate().total_cmp(&rounds[*b].rate()));
    &rounds[idx[(idx.len() - 1) / 2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        let s = Setting::parse("50", 2000).unwrap();
        assert_eq!(s.every, 50);
        assert_eq!(
            s.sets(),
            ["evaluations.cache=false", "evaluations.checkpoint_every=50"]
        );
        let end = Setting::parse("end", 2000).unwrap();
        assert_eq!(end.every, 2000);
        assert!(end
            .sets()
            .contains(&"evaluations.checkpoint_interval_ms=3600000".to_string()));
        assert!(Setting::parse("0", 10).is_err());
        assert!(Setting::parse("x", 10).is_err());
    }

    #[test]
    fn cpu_from_proc_stat() {
        assert!(cpu_secs(std::process::id()).is_some());
    }
}
