//! `POST /v1/ratelimit/check` through the real binary: exact counts, peeks, per-item errors,
//! tenant isolation, and supervision (a panicking bucket actor is restarted, service goes on).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{eventually, temp_dir, Node, NodeOptions, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::time::Duration;

fn tenant(node: &Node, id: &str) -> String {
    node.create_tenant(id)
}

fn check(node: &Node, key: &str, items: Value) -> Value {
    let r = node.call(
        "POST",
        "/v1/ratelimit/check",
        Some(key),
        Some(&json!({ "requests": items })),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["responses"].clone()
}

fn hit(name: &str, key: &str) -> Value {
    json!({"name": name, "key": key, "hits": 1, "limit": 100, "duration_ms": 60_000, "algorithm": "token_bucket"})
}

#[test]
fn a_100_per_minute_bucket_admits_exactly_100_of_150() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let k = tenant(&node, "acme");
    let mut admitted = 0;
    // 150 hits in batches of 10, each batch spread over three buckets' worth of the same key.
    for _ in 0..15 {
        let items: Vec<Value> = (0..10).map(|_| hit("requests", "user-1")).collect();
        for r in check(&node, &k, json!(items)).as_array().unwrap() {
            if r["status"] == "under_limit" {
                admitted += 1;
            } else {
                assert_eq!(r["status"], "over_limit", "{r}");
                assert!(r["reset_after_ms"].as_u64().unwrap() > 0);
            }
        }
    }
    assert_eq!(admitted, 100);
    // Every algorithm is exact on one owner.
    for algo in ["leaky_bucket", "sliding_window"] {
        let items: Vec<Value> = (0..150)
            .map(|_| json!({"name": algo, "key": "k", "limit": 100, "duration_ms": 60_000, "algorithm": algo}))
            .collect();
        let r = check(&node, &k, json!(items));
        let under = r
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["status"] == "under_limit")
            .count();
        assert_eq!(under, 100, "{algo}");
    }
}

#[test]
fn peeks_per_item_errors_and_order() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let k = tenant(&node, "acme");
    let r = check(
        &node,
        &k,
        json!([
            {"name": "n", "key": "a", "hits": 3, "limit": 10, "duration_ms": 1000},
            {"name": "n", "key": "a", "hits": 0, "limit": 10, "duration_ms": 1000},
            {"name": "n", "key": "b", "hits": 1, "limit": 0, "duration_ms": 1000},
            {"name": "", "key": "c", "limit": 10, "duration_ms": 1000},
            {"name": "n", "key": "a", "hits": 0, "limit": 10, "duration_ms": 1000},
        ]),
    );
    assert_eq!(r[0]["remaining"], 7, "{r}");
    assert_eq!(r[1]["remaining"], 7, "a peek reports without charging: {r}");
    assert!(r[2]["error"].as_str().unwrap().contains("limit"), "{r}");
    assert!(r[3]["error"].as_str().unwrap().contains("name"), "{r}");
    assert_eq!(r[4]["remaining"], 7, "{r}");
    // Malformed bodies are whole-request problems pointing at the field.
    let bad = node.call(
        "POST",
        "/v1/ratelimit/check",
        Some(&k),
        Some(&json!({"requests": [{"name": "n", "key": "a", "limit": 1, "duration_ms": 1, "algorithm": "gcra"}]})),
    );
    assert_eq!(bad.problem(422)["pointer"], "/requests/0/algorithm");
    node.call(
        "POST",
        "/v1/ratelimit/check",
        Some(&k),
        Some(&json!({"requests": []})),
    )
    .problem(422);
    node.call(
        "POST",
        "/v1/ratelimit/check",
        None,
        Some(&json!({"requests": []})),
    )
    .problem(401);
    node.call(
        "POST",
        "/v1/ratelimit/check",
        Some(ADMIN_TOKEN),
        Some(&json!({"requests": []})),
    )
    .problem(401);
}

#[test]
fn tenants_never_share_buckets() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let a = tenant(&node, "tenant-a");
    let b = tenant(&node, "tenant-b");
    let exhaust: Vec<Value> = (0..100).map(|_| hit("api", "shared-key")).collect();
    let r = check(&node, &a, json!(exhaust));
    assert!(r
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["status"] == "under_limit"));
    assert_eq!(
        check(&node, &a, json!([hit("api", "shared-key")]))[0]["status"],
        "over_limit"
    );
    // B's bucket with the same name and key is untouched by A.
    let rb = check(&node, &b, json!([hit("api", "shared-key")]));
    assert_eq!(rb[0]["status"], "under_limit");
    assert_eq!(rb[0]["remaining"], 99);
}

