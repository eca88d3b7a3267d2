//! `colony-bench failover`: failure detection and failover after `kill -9` of the Raft
//! leader, on loopback, side by side with the default timings of Akka, Orleans, memberlist
//! and etcd.
//!
//! Each round starts from a healthy cluster (every node ready and `active` in every view,
//! full voter set, one agreed leader), kills the leader with SIGKILL at `t0`, and polls the
//! survivors (one thread per survivor for `/v1/cluster`, one per survivor for writes) for:
//! - detection: a survivor lists the killed node's id only as `down` in `members[]`;
//! - new leader: every survivor reports the same `raft.leader`, not the killed id;
//! - first write: `POST /v1/tenants` through a survivor answers 2xx (a new id each try).
//!
//! The killed node is then restarted in place (same data dir and addresses) and the next
//! round waits until the cluster is healthy again.

use crate::cluster::{member_states, Cluster, Spec};
use crate::config::{self, Driving};
use crate::stats::{self, Summary};
use anyhow::{bail, Context, Result};
use colony_nodeproc::Client;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `colony-bench failover` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `colony` binary to run.
    #[arg(long, value_name = "PATH", default_value = "target/release/colony")]
    pub colony: PathBuf,
    /// Cluster size (3 to 5 nodes; 3 voters, 5 with 5 nodes).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=5))]
    pub nodes: u16,
    /// Rounds: how many times the leader is killed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub kills: u32,
    /// Also write the raw samples and the summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// How often each poller asks a survivor, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub poll_ms: u64,
    /// Timeout of each polling request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=10000))]
    pub request_timeout_ms: u64,
    /// After the cluster is healthy, wait this long before the next kill, in milliseconds,
    /// so a node restarted by the previous round has settled in.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub settle_ms: u64,
    /// Append every node's log (JSON lines) to DIR/node-<i>.log.
    #[arg(long, value_name = "DIR")]
    pub keep_logs: Option<PathBuf>,
    /// Bound on every wait (start, each measurement, recovery), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_secs: u64,
}

/// Which Colony measurement an anchor is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Detection,
    NewLeader,
    FirstWrite,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Detection => "detection",
            Metric::NewLeader => "new leader",
            Metric::FirstWrite => "first write",
        }
    }
}

/// A published default timing of another system.
#[derive(Debug)]
struct Anchor {
    system: &'static str,
    what: &'static str,
    ms: f64,
    /// Whether the anchor is a lower bound (">= 4 s").
    at_least: bool,
    metric: Metric,
}

/// The anchors, each at its system's defaults.
const ANCHORS: [Anchor; 5] = [
    Anchor {
        system: "Akka (phi accrual detector, defaults)",
        what: "member unreachable",
        ms: 5_500.0,
        at_least: false,
        metric: Metric::Detection,
    },
    Anchor {
        system: "Akka + split brain resolver (defaults)",
        what: "full failover",
        ms: 45_000.0,
        at_least: false,
        metric: Metric::FirstWrite,
    },
    Anchor {
        system: "Orleans (membership defaults)",
        what: "silo declared dead",
        ms: 30_000.0,
        at_least: false,
        metric: Metric::Detection,
    },
    Anchor {
        system: "memberlist: Consul/Serf (LAN, small cluster)",
        what: "suspicion timeout",
        ms: 4_000.0,
        at_least: true,
        metric: Metric::Detection,
    },
    Anchor {
        system: "etcd (default election timeout)",
        what: "election timeout",
        ms: 1_000.0,
        at_least: false,
        metric: Metric::NewLeader,
    },
];

/// One round's measurements, from `t0` (right after SIGKILL).
#[derive(Debug, Clone)]
struct Sample {
    round: u32,
    killed: usize,
    killed_id: String,
    detection: Duration,
    detected_by: usize,
    new_leader: Duration,
    new_leader_id: String,
    first_write: Duration,
    write_via: usize,
    write_attempts: u64,
    write_failures: u64,
    /// From the restart in place until the cluster is healthy again.
    recovery: Duration,
    /// What the recovery wait was waiting for last.
    recovery_waited_on: Option<String>,
}

