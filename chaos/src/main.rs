//! `colony-chaos`: starts a cluster of real `colony` node processes, drives a mixed
//! workload through every node, injects faults from a seeded schedule, records a history
//! of every operation and checks it. Exit code 0: every checker passed; 1: a checker
//! failed; 2: the run itself could not be carried out.

mod checks;
mod cluster;
mod fault;
mod history;
mod nemesis;
mod netns;
mod report;
mod sweep;
mod wgl;
mod workload;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cluster::{Cluster, Spec};
use history::{History, Op, Outcome};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chaos runner for Colony.
#[derive(Debug, Parser)]
#[command(name = "colony-chaos", version)]
struct Args {
    /// `smoke` (each fault once), `mixed` (random faults and targets filling the
    /// duration), `drain-leader` (graceful restarts of the leader), `rolling-restart`
    /// (every node in turn, load through ready nodes only, no 5xx allowed) or
    /// `rolling-upgrade` (the same, onto `--upgrade-to`).
    #[arg(long, default_value = "smoke")]
    scenario: String,
    /// How long the workload and faults run (the checks come after): `60s`, `5m`.
    #[arg(long, default_value = "45s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule and the workload's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The `colony` binary.
    #[arg(long, default_value = "target/release/colony")]
    colony: PathBuf,
    /// JSON report.
    #[arg(long, default_value = "chaos-report.json")]
    report: PathBuf,
    /// SVG timeline.
    #[arg(long, default_value = "chaos-timeline.svg")]
    svg: PathBuf,
    /// Keep each node's log in this directory (`node-<i>.log`).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// `app`: every node on loopback, partitions through the nodes' test-only fault
    /// switches (no root needed). `netns`: every node in its own network namespace,
    /// network faults with iptables (root; needed by `--scenario network`).
    #[arg(long, default_value = "app", value_parser = ["app", "netns"])]
    net: String,
    /// TLS on every listener: a CA and a node certificate are made for the run with
    /// `colony certs` (the API is HTTPS, Raft and the actor transport mutual TLS).
    #[arg(long)]
    tls: bool,
    /// The binary `rolling-upgrade` moves every node to, one at a time (the cluster
    /// starts on `--colony`).
    #[arg(long)]
    upgrade_to: Option<PathBuf>,
    /// Start nothing: run the history checkers (linearizability, rate-limit bound) again
    /// on the history and faults of an earlier report.
    #[arg(long)]
    recheck: Option<PathBuf>,
    /// Run the scenario once for every seed of this list (`1-20`, `1,3,9-12`), each run a
    /// child process; prints a table of every run's checkers and exits 1 if any failed.
    #[arg(long, conflicts_with_all = ["recheck", "seed"])]
    sweep: Option<String>,
    /// With `--sweep`: runs per seed.
    #[arg(long, default_value_t = 1, requires = "sweep")]
    repeat: u32,
    /// With `--sweep`: where failing runs' reports, timelines, logs and output are kept.
    #[arg(long, default_value = "chaos-sweep", requires = "sweep")]
    sweep_dir: PathBuf,
}

