//! `colony-bench ratelimit` and `colony-bench ratelimit-memory`: Colony's
//! `POST /v1/ratelimit/check` on 1 and 3 nodes, side by side with a Redis + Lua limiter
//! (the baseline) and a bare axum handler (the ceiling), in one run, as ratios.

use crate::baselines::{self, Proc};
use crate::cluster::{Cluster, Spec};
use crate::hist::Histogram;
use crate::load::{self, Endpoint, Load, Outcome};
use anyhow::{anyhow, bail, Context, Result};
use colony_nodeproc::Client;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The tier the benchmark tenant is on: far above anything the benchmark sends.
const TIER_LIMIT: u64 = 1_000_000_000_000;

/// `colony-bench ratelimit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `colony` binary (release build).
    #[arg(long)]
    pub colony: PathBuf,
    /// The `redis-server` binary.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
    /// Measured window of each run (`10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured load before each window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Key space: each check names a key drawn uniformly from this many.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// `limit` of each checked bucket (per `--item-duration-ms`), high so checks pass.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub item_limit: u64,
    /// `duration_ms` of each checked bucket.
    #[arg(long, default_value_t = 60_000)]
    pub item_duration_ms: u64,
    /// Also run every target open loop at this rate (requests/s).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Targets, in order: colony1, colony3, redis, bare; also colony1-tls, colony3-tls
    /// (TLS on every listener, HTTPS keep-alive connections).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "colony1,colony3,redis,bare"
    )]
    pub targets: Vec<String>,
    /// Write raw results here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Append each node's log to DIR/node-<i>.log.
    #[arg(long)]
    pub keep_logs: Option<PathBuf>,
    /// Bound on every wait (start, readiness).
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

