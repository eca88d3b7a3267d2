//! Tenant tier limits on the API: every tenant request is charged to its tenant's tier
//! buckets before it runs; responses carry the IETF RateLimit fields; 429s name the
//! violated policy.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{eventually, Cluster, Node, NodeOptions};
use serde_json::{json, Value};
use std::time::Duration;

fn tier(node: &Node, name: &str, limits: Value, weights: Value) {
    let r = node.admin(
        "POST",
        "/v1/tiers",
        &json!({"name": name, "limits": limits, "endpoint_weights": weights}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

fn tenant(node: &Node, id: &str, tier: &str, overrides: Value) -> String {
    let r = node.admin(
        "POST",
        "/v1/tenants",
        &json!({"id": id, "name": id, "tier": tier, "overrides": overrides}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["api_key"].as_str().unwrap().to_string()
}

fn per_min(limit: u64) -> Value {
    json!([{"limit": limit, "window_secs": 60}])
}

/// The `r` of a `RateLimit` value like `"t5-60s";r=3;t=60`, with its policy name.
fn remaining(value: &str) -> (String, u64) {
    let mut parts = value.split(';');
    let name = parts.next().unwrap().trim_matches('"').to_string();
    let r = parts
        .find_map(|p| p.strip_prefix("r="))
        .unwrap()
        .parse()
        .unwrap();
    (name, r)
}

#[test]
fn the_sixth_request_of_a_5_per_minute_tier_gets_a_429_naming_the_policy() {
    let node = Node::start(harness::temp_dir().path());
    tier(&node, "t5", per_min(5), json!({}));
    let key = tenant(&node, "acme", "t5", json!({}));
    for i in 0..5u64 {
        let r = node.get("/v1/whoami", Some(&key));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("ratelimit-policy"), Some(r#""t5-60s";q=5;w=60"#));
        let (name, left) = remaining(r.header("ratelimit").unwrap());
        assert_eq!((name.as_str(), left), ("t5-60s", 4 - i), "counts down");
    }
    let r = node.get("/v1/whoami", Some(&key));
    let p = r.problem(429);
    assert_eq!(p["type"], "urn:colony:problem:too-many-requests");
    assert_eq!(p["policy"], "t5-60s");
    assert!(p["detail"].as_str().unwrap().contains("t5-60s"), "{p}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    // The sliding window forgets a hit between 60 s and 60 s + one sub-window (3 s) after it.
    assert!((1..=64).contains(&retry), "Retry-After {retry}");
    assert_eq!(p["retry_after_secs"], retry);
    assert_eq!(r.header("ratelimit-policy"), Some(r#""t5-60s";q=5;w=60"#));
    assert_eq!(remaining(r.header("ratelimit").unwrap()).1, 0);

    // Admin endpoints are not tenant requests: never limited, no RateLimit fields.
    let r = node.admin_get("/v1/tenants/acme");
    assert_eq!(r.status, 200);
    assert!(r.header("ratelimit").is_none());
    // Bad credentials are answered before any limit is charged.
    node.get("/v1/whoami", Some("nope")).problem(401);
}

#[test]
fn endpoint_weights_charge_their_cost_and_rejections_consume_no_other_limit() {
    let node = Node::start(harness::temp_dir().path());
    // whoami costs 3; ratelimit.check is unlisted and costs 1.
    tier(&node, "heavy", per_min(10), json!({"whoami": 3}));
    let key = tenant(&node, "heavy-co", "heavy", json!({}));
    for left in [7, 4, 1] {
        let r = node.get("/v1/whoami", Some(&key));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(remaining(r.header("ratelimit").unwrap()).1, left);
    }
    // 1 unit left: a whoami (3) does not fit, and is not charged.
    let r = node.get("/v1/whoami", Some(&key));
    assert_eq!(r.problem(429)["policy"], "heavy-60s");
    let peek = json!({"requests": [{"name": "n", "key": "k", "hits": 0, "limit": 1, "duration_ms": 1000}]});
    let r = node.call("POST", "/v1/ratelimit/check", Some(&key), Some(&peek));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(remaining(r.header("ratelimit").unwrap()).1, 0);

    // Two limits: a request refused by the minute limit must not spend the day limit.
    tier(
        &node,
        "two",
        json!([{"limit": 3, "window_secs": 60}, {"limit": 10, "window_secs": 86400}]),
        json!({}),
    );
    let key = tenant(&node, "two-co", "two", json!({}));
    for _ in 0..3 {
        let r = node.get("/v1/whoami", Some(&key));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.header("ratelimit-policy"),
            Some(r#""two-60s";q=3;w=60, "two-86400s";q=10;w=86400"#)
        );
    }
    for _ in 0..5 {
        let r = node.get("/v1/whoami", Some(&key));
        assert_eq!(r.problem(429)["policy"], "two-60s");
    }
    // Drop the minute limit (an override): the day bucket is keyed by tenant and window,
    // so it keeps its count — 3 spent, not 8.
    let r = node.admin(
        "PATCH",
        "/v1/tenants/two-co",
        &json!({"overrides": {"limits": [{"limit": 10, "window_secs": 86400}]}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = node.get("/v1/whoami", Some(&key));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        remaining(r.header("ratelimit").unwrap()),
        ("custom-86400s".to_string(), 6)
    );
}

#[test]
fn a_bypass_tenant_is_never_limited() {
    let node = Node::start(harness::temp_dir().path());
    tier(&node, "t2", per_min(2), json!({}));
    let key = tenant(&node, "internal", "t2", json!({"bypass_limits": true}));
    for _ in 0..10 {
        let r = node.get("/v1/whoami", Some(&key));
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.header("ratelimit").is_none());
        assert_eq!(r.json["effective"]["bypass_limits"], true);
    }
    // Turning the flag off (an audited tenant.update) brings the tier limits back.
    let r = node.admin(
        "PATCH",
        "/v1/tenants/internal",
        &json!({"overrides": {"bypass_limits": false}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let audit = node.admin_get("/v1/audit");
    assert!(audit.text.contains("internal"), "{}", audit.text);
    let statuses: Vec<u16> = (0..3)
        .map(|_| node.get("/v1/whoami", Some(&key)).status)
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
}

/// Waits until every node sees three active members, knows tenant `id` and the `probe`
/// key, and reaches every owner (a batch of peeks over many keys answers without errors).
/// `probe` is a tenant with a big tier, so waiting spends nothing of the tested tenant.
fn wait_cluster(c: &Cluster, id: &str, probe: &str) {
    c.wait_active(3);
    for i in 0..3 {
        eventually(Duration::from_secs(30), "tenants replicated", || {
            (c.node(i).admin_get(&format!("/v1/tenants/{id}")).status == 200
                && c.node(i).get("/v1/whoami", Some(probe)).status == 200)
                .then_some(())
        });
    }
    c.wait_routable(probe);
}

#[test]
fn a_tier_limit_is_exact_across_a_3_node_cluster() {
    let c = Cluster::start(3, NodeOptions::default());
    let n0 = c.node(0);
    tier(n0, "t20", per_min(20), json!({}));
    let key = tenant(n0, "spread", "t20", json!({}));
    let probe = tenant(n0, "probe", "enterprise", json!({}));
    wait_cluster(&c, "spread", &probe);
    let statuses: Vec<u16> = (0..30)
        .map(|i| c.node(i % 3).get("/v1/whoami", Some(&key)).status)
        .collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, limited), (20, 10), "{statuses:?}");
}

#[test]
fn concurrency_is_limited_cluster_wide_and_slots_come_back() {
    let c = Cluster::start(
        3,
        NodeOptions {
            sets: vec!["cluster.fault_injection=true".into()],
            ..NodeOptions::default()
        },
    );
    let n0 = c.node(0);
    let r = n0.admin(
        "POST",
        "/v1/tiers",
        &json!({"name": "c2", "limits": per_min(1000), "concurrency": 2}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let key = tenant(n0, "busy", "c2", json!({}));
    let probe = tenant(n0, "probe", "enterprise", json!({}));
    wait_cluster(&c, "busy", &probe);

    // Two slow requests through nodes 0 and 1 take both slots; a third request through
    // node 2 is refused: the leases live on the tenant's owner, whichever node is asked.
    let (u0, u1) = (c.node(0).url.clone(), c.node(1).url.clone());
    let slow: Vec<_> = [u0, u1]
        .into_iter()
        .map(|url| {
            let key = key.clone();
            std::thread::spawn(move || {
                ureq::post(&format!("{url}/v1/testing/sleep"))
                    .set("authorization", &format!("Bearer {key}"))
                    .timeout(Duration::from_secs(15))
                    .send_json(json!({"ms": 2000}))
                    .map(|r| r.status())
                    .unwrap_or_else(|e| match e {
                        ureq::Error::Status(s, _) => s,
                        other => panic!("{other}"),
                    })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let r = c.node(2).get("/v1/whoami", Some(&key));
    let p = r.problem(429);
    assert_eq!(p["policy"], "c2-concurrency");
    assert!(p["detail"].as_str().unwrap().contains("2 of 2"), "{p}");
    assert_eq!(r.header("retry-after"), Some("1"));
    for t in slow {
        assert_eq!(t.join().unwrap(), 200);
    }
    // Released when the handlers returned.
    eventually(Duration::from_secs(5), "slots released", || {
        (c.node(2).get("/v1/whoami", Some(&key)).status == 200).then_some(())
    });
    // A handler that fails releases its slot too: more failures than slots, no 429.
    for i in 0..5 {
        let r = c.node(i % 3).call(
            "POST",
            "/v1/testing/sleep",
            Some(&key),
            Some(&json!({"ms": 999_999})),
        );
        r.problem(422);
        // The release is sent as the response goes out; give it a moment to land.
        std::thread::sleep(Duration::from_millis(50));
    }
}