fn main() {
    let args = Args::parse();
    let result = match (&args.recheck, &args.sweep) {
        (Some(path), _) => recheck(path),
        (None, Some(seeds)) => run_sweep(&args, seeds),
        (None, None) => run(&args),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("colony-chaos: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Creates the setup tenants through node 1, recording each creation.
struct Setup<'a> {
    client: colony_nodeproc::Client,
    history: &'a History,
    url: String,
    admin: String,
    seed: u64,
    n: u64,
}

impl Setup<'_> {
    fn create_tenant(&mut self, body: &Value) -> Result<Value> {
        self.n += 1;
        let rid = format!("chaos-{}-setup-{}", self.seed, self.n);
        let invoke_ms = self.history.now_ms();
        let r = self
            .client
            .call_with_id(
                "POST",
                &format!("{}/v1/tenants", self.url),
                Some(&self.admin),
                Some(body),
                Some(&rid),
            )
            .map_err(|e| anyhow::anyhow!("POST /v1/tenants: {e}"))?;
        if !r.is_success() {
            bail!("POST /v1/tenants: {} {}", r.status, r.text);
        }
        let v = r.json();
        self.history.push(Op {
            id: 0,
            process: "setup".into(),
            kind: "setup.create".into(),
            node: 0,
            key: v["id"].as_str().unwrap_or("").to_string(),
            value: v["name"].as_str().map(str::to_string),
            invoke_ms,
            complete_ms: self.history.now_ms(),
            outcome: Outcome::Ok,
            status: Some(r.status),
            request_id: Some(rid),
            detail: Value::Null,
        });
        Ok(v)
    }
}

/// `--sweep`: the scenario on every seed, `--repeat` times each.
fn run_sweep(args: &Args, seeds: &str) -> Result<bool> {
    let seeds = sweep::parse_seeds(seeds)?;
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let base = sweep::Base {
        scenario: args.scenario.clone(),
        duration: humantime::format_duration(args.duration).to_string(),
        nodes: args.nodes,
        colony: args.colony.clone(),
        net: args.net.clone(),
        upgrade_to: args.upgrade_to.clone(),
        tls: args.tls,
    };
    let results = sweep::run(&base, &seeds, args.repeat, &args.sweep_dir)?;
    print!("{}", sweep::table(&args.scenario, &results));
    Ok(results.iter().all(sweep::RunResult::passed))
}

/// The history checkers on an earlier report.
fn recheck(path: &std::path::Path) -> Result<bool> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let report: Value = serde_json::from_slice(&text).context("parsing the report")?;
    let mut ops: Vec<Op> =
        serde_json::from_value(report["history"].clone()).context("the report's history")?;
    ops.sort_by(|a, b| a.invoke_ms.total_cmp(&b.invoke_ms));
    let faults: Vec<history::FaultEvent> =
        serde_json::from_value(report["faults"].clone()).context("the report's faults")?;
    let checks = [
        checks::linearizability(&ops),
        checks::ratelimit(&ops, &faults),
    ];
    for c in &checks {
        println!(
            "[{}] {:<28} {}",
            if c.ok { "PASS" } else { "FAIL" },
            c.name,
            c.summary
        );
        for p in c.details["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .take(10)
        {
            println!("       - {}", p.as_str().unwrap_or(""));
        }
    }
    Ok(checks.iter().all(|c| c.ok))
}

fn run(args: &Args) -> Result<bool> {
    const SCENARIOS: [&str; 8] = [
        "smoke",
        "mixed",
        "impaired",
        "minority",
        "drain-leader",
        "rolling-restart",
        "rolling-upgrade",
        "network",
    ];
    if !SCENARIOS.contains(&args.scenario.as_str()) {
        bail!(
            "unknown scenario {:?} ({})",
            args.scenario,
            SCENARIOS.join(", ")
        );
    }
    let rolling = args.scenario.starts_with("rolling-");
    if args.scenario == "network" && args.net != "netns" {
        bail!("--scenario network injects real network faults: add --net netns (needs root)");
    }
    let upgrade_to = match (&args.upgrade_to, args.scenario == "rolling-upgrade") {
        (Some(p), true) => Some(
            std::fs::canonicalize(p)
                .with_context(|| format!("the --upgrade-to binary {}", p.display()))?,
        ),
        (None, true) => bail!("rolling-upgrade needs --upgrade-to (the new binary)"),
        (Some(_), false) => bail!("--upgrade-to is only for --scenario rolling-upgrade"),
        (None, false) => None,
    };
    if args.nodes < 3 {
        bail!("--nodes must be at least 3 (a fault must leave a majority)");
    }
    let bin = std::fs::canonicalize(&args.colony).with_context(|| {
        format!(
            "the colony binary {} (build it with `cargo build --release -p colony`)",
            args.colony.display()
        )
    })?;
    if let Some(d) = &args.log_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let started = Instant::now();
    // The history's clock on the wall, to place node log lines (e.g. identity renewals).
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let history = Arc::new(History::new(started));
    let mut spec = Spec::new(
        bin.clone(),
        Duration::from_secs(30),
        args.log_dir.clone(),
        &format!("chaos-{}", args.seed),
    );
    spec.sets.push("cluster.fault_injection=true".to_string());
    let net = if args.net == "netns" {
        Some(netns::Net::create(args.nodes)?)
    } else {
        None
    };
    // Kept until the run ends: the nodes read their certificates from it.
    let certs = tempfile::Builder::new()
        .prefix("colony-chaos-certs-")
        .tempdir()
        .context("creating the certificates directory")?;
    if args.tls {
        let hosts: Vec<String> = match &net {
            Some(net) => (0..args.nodes).map(|i| net.ip(i)).collect(),
            None => vec!["127.0.0.1".into(), "localhost".into()],
        };
        spec = spec
            .with_tls(certs.path(), &hosts)
            .map_err(|e| anyhow::anyhow!("creating certificates: {e}"))?;
    } else if net.is_some() {
        // Namespaced nodes listen on their own (non-loopback) addresses.
        spec.sets.push("tls.insecure=true".to_string());
    }
    println!(
        "colony-chaos: scenario {} seed {} duration {} nodes {} binary {}",
        args.scenario,
        args.seed,
        humantime::format_duration(args.duration),
        args.nodes,
        bin.display()
    );
    let mut c = Cluster::start(spec, args.nodes, net)?;
    if let Some(bin) = &upgrade_to {
        println!("rolling upgrade to {}", bin.display());
        c.set_upgrade_to(bin.clone());
    }
    c.wait_converged(nemesis::CONVERGE_BOUND, false)
        .context("the new cluster did not converge")?;
    println!(
        "cluster of {} up in {:.1} s (data in {})",
        args.nodes,
        started.elapsed().as_secs_f64(),
        c.root().display()
    );

    // Setup: the registers, the rate-limit and evaluation tenants (exempt from tier
    // limits, so the checks measure the buckets under test only).
    let admin = c.admin_token().to_string();
    let mut setup = Setup {
        client: colony_nodeproc::Client::new(Duration::from_secs(10)),
        history: &history,
        url: c.url(0),
        admin: admin.clone(),
        seed: args.seed,
        n: 0,
    };
    for k in 0..workload::REGISTERS {
        setup.create_tenant(&json!({"id": workload::register_id(k),
            "name": workload::register_init(k), "tier": "pro"}))?;
    }
    setup.create_tenant(&json!({"id": workload::PROBE, "name": "probe-0", "tier": "pro"}))?;
    let exempt = |id: &str| json!({"id": id, "name": id, "tier": "pro", "overrides": {"bypass_limits": true}});
    let rl = setup.create_tenant(&exempt("ratelimit"))?;
    let ev = setup.create_tenant(&exempt("evaluations"))?;
    let key = |v: &Value| v["api_key"].as_str().unwrap_or("").to_string();

    let ctx = Arc::new(workload::Ctx {
        urls: c.urls(),
        admin: admin.clone(),
        rl_key: key(&rl),
        eval_key: key(&ev),
        history: history.clone(),
        stop: AtomicBool::new(false),
        seed: args.seed,
        start: started,
        down: (0..args.nodes).map(|_| AtomicBool::new(false)).collect(),
        only_up: rolling,
    });
    let run_start_ms = history.now_ms();
    let mut workers = Vec::new();
    for t in 0..3 {
        let ctx = ctx.clone();
        workers.push(std::thread::spawn(move || {
            workload::register_client(ctx, t)
        }));
    }
    for t in 0..2 {
        let ctx = ctx.clone();
        workers.push(std::thread::spawn(move || {
            workload::ratelimit_client(ctx, t)
        }));
    }
    {
        let admin_ctx = ctx.clone();
        workers.push(std::thread::spawn(move || {
            workload::admin_client(admin_ctx)
        }));
        let eval_ctx = ctx.clone();
        workers.push(std::thread::spawn(move || workload::eval_client(eval_ctx)));
        let probe_ctx = ctx.clone();
        workers.push(std::thread::spawn(move || {
            workload::probe_client(probe_ctx)
        }));
    }
    // Stops and joins the workers on every path out of here.
    struct StopGuard(Arc<workload::Ctx>, Vec<std::thread::JoinHandle<()>>);
    impl Drop for StopGuard {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::Relaxed);
            for w in self.1.drain(..) {
                let _ = w.join();
            }
        }
    }
    let mut guard = StopGuard(ctx.clone(), workers);

    let warmup = Duration::from_secs(3);
    let plan = nemesis::plan(&args.scenario, args.seed, args.nodes, warmup, args.duration);
    let end_ms = run_start_ms + args.duration.as_millis() as f64;
    let mut faults = Vec::new();
    for p in &plan {
        let at = run_start_ms + p.at_ms as f64;
        while history.now_ms() < at {
            std::thread::sleep(Duration::from_millis(20));
        }
        c.check_alive()?;
        let f = nemesis::inject(&mut c, &history, p, &ctx.down)?;
        println!(
            "  {:>5.1}s {} {}: healed at {:.1}s, converged {}",
            f.start_ms / 1000.0,
            f.kind,
            f.targets(),
            f.heal_ms / 1000.0,
            f.converged_ms
                .map_or("NOT".to_string(), |t| format!("at {:.1}s", t / 1000.0))
        );
        faults.push(f);
    }
    while history.now_ms() < end_ms {
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.stop.store(true, Ordering::Relaxed);
    for w in guard.1.drain(..) {
        let _ = w.join();
    }
    drop(guard);
    let workload_end_ms = history.now_ms();

    // Final convergence, including the audit head.
    let t = Instant::now();
    let final_conv = c
        .wait_converged(nemesis::CONVERGE_BOUND, true)
        .map(|conv| {
            println!(
                "final convergence: leader n{}, audit head {}",
                conv.leader + 1,
                conv.head_hash
            );
            t.elapsed().as_secs_f64()
        })
        .map_err(|e| format!("{e:#}"));
    let ops = history.snapshot();
    let evals: Vec<(String, u64)> = ops
        .iter()
        .filter(|o| o.kind == "evaluation.submit" && o.outcome == Outcome::Ok)
        .filter_map(|o| Some((o.value.clone()?, o.detail["total"].as_u64()?)))
        .collect();
    let urls = c.urls();
    let mut checks = vec![
        checks::linearizability(&ops),
        checks::acked_writes(&urls, &admin, &ops),
    ];
    let (ev_check, _) = checks::evaluations(&urls, &ctx.eval_key, &evals, Duration::from_secs(60));
    // The audit after the evaluations finished (their completions are audited).
    let _ = c.wait_converged(Duration::from_secs(10), true);
    checks.push(checks::audit(&urls, &admin, &ops, &evals));
    checks.push(ev_check);
    checks.push(checks::ratelimit(&ops, &faults));
    if rolling {
        checks.push(checks::server_errors(&ops));
    }
    checks.push(checks::convergence(
        &faults,
        &final_conv,
        nemesis::CONVERGE_BOUND,
    ));
    let passed = checks.iter().all(|c| c.ok);

    let bins = report::bins(&ops, workload_end_ms);
    let gaps = report::gaps(&ops, &faults);
    let title = format!(
        "colony-chaos {} seed {}: {} nodes, {} — {}",
        args.scenario,
        args.seed,
        args.nodes,
        humantime::format_duration(args.duration),
        if passed { "PASS" } else { "FAIL" }
    );
    let header = format!(
        "\n{title}\nworkload {:.1}s..{:.1}s, {} operations, total run {:.1} s",
        run_start_ms / 1000.0,
        workload_end_ms / 1000.0,
        ops.len(),
        started.elapsed().as_secs_f64()
    );
    print!(
        "{}",
        report::summary(&ops, &faults, &gaps, &checks, &header)
    );
    let report = json!({
        "scenario": args.scenario,
        "seed": args.seed,
        "nodes": args.nodes,
        "upgrade_to": upgrade_to,
        "net": args.net,
        "duration_s": args.duration.as_secs_f64(),
        "passed": passed,
        "total_run_s": started.elapsed().as_secs_f64(),
        "started_unix_ms": started_unix_ms,
        "node_ids": c.ids(),
        "plan": plan,
        "faults": faults,
        "write_gaps": gaps.iter().map(|g| json!({"fault": g.fault, "kind": g.kind, "from_ms": g.from_ms, "to_ms": g.to_ms, "secs": g.secs()})).collect::<Vec<_>>(),
        "final_convergence_s": final_conv.as_ref().ok(),
        "checks": checks,
        "throughput": bins,
        "history": ops,
    });
    std::fs::write(&args.report, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.report.display()))?;
    std::fs::write(&args.svg, report::svg(&bins, &faults, &gaps, &title))
        .with_context(|| format!("writing {}", args.svg.display()))?;
    println!(
        "\nreport: {}  timeline: {}  result: {}",
        args.report.display(),
        args.svg.display(),
        if passed { "PASS" } else { "FAIL" }
    );
    Ok(passed)
}