/// `colony-bench ratelimit-memory`.
#[derive(Debug, clap::Args)]
pub struct MemArgs {
    /// The `colony` binary (release build).
    #[arg(long)]
    pub colony: PathBuf,
    /// Distinct keys to touch.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Items per check request.
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Concurrent connections sending the batches.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Read RSS again after this many seconds (buckets at rest are swept every 10 s).
    #[arg(long, default_value_t = 25)]
    pub after_secs: u64,
    /// Write raw results here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Bound on every wait.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// A running target: what to send load to, and the processes to stop afterwards.
struct Running {
    endpoint: Endpoint,
    _cluster: Option<Cluster>,
    _procs: Vec<Proc>,
    /// The TLS targets' certificates (removed after the nodes are gone).
    _certs: Option<tempfile::TempDir>,
}

/// Starts `n` Colony nodes, creates a huge-limit tier and a tenant on it, and waits until
/// every node accepts the tenant's key on a check.
fn start_colony(
    args_bin: &std::path::Path,
    n: usize,
    wait: Duration,
    logs: Option<PathBuf>,
    certs: Option<&std::path::Path>,
) -> Result<(Cluster, String)> {
    let mut spec = Spec::new(args_bin.to_path_buf(), wait, logs, "bench");
    if let Some(dir) = certs {
        spec = spec
            .with_tls(dir, &["127.0.0.1".into()])
            .map_err(|e| anyhow!("creating certificates: {e}"))?;
    }
    // ratelimit-memory creates a million buckets for one tenant: above the default cap.
    spec.sets
        .push("ratelimit.max_buckets_per_tenant=100000000".into());
    let cluster =
        Cluster::start(spec, n).with_context(|| format!("starting {n} colony node(s)"))?;
    let client = Client::new(Duration::from_secs(5));
    let admin = cluster.admin_token().to_string();
    let base = cluster.url(0);
    let tier = json!({"name": "bench", "limits": [{"limit": TIER_LIMIT, "window_secs": 60}]});
    let r = client
        .call(
            "POST",
            &format!("{base}/v1/tiers"),
            Some(&admin),
            Some(&tier),
        )
        .map_err(|e| anyhow!("POST /v1/tiers: {e}"))?;
    if !r.is_success() {
        bail!("POST /v1/tiers: {} {}", r.status, r.text);
    }
    let tenant = json!({"id": "bench", "name": "bench", "tier": "bench"});
    let r = client
        .call(
            "POST",
            &format!("{base}/v1/tenants"),
            Some(&admin),
            Some(&tenant),
        )
        .map_err(|e| anyhow!("POST /v1/tenants: {e}"))?;
    if !r.is_success() {
        bail!("POST /v1/tenants: {} {}", r.status, r.text);
    }
    let key = r.json()["api_key"]
        .as_str()
        .ok_or_else(|| anyhow!("no api_key in {}", r.text))?
        .to_string();
    let probe: Value = serde_json::from_slice(&load::check_body(0, 1_000_000_000, 60_000))?;
    for i in 0..n {
        let deadline = Instant::now() + wait;
        let url = format!("{}/v1/ratelimit/check", cluster.url(i));
        loop {
            let last = match client.call("POST", &url, Some(&key), Some(&probe)) {
                Ok(r) if load::classify(r.status, r.text.as_bytes()) == load::Verdict::Under => {
                    break
                }
                Ok(r) => format!("{} {}", r.status, r.text),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "node {} does not accept the bench tenant's checks: {last}",
                    i + 1
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok((cluster, key))
}

fn start_target(name: &str, args: &Args) -> Result<Running> {
    let wait = Duration::from_secs(args.timeout_secs);
    let path = "/v1/ratelimit/check".to_string();
    match name {
        "colony1" | "colony3" | "colony1-tls" | "colony3-tls" => {
            let n = if name.starts_with("colony1") { 1 } else { 3 };
            let certs = tempfile::Builder::new()
                .prefix("colony-bench-certs-")
                .tempdir()
                .context("creating the certificates directory")?;
            let tls = name.ends_with("-tls");
            let (cluster, key) = start_colony(
                &args.colony,
                n,
                wait,
                args.keep_logs.clone(),
                tls.then(|| certs.path()),
            )?;
            let addrs = cluster.addrs().iter().map(|a| a.http.clone()).collect();
            let server_pids = (0..n).filter_map(|i| cluster.pid(i)).collect();
            Ok(Running {
                endpoint: Endpoint {
                    addrs,
                    path,
                    auth: Some(format!("Bearer {key}")),
                    server_pids,
                    tls: if tls {
                        colony_nodeproc::http::tls_config()
                    } else {
                        None
                    },
                },
                _cluster: Some(cluster),
                _procs: Vec::new(),
                _certs: Some(certs),
            })
        }
        "redis" => {
            let (redis, raddr) = baselines::spawn_redis(&args.redis_server, wait)?;
            let key = "bench-baseline-key".to_string();
            let (svc, addr) = baselines::spawn_self(
                "serve-redis-limiter",
                &[
                    "serve-redis-limiter".into(),
                    "--redis".into(),
                    raddr,
                    "--api-key".into(),
                    key.clone(),
                ],
                wait,
            )?;
            Ok(Running {
                endpoint: Endpoint {
                    addrs: vec![addr],
                    path,
                    auth: Some(format!("Bearer {key}")),
                    server_pids: vec![svc.pid(), redis.pid()],
                    tls: None,
                },
                _cluster: None,
                _certs: None,
                // The service first, then Redis.
                _procs: vec![svc, redis],
            })
        }
        "bare" => {
            let (svc, addr) = baselines::spawn_self("serve-bare", &["serve-bare".into()], wait)?;
            Ok(Running {
                endpoint: Endpoint {
                    addrs: vec![addr],
                    path,
                    auth: None,
                    server_pids: vec![svc.pid()],
                    tls: None,
                },
                _cluster: None,
                _certs: None,
                _procs: vec![svc],
            })
        }
        other => bail!(
            "unknown target {other:?} (colony1, colony3, colony1-tls, colony3-tls, redis, bare)"
        ),
    }
}

fn label(name: &str) -> &str {
    match name {
        "colony1" => "Colony, 1 node",
        "colony3" => "Colony, 3 nodes (round robin)",
        "colony1-tls" => "Colony, 1 node, HTTPS",
        "colony3-tls" => "Colony, 3 nodes, TLS everywhere",
        "redis" => "axum + Redis Lua (baseline)",
        "bare" => "bare axum (ceiling)",
        other => other,
    }
}

/// One target's results.
#[derive(Debug)]
struct TargetResult {
    name: String,
    peak: Outcome,
    half: Outcome,
    fixed: Option<Outcome>,
}

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

fn cpu(o: &Outcome) -> String {
    o.cpu_us_per_check()
        .map_or("–".to_string(), |c| format!("{c:.1} µs"))
}

fn line(o: &Outcome) -> String {
    format!(
        "{:.0} req/s, p50 {} ms, p99 {} ms, p99.9 {} ms, server CPU {} per check, errors {}, over_limit {}",
        o.throughput(),
        ms(o.hist.quantile(0.5)),
        ms(o.hist.quantile(0.99)),
        ms(o.hist.quantile(0.999)),
        cpu(o),
        o.errors,
        o.over
    )
}

/// Runs `colony-bench ratelimit`.
pub fn run(args: &Args) -> Result<()> {
    let rt = load::runtime()?;
    let base = Load {
        connections: args.connections,
        warmup: args.warmup,
        duration: args.duration,
        rate: None,
        keys: args.keys,
        item_limit: args.item_limit,
        item_duration_ms: args.item_duration_ms,
        seed: 0x00C0_10E1,
    };
    eprintln!(
        "load: {} connections, warmup {:?}, window {:?}, {} keys, single-item checks (limit {} per {} ms)",
        args.connections, args.warmup, args.duration, args.keys, args.item_limit, args.item_duration_ms
    );
    let mut results = Vec::new();
    for name in &args.targets {
        eprintln!("== {}: starting", label(name));
        let running = start_target(name, args)?;
        let peak = load::run(&rt, &running.endpoint, &base)?;
        eprintln!("   closed loop: {}", line(&peak));
        let half_rate = (peak.throughput() / 2.0).max(1.0);
        let half = load::run(
            &rt,
            &running.endpoint,
            &Load {
                rate: Some(half_rate),
                connections: load::open_connections(base.connections, half_rate),
                ..base.clone()
            },
        )?;
        eprintln!(
            "   open loop at {half_rate:.0}/s ({} connections): {}",
            load::open_connections(base.connections, half_rate),
            line(&half)
        );
        let fixed = match args.rate {
            Some(r) => {
                let o = load::run(
                    &rt,
                    &running.endpoint,
                    &Load {
                        rate: Some(r),
                        connections: load::open_connections(base.connections, r),
                        ..base.clone()
                    },
                )?;
                eprintln!("   open loop at {r:.0}/s: {}", line(&o));
                Some(o)
            }
            None => None,
        };
        drop(running);
        results.push(TargetResult {
            name: name.clone(),
            peak,
            half,
            fixed,
        });
    }
    let tput = |n: &str| {
        results
            .iter()
            .find(|r| r.name == n)
            .map(|r| r.peak.throughput())
    };
    let (redis, bare) = (tput("redis"), tput("bare"));
    let ratio = |v: f64, d: Option<f64>| d.map_or("–".to_string(), |d| format!("{:.2}×", v / d));
    let cpu_of = |n: &str| {
        results
            .iter()
            .find(|r| r.name == n)
            .and_then(|r| r.peak.cpu_us_per_check())
    };
    // Work ratio: how many checks the target does with the CPU the baseline needs for one.
    let cpu_ratio = |r: &TargetResult, base: Option<f64>| match (r.peak.cpu_us_per_check(), base) {
        (Some(c), Some(b)) if c > 0.0 => format!("{:.2}×", b / c),
        _ => "–".to_string(),
    };
    println!();
    println!(
        "| target | throughput (req/s) | p50 | p99 | p99.9 | vs Redis baseline | vs bare ceiling | server CPU per check | CPU efficiency vs Redis | vs bare | p99 at half of peak (rate) | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        let t = r.peak.throughput();
        println!(
            "| {} | {:.0} | {} ms | {} ms | {} ms | {} | {} | {} | {} | {} | {} ms ({:.0}/s) | {} |",
            label(&r.name),
            t,
            ms(r.peak.hist.quantile(0.5)),
            ms(r.peak.hist.quantile(0.99)),
            ms(r.peak.hist.quantile(0.999)),
            ratio(t, redis),
            ratio(t, bare),
            cpu(&r.peak),
            cpu_ratio(r, cpu_of("redis")),
            cpu_ratio(r, cpu_of("bare")),
            ms(r.half.hist.quantile(0.99)),
            r.half.rate.unwrap_or_default(),
            r.peak.errors + r.half.errors,
        );
    }
    if let Some(rate) = args.rate {
        println!();
        println!("open loop at {rate:.0} req/s:");
        for r in &results {
            if let Some(o) = &r.fixed {
                println!("- {}: {}", label(&r.name), line(o));
            }
        }
    }
    if let Some(path) = &args.json {
        let out = json!({
            "benchmark": "ratelimit",
            "config": {
                "connections": args.connections,
                "warmup_s": args.warmup.as_secs_f64(),
                "duration_s": args.duration.as_secs_f64(),
                "keys": args.keys,
                "item_limit": args.item_limit,
                "item_duration_ms": args.item_duration_ms,
                "tier_limit_per_60s": TIER_LIMIT,
                "colony": args.colony.display().to_string(),
                "open_rate": args.rate,
            },
            "machine": machine(),
            "targets": results.iter().map(|r| json!({
                "name": r.name,
                "label": label(&r.name),
                "peak": r.peak.to_json(),
                "half_of_peak": r.half.to_json(),
                "fixed_rate": r.fixed.as_ref().map(Outcome::to_json),
                "vs_redis": redis.map(|d| r.peak.throughput() / d),
                "vs_bare": bare.map(|d| r.peak.throughput() / d),
                "server_cpu_us_per_check": r.peak.cpu_us_per_check(),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Cores, memory and CPU model, for the report.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu": model,
        "mem_total_kib": status_kib(&meminfo, "MemTotal"),
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
    })
}

/// The value in kiB of `field` in a `/proc` status-like text (`VmRSS:  1234 kB`).
pub fn status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.split(':').next() == Some(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// (VmRSS, VmHWM) of `pid` in kiB.
fn rss(pid: u32) -> Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok((
        status_kib(&s, "VmRSS").ok_or_else(|| anyhow!("no VmRSS"))?,
        status_kib(&s, "VmHWM").ok_or_else(|| anyhow!("no VmHWM"))?,
    ))
}

/// The body of a check of `n` items on keys `m<first> ..`.
pub fn batch_body(first: u64, n: u64) -> bytes::Bytes {
    let mut s = String::with_capacity(64 + n as usize * 110);
    s.push_str(r#"{"requests":["#);
    for k in first..first + n {
        if k > first {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"name":"mem","key":"m{k}","hits":1,"limit":1000000000,"duration_ms":60000,"algorithm":"token_bucket"}}"#
        ));
    }
    s.push_str("]}");
    bytes::Bytes::from(s)
}

/// Runs `colony-bench ratelimit-memory`.
pub fn run_memory(args: &MemArgs) -> Result<()> {
    let wait = Duration::from_secs(args.timeout_secs);
    let (cluster, key) = start_colony(&args.colony, 1, wait, None, None)?;
    let pid = cluster
        .pid(0)
        .ok_or_else(|| anyhow!("node 1 is not running"))?;
    let addr = cluster.addrs()[0].http.clone();
    std::thread::sleep(Duration::from_secs(1));
    let (before, hwm_before) = rss(pid)?;
    eprintln!("before: VmRSS {before} kiB (VmHWM {hwm_before} kiB)");
    let rt = load::runtime()?;
    let batches = args.keys.div_ceil(args.batch.max(1));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t0 = Instant::now();
    let (hist, bad) = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..args.connections.max(1) {
            let next = next.clone();
            let addr = addr.clone();
            let auth = format!("Bearer {key}");
            let (batch, keys) = (args.batch.max(1), args.keys);
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::new();
                let mut conn = load::connect(&addr, None).await?;
                let mut bad = 0u64;
                loop {
                    let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if b >= batches {
                        break;
                    }
                    let first = b * batch;
                    let n = batch.min(keys - first);
                    let s = Instant::now();
                    let (status, body) = load::post(
                        &mut conn,
                        &addr,
                        "/v1/ratelimit/check",
                        Some(&auth),
                        batch_body(first, n),
                    )
                    .await?;
                    h.record(u64::try_from(s.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    let text = String::from_utf8_lossy(&body);
                    let under = text.matches("\"under_limit\"").count() as u64;
                    if status != 200 || under != n {
                        bad += n - under.min(n);
                        if bad == n - under.min(n) {
                            eprintln!(
                                "unexpected answer: {status} {}",
                                &text[..text.len().min(300)]
                            );
                        }
                    }
                }
                Ok::<_, String>((h, bad))
            }));
        }
        let mut h = Histogram::new();
        let mut bad = 0;
        for t in tasks {
            let (th, tb) = t
                .await
                .map_err(|e| anyhow!("{e}"))?
                .map_err(|e| anyhow!(e))?;
            h.merge(&th);
            bad += tb;
        }
        Ok::<_, anyhow::Error>((h, bad))
    })?;
    let took = t0.elapsed();
    let (after, hwm_after) = rss(pid)?;
    let per_bucket = (after.saturating_sub(before) * 1024) as f64 / args.keys as f64;
    eprintln!(
        "touched {} keys in {:.1} s ({:.0} items/s, {} not under_limit); request latency p50 {} ms p99 {} ms",
        args.keys,
        took.as_secs_f64(),
        args.keys as f64 / took.as_secs_f64(),
        bad,
        ms(hist.quantile(0.5)),
        ms(hist.quantile(0.99)),
    );
    eprintln!(
        "after: VmRSS {after} kiB (VmHWM {hwm_after} kiB) → {per_bucket:.0} bytes per bucket"
    );
    std::thread::sleep(Duration::from_secs(args.after_secs));
    let (later, hwm_later) = rss(pid)?;
    eprintln!(
        "{} s later: VmRSS {later} kiB (VmHWM {hwm_later} kiB)",
        args.after_secs
    );
    println!();
    println!("| keys touched | RSS before | RSS right after | bytes per bucket | peak RSS (VmHWM) | RSS {} s later |", args.after_secs);
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.1} MiB | {:.1} MiB | {:.0} | {:.1} MiB | {:.1} MiB |",
        args.keys,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per_bucket,
        hwm_later as f64 / 1024.0,
        later as f64 / 1024.0
    );
    if let Some(path) = &args.json {
        let out = json!({
            "benchmark": "ratelimit-memory",
            "config": {"keys": args.keys, "batch": args.batch, "connections": args.connections,
                       "after_secs": args.after_secs, "colony": args.colony.display().to_string()},
            "machine": machine(),
            "rss_before_kib": before, "hwm_before_kib": hwm_before,
            "rss_after_kib": after, "hwm_after_kib": hwm_after,
            "rss_later_kib": later, "hwm_later_kib": hwm_later,
            "bytes_per_bucket": per_bucket,
            "touch_seconds": took.as_secs_f64(),
            "items_not_under_limit": bad,
            "request_latency": hist.to_json_ms(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    drop(cluster);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn proc_stat_cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "4242 (tokio worker) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(crate::load::stat_cpu_ticks(stat), Some(287));
        assert_eq!(crate::load::stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn proc_status_fields() {
        let s = "Name:\tcolony\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(status_kib(s, "VmRSS"), Some(10240));
        assert_eq!(status_kib(s, "VmHWM"), Some(20480));
        assert_eq!(status_kib(s, "VmSwap"), None);
    }

    #[test]
    fn batch_body_has_distinct_keys() {
        let v: Value = serde_json::from_slice(&batch_body(5, 3)).unwrap();
        let keys: Vec<&str> = v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["m5", "m6", "m7"]);
    }
}
