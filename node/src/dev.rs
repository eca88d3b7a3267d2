//! `colony dev --nodes N`: a local cluster of N node processes for development.
//!
//! Node i gets HTTP base+i, gossip base+100+i, raft base+200+i and the actor transport
//! base+300+i on 127.0.0.1, data in
//! `<dir>/n<i>`. Node 1 bootstraps; every node lists all others as seeds. A random cluster
//! secret is shared through the environment; the admin token is written to
//! `<dir>/admin-token` (0600) unless `COLONY_ADMIN_TOKEN` is set. Unless `--no-tls`, a CA
//! (`<dir>/ca.key`) and a node certificate for 127.0.0.1 and localhost are made once in
//! `<dir>/certs` and every node runs with TLS on every listener. Ctrl-C or SIGTERM stops
//! all nodes gracefully.

use crate::cli::DevArgs;
use crate::datadir;
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long nodes get to exit after SIGTERM before they are killed: a drain's waits plus
/// the component stops add up to about 45 s at worst (as systemd, compose and k8s allow).
const STOP_GRACE: Duration = Duration::from_secs(60);

struct DevNode {
    name: String,
    child: Child,
}

/// Runs the dev cluster until Ctrl-C/SIGTERM.
pub fn run(args: &DevArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the colony binary")?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let token = admin_token(&args.dir)?;
    let secret = cluster_secret(&args.dir)?;
    let certs = if args.no_tls {
        None
    } else {
        Some(dev_certs(&args.dir)?)
    };
    let n = args.nodes;
    let mut nodes = Vec::new();
    println!(
        "colony dev: starting {n} node(s); data under {}",
        args.dir.display()
    );
    println!(
        "{:<4} {:<24} {:<22} {:<22} {:<22}",
        "node", "http", "gossip", "raft", "cluster"
    );
    for i in 1..=n {
        match start_node(args, &exe, i, &secret, &token, certs.as_deref()) {
            Ok(node) => nodes.push(node),
            Err(e) => {
                // The nodes already started must not outlive the dev command.
                stop_all(&mut nodes);
                return Err(e);
            }
        }
    }
    let token_hint = if std::env::var("COLONY_ADMIN_TOKEN").is_ok_and(|t| !t.is_empty()) {
        "COLONY_ADMIN_TOKEN".to_string()
    } else {
        format!("$(cat {})", datadir::admin_token_path(&args.dir).display())
    };
    println!("admin token: Authorization: Bearer {token_hint}");
    match &certs {
        Some(dir) => println!(
            "try: curl -s --cacert {} -H \"Authorization: Bearer {token_hint}\" https://127.0.0.1:{}/v1/cluster",
            dir.join(colony_tls::identity::CA_FILE).display(),
            dev_port(args, 0, 1)
        ),
        None => println!(
            "try: curl -s -H \"Authorization: Bearer {token_hint}\" http://127.0.0.1:{}/v1/cluster",
            dev_port(args, 0, 1)
        ),
    }
    println!("Ctrl-C stops every node.");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    runtime.block_on(wait_for_stop(&mut nodes));
    stop_all(&mut nodes);
    Ok(())
}

/// The port of node `i`'s listener at `offset` (0 HTTP, 100 gossip, 200 Raft, 300 actors).
fn dev_port(args: &DevArgs, offset: u16, i: u16) -> u16 {
    args.base_port + offset + i
}

/// The admin token: `COLONY_ADMIN_TOKEN`, else the one kept in the dev dir (made once).
fn admin_token(dir: &std::path::Path) -> anyhow::Result<String> {
    if let Ok(t) = std::env::var("COLONY_ADMIN_TOKEN") {
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let path = datadir::admin_token_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => {
            let t = colony_core::apikey::generate_admin_token();
            datadir::write_private(&path, &t)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(t)
        }
    }
}

/// The dev cluster's certificates directory: a CA (key in `<dir>/ca.key`) and one node
/// certificate for 127.0.0.1 and localhost that every dev node uses, made once.
fn dev_certs(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    use colony_tls::files::{write, CERT_MODE, KEY_MODE};
    use colony_tls::identity::{CA_FILE, NODE_CERT_FILE, NODE_KEY_FILE};
    let certs = dir.join("certs");
    let ca_key = dir.join("ca.key");
    if colony_tls::identity::NodeIdentity::load(&certs).is_ok() {
        return Ok(certs);
    }
    std::fs::create_dir_all(&certs).with_context(|| format!("creating {}", certs.display()))?;
    let ca = colony_tls::certs::create_ca("Colony dev CA", colony_tls::certs::CA_DAYS)?;
    let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
    let node = colony_tls::certs::create_node(
        &ca.cert_pem,
        &ca.key_pem,
        &hosts,
        colony_tls::certs::LEAF_DAYS,
    )?;
    let put = |path: std::path::PathBuf, text: &str, mode: u32| {
        write(&path, text.as_bytes(), mode, true)
            .with_context(|| format!("writing {}", path.display()))
    };
    put(ca_key, &ca.key_pem, KEY_MODE)?;
    put(certs.join(NODE_KEY_FILE), &node.key_pem, KEY_MODE)?;
    put(certs.join(NODE_CERT_FILE), &node.cert_pem, CERT_MODE)?;
    put(certs.join(CA_FILE), &ca.cert_pem, CERT_MODE)?;
    Ok(certs)
}