impl Sample {
    fn get(&self, m: Metric) -> Duration {
        match m {
            Metric::Detection => self.detection,
            Metric::NewLeader => self.new_leader,
            Metric::FirstWrite => self.first_write,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "round": self.round,
            "killed_node": self.killed + 1,
            "killed_id": self.killed_id,
            "detection_ms": ms(self.detection),
            "detected_by_node": self.detected_by + 1,
            "new_leader_ms": ms(self.new_leader),
            "new_leader_id": self.new_leader_id,
            "first_write_ms": ms(self.first_write),
            "first_write_via_node": self.write_via + 1,
            "write_attempts": self.write_attempts,
            "write_failures": self.write_failures,
            "recovery_ms": ms(self.recovery),
            "recovery_waited_on": self.recovery_waited_on,
        })
    }
}

fn ms(d: Duration) -> f64 {
    stats::round1(d.as_secs_f64() * 1000.0)
}

/// Runs the benchmark and prints (and optionally writes) the results.
pub fn run(args: &Args) -> Result<()> {
    if !args.colony.is_file() {
        bail!(
            "no colony binary at {} (build it with `cargo build --release -p colony`, or pass --colony PATH)",
            args.colony.display()
        );
    }
    let n = usize::from(args.nodes);
    let poll = Duration::from_millis(args.poll_ms);
    let request_timeout = Duration::from_millis(args.request_timeout_ms);
    let driving = config::load(&args.colony);
    println!(
        "colony-bench failover: {n} nodes, {} leader kills (kill -9), polling every {} ms (request timeout {} ms), {} ms settle before each kill",
        args.kills, args.poll_ms, args.request_timeout_ms, args.settle_ms
    );
    print_config(&driving);

    if let Some(dir) = &args.keep_logs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let spec = Spec::new(
        args.colony.clone(),
        Duration::from_secs(args.timeout_secs),
        args.keep_logs.clone(),
        "bench",
    );
    let started = Instant::now();
    let mut cluster = Cluster::start(spec, n).context("starting the cluster")?;
    println!(
        "cluster of {n} up in {:.1} s ({} voters)",
        started.elapsed().as_secs_f64(),
        cluster.full_voters()
    );

    let mut samples = Vec::new();
    for round in 1..=args.kills {
        let settle = Duration::from_millis(args.settle_ms);
        let sample = one_round(&mut cluster, round, poll, request_timeout, settle)
            .with_context(|| format!("round {round}"))?;
        println!(
            "round {round:>3}/{}: killed node {} (leader {}): down after {:>5.0} ms (seen by node {}), \
             new leader {} after {:>5.0} ms, first write after {:>5.0} ms (via node {}, {} tries); \
             healthy again {:.1} s after the restart",
            args.kills,
            sample.killed + 1,
            sample.killed_id,
            ms(sample.detection),
            sample.detected_by + 1,
            sample.new_leader_id,
            ms(sample.new_leader),
            ms(sample.first_write),
            sample.write_via + 1,
            sample.write_attempts,
            sample.recovery.as_secs_f64()
        );
        if let Some(why) = sample
            .recovery_waited_on
            .as_ref()
            .filter(|_| sample.recovery > Duration::from_secs(2))
        {
            println!("           (the recovery wait was last waiting for: {why})");
        }
        samples.push(sample);
    }
    drop(cluster);

    let summaries: Vec<(Metric, Summary)> =
        [Metric::Detection, Metric::NewLeader, Metric::FirstWrite]
            .into_iter()
            .filter_map(|m| {
                let v: Vec<f64> = samples.iter().map(|s| ms(s.get(m))).collect();
                Summary::of(&v).map(|s| (m, s))
            })
            .collect();
    print_summary(n, &summaries, &samples);
    if let Some(path) = &args.json {
        let doc = report_json(args, &driving, &samples, &summaries);
        let text = serde_json::to_string_pretty(&doc).context("encoding the JSON report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nraw samples and summary written to {}", path.display());
    }
    Ok(())
}