#[test]
fn a_panicking_bucket_actor_is_restarted_and_service_continues() {
    let dir = temp_dir();
    let opts = NodeOptions {
        sets: vec!["cluster.fault_injection=true".into()],
        ..Default::default()
    };
    let node = Node::start_with(dir.path(), opts);
    let k = tenant(&node, "acme");
    assert_eq!(
        check(&node, &k, json!([hit("x", "y")]))[0]["status"],
        "under_limit"
    );
    let r = node.admin(
        "POST",
        "/v1/testing/panic",
        &json!({"target": "bucket_shards"}),
    );
    r.ok();
    eventually(
        Duration::from_secs(10),
        "service continues after the panic",
        || {
            let r = node.call(
                "POST",
                "/v1/ratelimit/check",
                Some(&k),
                Some(&json!({"requests": [hit("x", "z")]})),
            );
            (r.status == 200 && r.json["responses"][0]["status"] == "under_limit").then_some(())
        },
    );
    let metrics = node.get("/metrics", None).text;
    let restarts: u64 = metrics
        .lines()
        .find(|l| l.starts_with("colony_actor_restarts_total{supervisor=\"buckets\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(restarts >= 1, "restarts are counted:\n{metrics}");
    // Without fault injection the endpoint does not exist.
    let plain_dir = temp_dir();
    let plain = Node::start(plain_dir.path());
    plain
        .admin(
            "POST",
            "/v1/testing/panic",
            &json!({"target": "bucket_shards"}),
        )
        .problem(404);
}

/// A component by name from `/v1/cluster`'s `components`.
fn component(node: &Node, name: &str) -> Value {
    let v = node.admin_get("/v1/cluster").ok().clone();
    v["components"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no component {name} in {}", v["components"]))
}

#[test]
fn every_component_shows_its_state_and_a_shard_panic_shows_on_the_bucket_supervisor() {
    let dir = temp_dir();
    let opts = NodeOptions {
        sets: vec!["cluster.fault_injection=true".into()],
        ..Default::default()
    };
    let node = Node::start_with(dir.path(), opts);
    let v = node.admin_get("/v1/cluster").ok().clone();
    let names: Vec<&str> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "raft",
            "membership",
            "member_events",
            "voters",
            "actor_link",
            "buckets",
            "handoff",
            "evaluations",
            "evaluation_scheduler"
        ]
    );
    for c in v["components"].as_array().unwrap() {
        assert_eq!(c["status"], "running", "{c}");
        assert_eq!(
            (c["restarts"].as_u64(), c["panics"].as_u64()),
            (Some(0), Some(0)),
            "{c}"
        );
        assert!(c["last_error"].is_null(), "{c}");
    }
    let kinds = |name: &str| component(&node, name)["kind"].clone();
    assert_eq!(kinds("raft"), "fatal");
    assert_eq!(kinds("voters"), "task");
    assert_eq!(kinds("buckets"), "supervisor");
    assert_eq!(component(&node, "evaluations")["evaluations_running"], 0);

    let k = tenant(&node, "acme");
    let before = component(&node, "buckets");
    assert!(
        before["children"].as_u64() > Some(0),
        "every shard is alive: {before}"
    );
    check(
        &node,
        &k,
        json!([hit("a", "1"), hit("a", "2"), hit("a", "3")]),
    );
    let held = component(&node, "buckets")["buckets"].as_u64().unwrap();
    assert!(held >= 3, "three new buckets are held: {held}");

    node.admin(
        "POST",
        "/v1/testing/panic",
        &json!({"target": "bucket_shards"}),
    )
    .ok();
    let shards = before["children"].as_u64().unwrap();
    let after = eventually(Duration::from_secs(10), "the shards restarted", || {
        let c = component(&node, "buckets");
        (c["restarts"].as_u64() >= Some(shards) && c["children"].as_u64() == Some(shards))
            .then_some(c)
    });
    assert_eq!(after["status"], "running");
    assert!(after["panics"].as_u64() >= Some(shards), "{after}");
    assert_eq!(after["last_error"]["panic"], true, "{after}");
    assert!(
        after["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shard ")),
        "{after}"
    );
    // Restarted shards start empty.
    assert_eq!(component(&node, "buckets")["buckets"], 0);
    let metrics = node.get("/metrics", None).text;
    for line in [
        "colony_component_up{component=\"raft\"} 1",
        "colony_component_up{component=\"buckets\"} 1",
        "colony_buckets 0",
        "colony_evaluations_running 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("colony_component_restarts_total{component=\"buckets\"}")),
        "{metrics}"
    );
}