/// The dev cluster's secret, kept in the dev dir (made once).
fn cluster_secret(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("cluster-secret");
    match std::fs::read_to_string(&path) {
        // A secret file from an older version may be too weak for today's nodes.
        Ok(s) if crate::secrets::check_secret("cluster.secret", s.trim()).is_ok() => {
            Ok(s.trim().to_string())
        }
        _ => {
            let s = hex::encode(rand::random::<[u8; 24]>());
            datadir::write_private(&path, &s)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(s)
        }
    }
}

/// Starts node `i` of the dev cluster, seeded with every other one.
fn start_node(
    args: &DevArgs,
    exe: &std::path::Path,
    i: u16,
    secret: &str,
    token: &str,
    certs: Option<&std::path::Path>,
) -> anyhow::Result<DevNode> {
    let name = format!("n{i}");
    let addr = |offset: u16| format!("127.0.0.1:{}", dev_port(args, offset, i));
    let (http, gossip, raft, cluster) = (addr(0), addr(100), addr(200), addr(300));
    let scheme = if certs.is_some() { "https" } else { "http" };
    println!("{name:<4} {scheme}://{http:<17} {gossip:<22} {raft:<22} {cluster:<22}");
    let mut cmd = Command::new(exe);
    cmd.arg("node")
        .arg("--data-dir")
        .arg(args.dir.join(&name))
        .args(["--http", &http, "--gossip", &gossip, "--raft", &raft])
        .args(["--cluster", &cluster])
        .env("COLONY_CLUSTER_SECRET", secret)
        .env("COLONY_ADMIN_TOKEN", token)
        // A dev cluster calls local models (Ollama, vLLM, mock servers) on loopback,
        // which a node refuses by default; a value given to `colony dev` wins.
        .env(
            "COLONY_PROVIDERS_EGRESS_ALLOW",
            std::env::var("COLONY_PROVIDERS_EGRESS_ALLOW")
                .unwrap_or_else(|_| "127.0.0.0/8,::1/128".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for j in (1..=args.nodes).filter(|j| *j != i) {
        cmd.args(["--seed", &format!("127.0.0.1:{}", dev_port(args, 100, j))]);
    }
    if i == 1 {
        cmd.arg("--bootstrap");
    }
    if let Some(dir) = certs {
        cmd.arg("--certs-dir").arg(dir);
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    prefix_output(&name, &mut child);
    Ok(DevNode { name, child })
}

/// Forwards a child's output line by line with its name in front.
fn prefix_output(name: &str, child: &mut Child) {
    if let Some(out) = child.stdout.take() {
        let name = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("[{name}] {line}");
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        let name = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
            }
        });
    }
}

/// Returns on Ctrl-C/SIGTERM or when every node has exited.
async fn wait_for_stop(nodes: &mut [DevNode]) {
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let signal = crate::signals::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            s = &mut signal => {
                println!("colony dev: {s}, stopping all nodes");
                return;
            }
            _ = poll.tick() => {
                let mut running = 0;
                for node in nodes.iter_mut() {
                    match node.child.try_wait() {
                        Ok(None) => running += 1,
                        Ok(Some(status)) => {
                            // Report each exit once: keep the status by replacing nothing; a
                            // finished child keeps answering Some(status).
                            if status.code() != Some(0) {
                                eprintln!("colony dev: {} exited with {status}", node.name);
                            }
                        }
                        Err(e) => eprintln!("colony dev: cannot check {}: {e}", node.name),
                    }
                }
                if running == 0 {
                    println!("colony dev: every node has exited");
                    return;
                }
            }
        }
    }
}

/// SIGTERM to every node, then kill whatever is left after the grace period.
fn stop_all(nodes: &mut [DevNode]) {
    for node in nodes.iter_mut() {
        if let Ok(None) = node.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &node.child.id().to_string()])
                .status();
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for node in nodes.iter_mut() {
        loop {
            match node.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("colony dev: {} did not stop in time; killing it", node.name);
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    println!("colony dev: all nodes stopped");
}
