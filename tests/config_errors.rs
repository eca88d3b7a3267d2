//! A bad configuration makes `colony` exit with code 2 and one message naming the key.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{run_to_exit, temp_dir};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(30);

#[track_caller]
fn assert_config_error(args: &[&str], env: &[(&str, &str)], key: &str) {
    let (code, stderr) = run_to_exit(args, env, WITHIN);
    assert_eq!(
        code,
        Some(2),
        "expected exit code 2 for {args:?}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("`{key}`")),
        "stderr should name the key `{key}`:\n{stderr}"
    );
}

#[test]
fn unknown_key_in_file() {
    let dir = temp_dir();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[http]\nlistn = \"127.0.0.1:0\"\n").unwrap();
    assert_config_error(
        &["node", "--config", file.to_str().unwrap()],
        &[],
        "http.listn",
    );
}

#[test]
fn unknown_section_and_wrong_type_in_file() {
    let dir = temp_dir();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[gossipp]\nlisten = \"x\"\n").unwrap();
    assert_config_error(&["--config", file.to_str().unwrap()], &[], "gossipp");
    std::fs::write(&file, "[http]\nmax_body_bytes = \"lots\"\n").unwrap();
    assert_config_error(
        &["--config", file.to_str().unwrap()],
        &[],
        "http.max_body_bytes",
    );
}

#[test]
fn invalid_toml_names_the_file() {
    let dir = temp_dir();
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, "[http\n").unwrap();
    let f = file.to_str().unwrap();
    assert_config_error(&["--config", f], &[], f);
}

#[test]
fn missing_config_file() {
    let (code, stderr) = run_to_exit(&["--config", "/nonexistent/colony.toml"], &[], WITHIN);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/colony.toml"), "{stderr}");
}

#[test]
fn bad_address_flag_and_env() {
    assert_config_error(&["--http", "localhost"], &[], "http.listen");
    assert_config_error(
        &[],
        &[("COLONY_HTTP_LISTEN", "nope:80:1")],
        "http.listen (from COLONY_HTTP_LISTEN)",
    );
}

#[test]
fn unknown_environment_variable() {
    assert_config_error(
        &[],
        &[("COLONY_HTTP_LISTN", "127.0.0.1:0")],
        "COLONY_HTTP_LISTN",
    );
}

#[test]
fn bad_set_and_relations() {
    assert_config_error(&["--set", "raft.heartbeat_ms=0"], &[], "raft.heartbeat_ms");
    assert_config_error(
        &["--set", "raft.election_timeout_min_ms=900"],
        &[],
        "raft.election_timeout_max_ms",
    );
    assert_config_error(&["--set", "nope"], &[], "nope");
    assert_config_error(&["--log-format", "xml"], &[], "log.format");
}

#[test]
fn port_clash() {
    let dir = temp_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_config_error(
        &["--data-dir", dir.path().to_str().unwrap(), "--http", &addr],
        &[],
        "http.listen",
    );
}

#[test]
fn unwritable_data_dir() {
    // A data dir below a regular file can never be created, whoever runs the test (even root).
    let dir = temp_dir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let data = file.join("data");
    assert_config_error(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
        ],
        &[],
        "data_dir",
    );
}

#[test]
fn short_admin_token() {
    let dir = temp_dir();
    assert_config_error(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
        ],
        &[("COLONY_ADMIN_TOKEN", "short")],
        "COLONY_ADMIN_TOKEN",
    );
}

#[test]
fn data_dir_in_use_by_another_node() {
    let dir = temp_dir();
    let _first = harness::Node::start(dir.path());
    assert_config_error(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--gossip",
            "127.0.0.1:0",
            "--raft",
            "127.0.0.1:0",
            // Every listener on port 0: the default 7947 may be taken on a busy machine.
            "--cluster",
            "127.0.0.1:0",
        ],
        &[],
        "data_dir",
    );
}

#[test]
fn a_cluster_needs_a_secret_and_valid_seeds() {
    assert_config_error(&["--seed", "127.0.0.1:7946"], &[], "cluster.secret");
    assert_config_error(&["--bootstrap"], &[], "cluster.secret");
    assert_config_error(
        &["--seed", "not-an-address"],
        &[(
            "COLONY_CLUSTER_SECRET",
            "7d2b9e4a1c6f8b3e5a0d7c2f9b4e1a6c8f3d5b0e7a2c9f4b1e6d8a3c5f0b7e2d",
        )],
        "cluster.seeds",
    );
    assert_config_error(&[], &[("COLONY_CLUSTER_SECRET", "short")], "cluster.secret");
}

#[test]
fn gossip_and_raft_port_clashes() {
    let dir = temp_dir();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gossip = udp.local_addr().unwrap().to_string();
    let d = dir.path().to_str().unwrap();
    assert_config_error(
        &[
            "--data-dir",
            d,
            "--http",
            "127.0.0.1:0",
            "--raft",
            "127.0.0.1:0",
            "--gossip",
            &gossip,
        ],
        &[],
        "gossip.listen",
    );
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let raft = tcp.local_addr().unwrap().to_string();
    assert_config_error(
        &[
            "--data-dir",
            d,
            "--http",
            "127.0.0.1:0",
            "--gossip",
            "127.0.0.1:0",
            "--raft",
            &raft,
        ],
        &[],
        "raft.listen",
    );
}
