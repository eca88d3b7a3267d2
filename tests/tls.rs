//! TLS through the real binary: `colony certs` (files, modes, refusals), a node serving
//! its API over HTTPS (checked with `curl --cacert`: TLS 1.3, h2 by ALPN, HSTS, plain
//! HTTP refused), `/v1/cluster` and `/metrics` showing the certificate, rotation under
//! load with zero failed requests, and certificate directories a node refuses (exit 2
//! naming `tls.certs_dir`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{
    colony_bin, eventually, run_to_exit, temp_dir, Cluster, Node, NodeOptions, ADMIN_TOKEN,
};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs `colony certs ARGS`; (exit code, stdout, stderr).
fn certs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(colony_bin())
        .arg("certs")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run colony certs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dir_args<'a>(certs_dir: &'a str, ca_key: &'a str) -> Vec<&'a str> {
    vec!["--certs-dir", certs_dir, "--ca-key", ca_key]
}

/// A CA and a node certificate for 127.0.0.1 in `dir/certs`, the CA key beside it.
fn make_certs(dir: &Path, node_days: &str) -> (String, String) {
    let certs_dir = dir.join("certs").display().to_string();
    let ca_key = dir.join("ca.key").display().to_string();
    let (code, _, err) = certs(&[&["create-ca"][..], &dir_args(&certs_dir, &ca_key)].concat());
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = certs(
        &[
            &["create-node", "127.0.0.1", "localhost"][..],
            &dir_args(&certs_dir, &ca_key),
            &["--lifetime-days", node_days],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    (certs_dir, ca_key)
}

/// `curl` against the node; (HTTP status, headers and body as curl prints them with -i).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl (install it: apt-get install curl)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn start_tls_node(data: &Path, certs_dir: &str) -> Node {
    let opts = NodeOptions {
        sets: vec![
            format!("tls.certs_dir={certs_dir}"),
            "tls.reload_check_ms=200".into(),
        ],
        // The harness polls /readyz over plain HTTP; this test polls over HTTPS itself.
        no_wait_ready: true,
        ..NodeOptions::default()
    };
    let node = Node::start_with(data, opts);
    let ca = format!("{certs_dir}/ca.crt");
    let url = format!("https://{}/readyz", node.http_addr);
    eventually(Duration::from_secs(60), "the TLS node to be ready", || {
        let (code, text) = curl(&[
            "--cacert",
            &ca,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ]);
        (code == 0 && text.trim() == "200").then_some(())
    });
    node
}

fn admin_json(node: &Node, ca: &str, path: &str) -> Value {
    let url = format!("https://{}{path}", node.http_addr);
    let auth = format!("authorization: Bearer {ADMIN_TOKEN}");
    let (code, text) = curl(&["--cacert", ca, "-H", &auth, &url]);
    assert_eq!(code, 0, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn certs_are_created_with_safe_modes_and_existing_files_or_a_foreign_ca_key_are_refused() {
    let dir = temp_dir();
    let (certs_dir, ca_key) = make_certs(dir.path(), "30");
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ca_key), 0o600);
    assert_eq!(mode(&format!("{certs_dir}/node.key")), 0o600);
    assert_eq!(mode(&format!("{certs_dir}/node.crt")), 0o644);
    let (code, out, err) = certs(
        &[
            &["create-client", "alice"][..],
            &dir_args(&certs_dir, &ca_key),
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("client.alice.crt"), "{out}");
    assert_eq!(mode(&format!("{certs_dir}/client.alice.key")), 0o600);

    // An existing CA is kept: a second create-ca fails and changes nothing.
    let before = std::fs::read(&ca_key).unwrap();
    let (code, _, err) = certs(&[&["create-ca"][..], &dir_args(&certs_dir, &ca_key)].concat());
    assert_eq!(code, 1);
    assert!(
        err.contains("exists") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(&ca_key).unwrap(), before);

    // Another CA's key with this ca.crt: refused, no node certificate written.
    let other = dir.path().join("other");
    let other_key = dir.path().join("other.key").display().to_string();
    let other_dir = other.display().to_string();
    let (code, _, err) = certs(&[&["create-ca"][..], &dir_args(&other_dir, &other_key)].concat());
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = certs(
        &[
            &["create-node", "10.0.0.9", "--overwrite"][..],
            &dir_args(&certs_dir, &other_key),
        ]
        .concat(),
    );
    assert_eq!(code, 1);
    assert!(err.contains("does not belong"), "{err}");

    // Usage errors are exit 2 (clap): a node certificate needs a host.
    let (code, _, _) = certs(&[&["create-node"][..], &dir_args(&certs_dir, &ca_key)].concat());
    assert_eq!(code, 2);
}

#[test]
fn the_api_is_https_with_curl_cacert_h2_and_hsts_and_plain_http_fails() {
    let dir = temp_dir();
    let (certs_dir, _) = make_certs(dir.path(), "30");
    let node = start_tls_node(&dir.path().join("data"), &certs_dir);
    let ca = format!("{certs_dir}/ca.crt");
    let url = format!("https://{}/healthz", node.http_addr);

    let (code, text) = curl(&[
        "--cacert",
        &ca,
        "-i",
        "--http2",
        "-w",
        "\n%{http_version}",
        &url,
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{text}"
    );
    assert!(text.trim_end().ends_with('2'), "h2 by ALPN: {text}");
    let (code, text) = curl(&[
        "--cacert",
        &ca,
        "--http1.1",
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!((code, text.trim()), (0, "200"), "TLS 1.2 with HTTP/1.1");
    // localhost is in the certificate too.
    let port = node.http_addr.rsplit(':').next().unwrap();
    let (code, text) = curl(&[
        "--cacert",
        &ca,
        &format!("https://localhost:{port}/healthz"),
    ]);
    assert_eq!(code, 0, "{text}");

    // Without the CA, curl refuses the certificate; plain HTTP gets no answer.
    let (code, _) = curl(&[&url]);
    assert_ne!(code, 0, "the node's certificate is not publicly trusted");
    let (code, text) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/healthz", node.http_addr),
    ]);
    assert!(
        code != 0 || text.trim() != "200",
        "plain HTTP must not be served: {text}"
    );

    let cluster = admin_json(&node, &ca, "/v1/cluster");
    assert_eq!(cluster["listeners"]["http"], "tls", "{cluster}");
    let left = cluster["tls"]["node_cert_expires_in_s"].as_i64().unwrap();
    assert!(
        (29 * 86_400..=30 * 86_400 + 3_600).contains(&left),
        "{left}"
    );
    let (code, metrics) = curl(&[
        "--cacert",
        &ca,
        &format!("https://{}/metrics", node.http_addr),
    ]);
    assert_eq!(code, 0);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("colony_tls_certificate_expiry_seconds{certificate=\"node\"}"))
        .unwrap_or_else(|| panic!("no expiry metric in:\n{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value > 29.0 * 86_400.0, "{line}");
    assert!(
        metrics.contains("colony_tls_handshakes_total{listener=\"http\",outcome=\"completed\"}")
    );
}

#[test]
fn a_rotated_node_certificate_is_served_without_a_failed_request() {
    let dir = temp_dir();
    let (certs_dir, ca_key) = make_certs(dir.path(), "10");
    let node = start_tls_node(&dir.path().join("data"), &certs_dir);
    let ca = format!("{certs_dir}/ca.crt");
    let before = admin_json(&node, &ca, "/v1/cluster")["tls"]["node_cert_not_after"]
        .as_i64()
        .unwrap();

    // Steady load: new connections (one curl each) and keep-alive ones (several URLs
    // per curl) for the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (ca, url) = (ca.clone(), format!("https://{}/healthz", node.http_addr));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (code, text) = curl(&[
                    "--cacert",
                    &ca,
                    "-o",
                    "/dev/null",
                    "-o",
                    "/dev/null",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}\n",
                    &url,
                    &url,
                    &url,
                ]);
                let good = code == 0 && text.lines().filter(|l| *l == "200").count() == 3;
                let counter = if good { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                if !good {
                    eprintln!("failed during rotation: {code} {text}");
                }
            }
        })
    };
    eventually(Duration::from_secs(30), "load before the rotation", || {
        (ok.load(Ordering::Relaxed) >= 5).then_some(())
    });
    // The new pair, as an operator would roll it in (cp over the files), then SIGHUP.
    let (code, _, err) = certs(
        &[
            &[
                "create-node",
                "127.0.0.1",
                "localhost",
                "--overwrite",
                "--lifetime-days",
                "40",
            ][..],
            &["--certs-dir", &certs_dir, "--ca-key", &ca_key],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let _ = Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status();
    let after = eventually(
        Duration::from_secs(30),
        "the new certificate in /v1/cluster",
        || {
            let t = admin_json(&node, &ca, "/v1/cluster")["tls"]["node_cert_not_after"].as_i64()?;
            (t > before + 20 * 86_400).then_some(t)
        },
    );
    let served = ok.load(Ordering::Relaxed);
    eventually(Duration::from_secs(30), "load after the rotation", || {
        (ok.load(Ordering::Relaxed) >= served + 5).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the rotation"
    );
    assert!(after > before);
    // New connections get the new certificate: its expiry is what curl sees.
    let (code, text) = curl(&[
        "--cacert",
        &ca,
        "-v",
        "-o",
        "/dev/null",
        &format!("https://{}/healthz", node.http_addr),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(node.log_text().contains("loaded a new node certificate"));
}

#[test]
fn a_bad_certs_dir_exits_2_naming_the_key() {
    let dir = temp_dir();
    let data = dir.path().join("data").display().to_string();
    let missing = dir.path().join("nope").display().to_string();
    let (code, err) = run_to_exit(
        &["--data-dir", &data, "--certs-dir", &missing],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.certs_dir") && err.contains("ca.crt"),
        "{err}"
    );

    // A node certificate of another CA than ca.crt's.
    let (certs_dir, _) = make_certs(dir.path(), "30");
    let other = dir.path().join("other");
    let other_dir = other.display().to_string();
    let other_key = dir.path().join("other.key").display().to_string();
    assert_eq!(
        certs(&[&["create-ca"][..], &dir_args(&other_dir, &other_key)].concat()).0,
        0
    );
    std::fs::copy(format!("{certs_dir}/ca.crt"), other.join("ca.crt.cluster")).unwrap();
    assert_eq!(
        certs(
            &[
                &["create-node", "127.0.0.1"][..],
                &dir_args(&other_dir, &other_key)
            ]
            .concat()
        )
        .0,
        0
    );
    std::fs::rename(other.join("ca.crt.cluster"), other.join("ca.crt")).unwrap();
    let (code, err) = run_to_exit(
        &["--data-dir", &data, "--certs-dir", &other_dir],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.certs_dir") && err.contains("not a valid node certificate"),
        "{err}"
    );
}

/// Options of a TLS node with the certificates of `dir` (made by [`make_certs`]), whose
/// CA the harness's requests trust.
fn tls_opts(certs_dir: &str) -> NodeOptions {
    let ca = std::fs::read(format!("{certs_dir}/ca.crt")).unwrap();
    colony_nodeproc::http::trust_ca(&ca).unwrap();
    NodeOptions {
        certs_dir: Some(certs_dir.into()),
        ..NodeOptions::default()
    }
}

fn create(node: &Node, id: &str) -> bool {
    let r = node.admin(
        "POST",
        "/v1/tenants",
        &serde_json::json!({"id": id, "name": id}),
    );
    (200..300).contains(&r.status)
}

#[test]
fn a_three_node_tls_cluster_writes_through_any_node_survives_a_leader_kill_and_drains() {
    let dir = temp_dir();
    let (certs_dir, _) = make_certs(dir.path(), "30");
    let mut c = Cluster::start(3, tls_opts(&certs_dir));
    for i in 0..3 {
        assert!(c.node(i).url.starts_with("https://"), "{}", c.node(i).url);
        assert!(
            create(c.node(i), &format!("via-{i}")),
            "a write through node {i}"
        );
    }
    let view = c.node(0).admin_get("/v1/cluster").ok().clone();
    assert_eq!(view["listeners"]["raft"], "mutual tls", "{view}");
    assert_eq!(view["listeners"]["cluster"], "mutual tls", "{view}");

    // kill -9 of the leader: a survivor takes writes again.
    let old = c.leader(Duration::from_secs(10));
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    c.kill9(old);
    let mut n = 0;
    eventually(
        Duration::from_secs(30),
        "a write after the leader died",
        || {
            n += 1;
            create(c.node(survivors[n % 2]), &format!("after-{n}")).then_some(())
        },
    );
    c.restart(old);
    c.wait_converged(Duration::from_secs(30));

    // A drain passed from one node to another goes over HTTPS to the peer's API.
    let target = survivors[0];
    let target_id = c.node(target).id();
    let r = c.node(survivors[1]).admin(
        "POST",
        "/v1/cluster/drain",
        &serde_json::json!({"node_id": target_id}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let status = c.wait_exit(target, Duration::from_secs(60));
    assert!(status.success(), "the drained node exits 0: {status:?}");
    let other = survivors[1];
    eventually(Duration::from_secs(30), "writes after the drain", || {
        create(c.node(other), "after-drain").then_some(())
    });
}

#[test]
fn the_internal_port_refuses_plain_http_and_clients_without_a_node_certificate() {
    let dir = temp_dir();
    let (certs_dir, ca_key) = make_certs(dir.path(), "30");
    let c = Cluster::start(1, tls_opts(&certs_dir));
    let raft = c.node(0).raft_addr.clone();
    let ca = format!("{certs_dir}/ca.crt");
    // Plain HTTP: no HTTP answer at all.
    let (code, text) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        &format!("http://{raft}/raft/v1/vote"),
    ]);
    assert!(
        code != 0 || text.trim() == "000",
        "plain HTTP got an answer: {code} {text}"
    );
    // TLS without a client certificate: the handshake is refused.
    let (code, text) = curl(&[
        "--cacert",
        &ca,
        "-X",
        "POST",
        &format!("https://{raft}/raft/v1/vote"),
    ]);
    assert_ne!(code, 0, "no client certificate: {text}");
    // A client certificate (a person's, not a node's) is refused as well.
    assert_eq!(
        certs(
            &[
                &["create-client", "mallory"][..],
                &dir_args(&certs_dir, &ca_key)
            ]
            .concat()
        )
        .0,
        0
    );
    let (code, text) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &format!("{certs_dir}/client.mallory.crt"),
        "--key",
        &format!("{certs_dir}/client.mallory.key"),
        "-X",
        "POST",
        &format!("https://{raft}/raft/v1/vote"),
    ]);
    assert_ne!(code, 0, "a client certificate is not a node's: {text}");
    // The node's own certificate gets through TLS (then the request itself is judged).
    let (code, text) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &format!("{certs_dir}/node.crt"),
        "--key",
        &format!("{certs_dir}/node.key"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        &format!("https://{raft}/raft/v1/vote"),
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text.trim(),
        "400",
        "an undecodable vote is a 400 after mutual TLS"
    );
}

#[test]
fn a_node_with_another_cas_certificate_cannot_join_even_with_the_cluster_secret() {
    let dir = temp_dir();
    let (certs_dir, _) = make_certs(dir.path(), "30");
    let c = Cluster::start(1, tls_opts(&certs_dir));
    let other = temp_dir();
    let (other_certs, _) = make_certs(other.path(), "30");
    let mut opts = tls_opts(&other_certs);
    opts.seeds = vec![c.node(0).gossip_addr.clone()];
    opts.no_wait_ready = true;
    let data = temp_dir();
    let stranger = Node::start_with(data.path(), opts);
    // The leader tries to add it as a learner and fails the handshake: never a voter or
    // learner, never ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let says = |t: String| {
            t.lines()
                .filter(|l| l.contains("certificate") || l.contains("Certificate"))
                .map(|l| l.chars().take(300).collect::<String>())
                .next()
        };
        let (leader, theirs) = (says(c.node(0).log_text()), says(stranger.log_text()));
        if leader.is_some() || theirs.is_some() {
            eprintln!("why, in the logs: leader: {leader:?}; stranger: {theirs:?}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let tail = |t: String| t.lines().rev().take(30).collect::<Vec<_>>().join("\n");
            panic!(
                "no log line says why; leader:\n{}\nstranger:\n{}",
                tail(c.node(0).log_text()),
                tail(stranger.log_text())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let view = c.node(0).admin_get("/v1/cluster").ok().clone();
    let raft_members: Vec<Value> = view["raft"]["voters"]
        .as_array()
        .unwrap()
        .iter()
        .chain(view["raft"]["learners"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(
        raft_members.len(),
        1,
        "only the first node is in Raft: {view}"
    );
    assert_ne!(stranger.get("/readyz", None).status, 200);
}

#[test]
fn a_non_loopback_listener_without_tls_exits_2_unless_insecure() {
    let dir = temp_dir();
    let data = dir.path().join("data").display().to_string();
    // 0.0.0.0 is not loopback: refused before anything is bound.
    let (code, err) = run_to_exit(
        &["--data-dir", &data, "--http", "0.0.0.0:0"],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.certs_dir") && err.contains("http.listen") && err.contains("--insecure"),
        "{err}"
    );
    let (code, err) = run_to_exit(
        &["--data-dir", &data, "--gossip", "0.0.0.0:0"],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("gossip.listen"), "{err}");

    // With --insecure it starts (and serves plain HTTP on every interface).
    let opts = NodeOptions {
        sets: vec!["tls.insecure=true".into(), "http.listen=0.0.0.0:0".into()],
        no_wait_ready: true,
        ..NodeOptions::default()
    };
    let mut node = Node::start_with(&dir.path().join("insecure"), opts);
    let port = node.http_addr.rsplit(':').next().unwrap().to_string();
    eventually(
        Duration::from_secs(30),
        "the insecure node's /healthz",
        || {
            let (code, text) = curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://127.0.0.1:{port}/healthz"),
            ]);
            (code == 0 && text.trim() == "200").then_some(())
        },
    );
    assert!(node.is_running());
}

#[test]
fn a_credentials_ca_is_checked_stored_as_certificates_only_and_audited_by_fingerprint() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = node.create_tenant("acme");
    let ca = {
        let (certs_dir, _) = make_certs(dir.path(), "30");
        std::fs::read_to_string(format!("{certs_dir}/ca.crt")).unwrap()
    };
    let put = |ca_pem: &str| {
        node.call(
            "PUT",
            "/v1/credentials/private",
            Some(&key),
            Some(&serde_json::json!({
                "value": "sk-private-0123456789",
                "allowed_hosts": ["vllm.internal:443"],
                "ca_pem": ca_pem,
            })),
        )
    };
    // Not a certificate: 422 naming the field, the input not echoed.
    let bad = put("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    assert_eq!(bad.problem(422)["pointer"], "/ca_pem", "{}", bad.text);
    assert!(!bad.text.contains("not base64"), "{}", bad.text);
    // A private key pasted by mistake: refused, never stored.
    let key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    put(key_pem).problem(422);
    // Padding around the certificate (64 KiB of it, say) is not kept.
    let padded = format!("{}\n{ca}\n", "x".repeat(1000));
    let ok = put(&padded);
    assert_eq!(ok.status, 200, "{}", ok.text);
    let stored = ok.json["ca_pem"].as_str().unwrap();
    assert!(
        !stored.contains("xxxx") && stored.contains("BEGIN CERTIFICATE"),
        "{stored}"
    );
    // The change of trust is in the audit log, by fingerprint.
    let audit = node.admin_get("/v1/audit?limit=100");
    assert!(audit.text.contains("ca_pem_sha256"), "{}", audit.text);
    assert!(
        !audit.text.contains("BEGIN CERTIFICATE"),
        "the PEM itself is not audited"
    );
}

#[test]
fn without_tls_a_captured_internal_request_replayed_later_is_refused() {
    use colony_cluster::transport::request_auth::RequestAuth;
    use colony_cluster::transport::wire;
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let to = node.id();
    let url = format!("http://{}{}", node.raft_addr, wire::paths::READ_INDEX);
    // What a node sends (the harness knows the cluster secret), as captured on the wire.
    let auth = RequestAuth::new(harness::CLUSTER_SECRET);
    let body = wire::encode(1, &()).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let send = |header: &str, body: &[u8]| match ureq::post(&url)
        .set("content-type", wire::CONTENT_TYPE)
        .set(wire::AUTH_HEADER, header)
        .set(wire::TO_HEADER, &to)
        .send_bytes(body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    let captured = auth.sign(wire::paths::READ_INDEX, &to, &body, now_ms, [7; 16]);
    let (first, text) = send(&captured, &body);
    assert_ne!(first, 401, "the original request is authenticated: {text}");
    // The same bytes again: a replay.
    let (again, text) = send(&captured, &body);
    assert_eq!((again, text.as_str()), (401, "replayed request"));
    // Re-signed in the past (outside the window), or with another body: refused.
    let old = auth.sign(
        wire::paths::READ_INDEX,
        &to,
        &body,
        now_ms - 60_000,
        [8; 16],
    );
    assert_eq!(send(&old, &body).0, 401);
    let altered = wire::encode(2, &()).unwrap();
    assert_eq!(
        send(
            &auth.sign(wire::paths::READ_INDEX, &to, &body, now_ms, [9; 16]),
            &altered
        )
        .0,
        401
    );
    // The old fixed header (a hash of the secret, the same on every request) is gone.
    let (legacy, _) = send("3f0c0ffee", &body);
    assert_eq!(legacy, 401);
}

#[test]
fn a_node_certificate_cannot_speak_for_a_member_at_another_address() {
    use colony_cluster::transport::wire;
    let dir = temp_dir();
    let (certs_dir, ca_key) = make_certs(dir.path(), "30");
    let c = Cluster::start(1, tls_opts(&certs_dir));
    let node = c.node(0);
    let id: u64 = node.id().parse().unwrap();
    // A node certificate of the same CA, made for another host.
    let other = dir.path().join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(format!("{certs_dir}/ca.crt"), other.join("ca.crt")).unwrap();
    let other_dir = other.display().to_string();
    assert_eq!(
        certs(
            &[
                &["create-node", "10.9.9.9"][..],
                &dir_args(&other_dir, &ca_key)
            ]
            .concat()
        )
        .0,
        0
    );
    // A read-index request claiming to come from the member (itself, at 127.0.0.1).
    let body = dir.path().join("body");
    std::fs::write(&body, wire::encode(id, &()).unwrap()).unwrap();
    let url = format!("https://{}{}", node.raft_addr, wire::paths::READ_INDEX);
    let ask = |cert_dir: &str| {
        curl(&[
            "--cacert",
            &format!("{certs_dir}/ca.crt"),
            "--cert",
            &format!("{cert_dir}/node.crt"),
            "--key",
            &format!("{cert_dir}/node.key"),
            "-H",
            &format!("content-type: {}", wire::CONTENT_TYPE),
            "-H",
            &format!("{}: {id}", wire::TO_HEADER),
            "--data-binary",
            &format!("@{}", body.display()),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ])
    };
    let (code, status) = ask(&other_dir);
    assert_eq!(
        (code, status.trim()),
        (0, "403"),
        "another host's certificate"
    );
    let (code, status) = ask(&certs_dir);
    assert_eq!(code, 0);
    assert_ne!(
        status.trim(),
        "403",
        "the member's own certificate is taken"
    );
    assert!(node.log_text().contains("does not name node"));

    // The member's own certificate, but a vote that speaks for another candidate.
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(99, id + 1), None);
    std::fs::write(&body, wire::encode(id, &vote).unwrap()).unwrap();
    let url = format!("https://{}{}", node.raft_addr, wire::paths::VOTE);
    let (code, text) = curl(&[
        "--cacert",
        &format!("{certs_dir}/ca.crt"),
        "--cert",
        &format!("{certs_dir}/node.crt"),
        "--key",
        &format!("{certs_dir}/node.key"),
        "-H",
        &format!("content-type: {}", wire::CONTENT_TYPE),
        "-H",
        &format!("{}: {id}", wire::TO_HEADER),
        "--data-binary",
        &format!("@{}", body.display()),
        "-w",
        "\n%{http_code}",
        &url,
    ]);
    assert_eq!(code, 0);
    assert!(
        text.trim_end().ends_with("403") && text.contains("speaks for node"),
        "{text}"
    );
}

#[test]
fn an_admin_client_certificate_stands_for_the_admin_token_and_others_do_not() {
    let dir = temp_dir();
    let (certs_dir, ca_key) = make_certs(dir.path(), "30");
    for name in ["alice", "bob"] {
        let args = [&["create-client", name][..], &dir_args(&certs_dir, &ca_key)].concat();
        assert_eq!(certs(&args).0, 0);
    }
    let mut opts = tls_opts(&certs_dir);
    opts.sets.push("tls.admin_clients=alice".into());
    let c = Cluster::start(1, opts);
    let url = format!("https://{}/v1/cluster", c.node(0).http_addr);
    let ca = format!("{certs_dir}/ca.crt");
    let get = |client: Option<&str>| {
        let mut args = vec!["--cacert".to_string(), ca.clone()];
        if let Some(name) = client {
            args.extend([
                "--cert".into(),
                format!("{certs_dir}/client.{name}.crt"),
                "--key".into(),
                format!("{certs_dir}/client.{name}.key"),
            ]);
        }
        args.extend([
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
            url.clone(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, status) = curl(&args);
        assert_eq!(code, 0, "{status}");
        status.trim().to_string()
    };
    assert_eq!(
        get(Some("alice")),
        "200",
        "alice's certificate is the admin's"
    );
    assert_eq!(get(Some("bob")), "401", "bob is not an admin client");
    assert_eq!(get(None), "401", "no certificate, no token");
    // A client certificate of another CA fails the handshake.
    let other = temp_dir();
    let (other_certs, other_key) = make_certs(other.path(), "30");
    let args = [
        &["create-client", "alice"][..],
        &dir_args(&other_certs, &other_key),
    ]
    .concat();
    assert_eq!(certs(&args).0, 0);
    let (code, _) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &format!("{other_certs}/client.alice.crt"),
        "--key",
        &format!("{other_certs}/client.alice.key"),
        &url,
    ]);
    assert_ne!(code, 0, "another CA's alice is refused at the handshake");
}

#[test]
fn a_replayed_gossip_packet_is_dropped_and_counted() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let counter = |name: &str| -> u64 {
        let metrics = node.get("/metrics", None).text;
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("colony_cluster_events_total{{event=\"{name}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .map_or(0, |n| n as u64)
    };
    // A packet sealed with the cluster's key, as a member sends it, captured and sent again.
    let packet =
        colony_cluster::membership::seal_for_fuzz(harness::CLUSTER_SECRET.as_bytes(), b"x")
            .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let replayed_before = counter("gossip_packets_replayed");
    sock.send_to(&packet, &node.gossip_addr).unwrap();
    sock.send_to(&packet, &node.gossip_addr).unwrap();
    sock.send_to(&packet, &node.gossip_addr).unwrap();
    eventually(Duration::from_secs(10), "the replays counted", || {
        (counter("gossip_packets_replayed") >= replayed_before + 2).then_some(())
    });
    // A packet under another secret is not a replay: it does not open at all.
    let rejected_before = counter("gossip_packets_rejected");
    let forged =
        colony_cluster::membership::seal_for_fuzz(b"another secret entirely", b"x").unwrap();
    sock.send_to(&forged, &node.gossip_addr).unwrap();
    eventually(Duration::from_secs(10), "the forgery rejected", || {
        (counter("gossip_packets_rejected") > rejected_before).then_some(())
    });
}

#[test]
fn rotating_the_certificate_of_every_node_of_a_cluster_under_load_fails_no_request() {
    let dir = temp_dir();
    let (certs_dir, ca_key) = make_certs(dir.path(), "10");
    let c = Cluster::start(3, tls_opts(&certs_dir));
    let not_after = |i: usize| {
        c.node(i).admin_get("/v1/cluster").json["tls"]["node_cert_not_after"]
            .as_i64()
            .unwrap_or(0)
    };
    let before: Vec<i64> = (0..3).map(not_after).collect();
    // Writes through every node in turn (each forwarded to the leader over mutual TLS)
    // and reads, on new HTTPS connections, for the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let urls: Vec<String> = (0..3).map(|i| c.node(i).url.clone()).collect();
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let agent = match colony_nodeproc::http::tls_config() {
                Some(tls) => ureq::AgentBuilder::new().tls_config(tls).build(),
                None => ureq::agent(),
            };
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let url = &urls[(n % 3) as usize];
                let write = agent
                    .post(&format!("{url}/v1/tenants"))
                    .timeout(Duration::from_secs(15))
                    .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
                    .send_json(serde_json::json!({"id": format!("rot-{n}"), "name": "r"}));
                let read = agent
                    .get(&format!("{url}/v1/tenants/rot-{n}"))
                    .timeout(Duration::from_secs(15))
                    .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
                    .call();
                match (write, read) {
                    (Ok(_), Ok(_)) => ok.fetch_add(1, Ordering::Relaxed),
                    (w, r) => {
                        eprintln!("failed during rotation: {:?} / {:?}", w.err(), r.err());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    eventually(Duration::from_secs(30), "load before the rotation", || {
        (ok.load(Ordering::Relaxed) >= 10).then_some(())
    });
    let args = [
        &[
            "create-node",
            "127.0.0.1",
            "localhost",
            "--overwrite",
            "--lifetime-days",
            "40",
        ][..],
        &dir_args(&certs_dir, &ca_key),
    ]
    .concat();
    assert_eq!(certs(&args).0, 0);
    for i in 0..3 {
        let _ = Command::new("kill")
            .args(["-HUP", &c.node(i).pid().to_string()])
            .status();
    }
    eventually(
        Duration::from_secs(30),
        "every node on the new certificate",
        || {
            (0..3)
                .all(|i| not_after(i) > before[i] + 20 * 86_400)
                .then_some(())
        },
    );
    let served = ok.load(Ordering::Relaxed);
    eventually(Duration::from_secs(30), "load after the rotation", || {
        (ok.load(Ordering::Relaxed) >= served + 10).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("3-node rotation under load: {ok} write+read pairs, {failed} failed");
    assert_eq!(failed, 0, "requests failed during the rotation");
}
