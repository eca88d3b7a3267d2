//! `POST /v1/ratelimit/check` against a hostile tenant, through the real binary: a
//! `duration_ms` over `ratelimit.max_duration_ms` is refused for that item alone, and a
//! tenant with `ratelimit.max_buckets_per_tenant` live buckets on a node gets no new one
//! there, while its existing buckets and other tenants go on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{temp_dir, Node, NodeOptions};
use serde_json::{json, Value};

fn tenant(node: &Node, id: &str) -> String {
    node.create_tenant(id)
}

fn check(node: &Node, key: &str, items: Value) -> Vec<Value> {
    let r = node.call(
        "POST",
        "/v1/ratelimit/check",
        Some(key),
        Some(&json!({ "requests": items })),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["responses"].as_array().unwrap().clone()
}

fn item(key: &str, duration_ms: u64) -> Value {
    json!({"name": "n", "key": key, "hits": 1, "limit": 10, "duration_ms": duration_ms})
}

fn error(r: &Value) -> &str {
    r["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {r}"))
}

fn under_limit(r: &Value) {
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["status"], "under_limit", "{r}");
}

#[test]
fn a_duration_over_the_cap_is_refused_for_that_item_alone() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let k = tenant(&node, "acme");
    let r = check(
        &node,
        &k,
        json!([
            item("day", 86_400_000),
            item("day-and-a-ms", 86_400_001),
            item("forever", u64::MAX),
            item("minute", 60_000),
        ]),
    );
    under_limit(&r[0]);
    for refused in [&r[1], &r[2]] {
        let e = error(refused);
        assert!(
            e.contains("duration_ms")
                && e.contains("86400000")
                && e.contains("ratelimit.max_duration_ms"),
            "{e}"
        );
    }
    under_limit(&r[3]);
    // Nothing was created for the refused items: a peek answers as a new bucket would,
    // under a limit that is allowed.
    let peek = check(
        &node,
        &k,
        json!([{"name": "n", "key": "forever", "hits": 0, "limit": 10, "duration_ms": 1000}]),
    );
    assert_eq!(peek[0]["remaining"], 10, "{}", peek[0]);
}

#[test]
fn the_duration_cap_is_configurable() {
    let dir = temp_dir();
    let node = Node::start_with(
        dir.path(),
        NodeOptions {
            sets: vec!["ratelimit.max_duration_ms=1000".into()],
            ..NodeOptions::default()
        },
    );
    let k = tenant(&node, "acme");
    let r = check(&node, &k, json!([item("a", 1000), item("b", 1001)]));
    under_limit(&r[0]);
    let e = error(&r[1]);
    assert!(e.contains("at most 1000"), "{e}");
}

#[test]
fn a_tenant_at_its_live_bucket_cap_gets_no_new_bucket_while_others_do() {
    let dir = temp_dir();
    let node = Node::start_with(
        dir.path(),
        NodeOptions {
            sets: vec!["ratelimit.max_buckets_per_tenant=5".into()],
            ..NodeOptions::default()
        },
    );
    let a = tenant(&node, "tenant-a");
    let b = tenant(&node, "tenant-b");
    // Five buckets fit (the tenant's tier-limit buckets are not counted against it).
    let five: Vec<Value> = (0..5).map(|i| item(&format!("k{i}"), 60_000)).collect();
    for r in check(&node, &a, json!(five)) {
        under_limit(&r);
    }
    // The sixth is refused, naming the tenant and the setting; in the same batch an
    // existing bucket is still checked.
    let r = check(&node, &a, json!([item("k5", 60_000), item("k0", 60_000)]));
    let e = error(&r[0]);
    assert!(
        e.contains("tenant-a")
            && e.contains("5 live buckets")
            && e.contains("max_buckets_per_tenant"),
        "{e}"
    );
    under_limit(&r[1]);
    assert_eq!(r[1]["remaining"], 8, "{}", r[1]);
    // Refused again: a refusal creates nothing.
    error(&check(&node, &a, json!([item("k6", 60_000)]))[0]);
    // Another tenant is not held back: it gets its own five. (A batch's items run on
    // their shards in parallel, so which of the six is refused is not fixed.)
    let six: Vec<Value> = (0..6).map(|i| item(&format!("k{i}"), 60_000)).collect();
    let r = check(&node, &b, json!(six));
    let refused: Vec<&Value> = r.iter().filter(|x| x.get("error").is_some()).collect();
    assert_eq!(refused.len(), 1, "{r:?}");
    assert!(error(refused[0]).contains("tenant-b"), "{}", refused[0]);
    assert_eq!(
        r.iter().filter(|x| x["status"] == "under_limit").count(),
        5,
        "{r:?}"
    );
}