/// What the pollers found so far.
#[derive(Debug, Default)]
struct Progress {
    /// Latest `raft.leader` per survivor (by position in the survivor list).
    leaders: Vec<Option<String>>,
    detection: Option<(Duration, usize)>,
    new_leader: Option<(Duration, String)>,
    write: Option<(Duration, usize)>,
    write_attempts: u64,
    write_failures: u64,
    last_write_error: String,
    last_view_error: String,
}

/// State shared by the pollers of one round.
#[derive(Debug)]
struct Shared {
    t0: Instant,
    killed_id: String,
    token: String,
    round: u32,
    poll: Duration,
    stop: AtomicBool,
    progress: Mutex<Progress>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps what is left of the poll interval that began at `started`.
    fn pace(&self, started: Instant) {
        std::thread::sleep(self.poll.saturating_sub(started.elapsed()));
    }
}

/// Kills the leader, measures, restarts it in place and waits for a healthy cluster.
fn one_round(
    cluster: &mut Cluster,
    round: u32,
    poll: Duration,
    request_timeout: Duration,
    settle: Duration,
) -> Result<Sample> {
    cluster
        .wait_healthy()
        .context("waiting for a healthy cluster before the kill")?;
    std::thread::sleep(settle);
    // Again after settling: the leader to kill is the one agreed on now.
    let healthy = cluster
        .wait_healthy()
        .context("waiting for a healthy cluster before the kill")?;
    let killed = healthy.leader;
    let survivors: Vec<usize> = (0..cluster.len()).filter(|i| *i != killed).collect();
    let t0 = cluster.kill9(killed)?;
    let shared = Shared {
        t0,
        killed_id: healthy.leader_id.clone(),
        token: cluster.admin_token().to_string(),
        round,
        poll,
        stop: AtomicBool::new(false),
        progress: Mutex::new(Progress {
            leaders: vec![None; survivors.len()],
            ..Progress::default()
        }),
    };
    let bound = cluster.wait_bound();
    let cl: &Cluster = cluster;
    let outcome = std::thread::scope(|s| {
        for (slot, &node) in survivors.iter().enumerate() {
            let url = cl.url(node);
            let client = Client::new(request_timeout);
            let sh = &shared;
            s.spawn(move || poll_views(sh, &client, &url, node, slot));
            let url = cl.url(node);
            let client = Client::new(request_timeout);
            s.spawn(move || poll_writes(sh, &client, &url, node));
        }
        let result = loop {
            {
                let p = shared.lock();
                if let (Some(d), Some(l), Some(w)) = (&p.detection, &p.new_leader, &p.write) {
                    break Ok((*d, l.clone(), *w, p.write_attempts, p.write_failures));
                }
                if t0.elapsed() > bound {
                    break Err(describe_missing(&p, bound));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        shared.stop.store(true, Ordering::Relaxed);
        result
    });
    let (
        (detection, detected_by),
        (new_leader, new_leader_id),
        (first_write, write_via),
        attempts,
        failures,
    ) = match outcome {
        Ok(v) => v,
        Err(why) => bail!(
            "after killing node {} (the leader, id {}): {why}",
            killed + 1,
            healthy.leader_id
        ),
    };

    let seeds: Vec<String> = survivors
        .iter()
        .map(|i| cluster.addrs()[*i].gossip.clone())
        .collect();
    let restarted = Instant::now();
    cluster.restart(killed, &seeds)?;
    let healed = cluster.wait_healthy().with_context(|| {
        format!(
            "waiting for the cluster to heal after restarting node {}",
            killed + 1
        )
    })?;
    Ok(Sample {
        round,
        killed,
        killed_id: healthy.leader_id,
        detection,
        detected_by,
        new_leader,
        new_leader_id,
        first_write,
        write_via,
        write_attempts: attempts,
        write_failures: failures,
        recovery: restarted.elapsed(),
        recovery_waited_on: healed.waited_on,
    })
}

/// Says which of the three events did not happen in time, and the last errors seen.
fn describe_missing(p: &Progress, bound: Duration) -> String {
    let mut missing = Vec::new();
    if p.detection.is_none() {
        missing.push("no survivor listed it as down");
    }
    if p.new_leader.is_none() {
        missing.push("the survivors did not agree on a new leader");
    }
    if p.write.is_none() {
        missing.push("no write succeeded");
    }
    format!(
        "within {bound:?}: {} (survivors' leaders: {:?}; last /v1/cluster error: {:?}; \
         {} write attempts, last write error: {:?})",
        missing.join(", "),
        p.leaders,
        p.last_view_error,
        p.write_attempts,
        p.last_write_error
    )
}

/// Polls `/v1/cluster` of survivor `node` for detection and leader agreement.
fn poll_views(sh: &Shared, client: &Client, base: &str, node: usize, slot: usize) {
    let url = format!("{base}/v1/cluster");
    while !sh.stopped() {
        let started = Instant::now();
        let res = client.get(&url, Some(&sh.token));
        let at = sh.t0.elapsed();
        match res {
            Ok(r) if r.status == 200 => {
                let view = r.json();
                let states = member_states(&view, &sh.killed_id);
                let down = !states.is_empty() && states.iter().all(|s| s == "down");
                let leader = view["raft"]["leader"].as_str().map(str::to_string);
                let mut p = sh.lock();
                if down && p.detection.is_none() {
                    p.detection = Some((at, node));
                }
                if let Some(l) = p.leaders.get_mut(slot) {
                    *l = leader;
                }
                if p.new_leader.is_none() {
                    if let Some(Some(first)) = p.leaders.first() {
                        let first = first.clone();
                        if first != sh.killed_id
                            && p.leaders
                                .iter()
                                .all(|l| l.as_deref() == Some(first.as_str()))
                        {
                            p.new_leader = Some((at, first));
                        }
                    }
                }
                if p.detection.is_some() && p.new_leader.is_some() {
                    return;
                }
            }
            Ok(r) => {
                sh.lock().last_view_error =
                    format!("node {}: {} {}", node + 1, r.status, snippet(&r.text));
            }
            Err(e) => sh.lock().last_view_error = format!("node {}: {e}", node + 1),
        }
        sh.pace(started);
    }
}

/// Tries writes through survivor `node` until one succeeds (anywhere).
fn poll_writes(sh: &Shared, client: &Client, base: &str, node: usize) {
    let url = format!("{base}/v1/tenants");
    while !sh.stopped() {
        let started = Instant::now();
        let attempt = {
            let mut p = sh.lock();
            if p.write.is_some() {
                return;
            }
            p.write_attempts += 1;
            p.write_attempts
        };
        // A new id every try: a write that timed out may still commit later.
        let id = format!("failover-r{}-{attempt}", sh.round);
        let body = json!({"id": id, "name": "x"});
        let res = client.call("POST", &url, Some(&sh.token), Some(&body));
        let at = sh.t0.elapsed();
        let mut p = sh.lock();
        match res {
            Ok(r) if r.is_success() => {
                if p.write.is_none() {
                    p.write = Some((at, node));
                }
                return;
            }
            Ok(r) => {
                p.write_failures += 1;
                p.last_write_error =
                    format!("node {}: {} {}", node + 1, r.status, snippet(&r.text));
            }
            Err(e) => {
                p.write_failures += 1;
                p.last_write_error = format!("node {}: {e}", node + 1);
            }
        }
        drop(p);
        sh.pace(started);
    }
}

/// The first 200 characters of `text`.
fn snippet(text: &str) -> String {
    text.chars().take(200).collect()
}

fn print_config(d: &Driving) {
    println!(
        "config driving these numbers (no overrides passed; from {}):",
        d.source
    );
    for (k, v) in &d.values {
        println!("  {k:<32} {v}");
    }
    if let Some(w) = &d.warning {
        println!("  WARNING: {w}");
    }
}

fn print_summary(n: usize, summaries: &[(Metric, Summary)], samples: &[Sample]) {
    println!();
    println!("Failover after kill -9 of the leader, {n} nodes on loopback, times from the kill:");
    println!(
        "  {:<44} {:>4} {:>10} {:>10} {:>10} {:>10}",
        "metric", "n", "min", "median", "p90", "max"
    );
    for (m, s) in summaries {
        let label = match m {
            Metric::Detection => "detection (a survivor lists it as down)",
            Metric::NewLeader => "new leader (all survivors agree)",
            Metric::FirstWrite => "first successful write through a survivor",
        };
        println!(
            "  {label:<44} {:>4} {:>10} {:>10} {:>10} {:>10}",
            s.n,
            stats::ms(s.min),
            stats::ms(s.median),
            s.p90.map_or_else(|| "-".to_string(), stats::ms),
            stats::ms(s.max)
        );
    }
    println!();
    println!("Side by side with the anchors (their defaults; ratio = Colony median / anchor):");
    println!(
        "  {:<46} {:<20} {:>8}   {:<12} {:>13} {:>8} {:>9}",
        "system", "event", "anchor", "Colony", "Colony median", "ratio", "faster"
    );
    for a in &ANCHORS {
        let Some((_, s)) = summaries.iter().find(|(m, _)| *m == a.metric) else {
            continue;
        };
        let ratio = s.median / a.ms;
        let anchor = format!(
            "{}{}",
            if a.at_least { ">= " } else { "" },
            stats::secs(a.ms)
        );
        println!(
            "  {:<46} {:<20} {:>8}   {:<12} {:>13} {:>7.3}{} {:>8.1}x",
            a.system,
            a.what,
            anchor,
            a.metric.name(),
            stats::ms(s.median),
            ratio,
            if a.at_least { "*" } else { " " },
            1.0 / ratio
        );
    }
    println!("  (* the anchor is a lower bound, so the ratio is an upper bound)");
    println!();
    println!("Raw samples (ms from the kill):");
    println!(
        "  {:>5} {:>6} {:>10} {:>11} {:>12} {:>9} {:>10}",
        "round", "killed", "detection", "new leader", "first write", "attempts", "recovery"
    );
    for s in samples {
        println!(
            "  {:>5} {:>6} {:>10.0} {:>11.0} {:>12.0} {:>9} {:>10.0}",
            s.round,
            s.killed + 1,
            ms(s.detection),
            ms(s.new_leader),
            ms(s.first_write),
            s.write_attempts,
            ms(s.recovery)
        );
    }
}

fn report_json(
    args: &Args,
    d: &Driving,
    samples: &[Sample],
    summaries: &[(Metric, Summary)],
) -> Value {
    let summary_of = |m: Metric| {
        summaries
            .iter()
            .find(|(x, _)| *x == m)
            .map_or(Value::Null, |(_, s)| s.to_json())
    };
    let anchors: Vec<Value> = ANCHORS
        .iter()
        .map(|a| {
            let median = summaries
                .iter()
                .find(|(m, _)| *m == a.metric)
                .map(|(_, s)| s.median);
            json!({
                "system": a.system,
                "event": a.what,
                "anchor_ms": a.ms,
                "anchor_is_lower_bound": a.at_least,
                "compared_with": a.metric.name(),
                "colony_median_ms": median.map(stats::round1),
                "ratio": median.map(|m| (m / a.ms * 1000.0).round() / 1000.0),
            })
        })
        .collect();
    let config: serde_json::Map<String, Value> = d
        .values
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "benchmark": "failover",
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
        "colony": args.colony.display().to_string(),
        "nodes": args.nodes,
        "kills": args.kills,
        "poll_ms": args.poll_ms,
        "request_timeout_ms": args.request_timeout_ms,
        "settle_ms": args.settle_ms,
        "config_source": d.source,
        "config": config,
        "config_warning": d.warning,
        "samples": samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
        "summary": {
            "detection": summary_of(Metric::Detection),
            "new_leader": summary_of(Metric::NewLeader),
            "first_write": summary_of(Metric::FirstWrite),
        },
        "anchors": anchors,
    })
}
