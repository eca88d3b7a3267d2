//! One node end to end: the real binary, real HTTP, ephemeral ports.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{temp_dir, Node, NodeOptions, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn create_tenant(node: &Node, id: &str, tier: &str) -> (Value, String) {
    let r = node.admin(
        "POST",
        "/v1/tenants",
        &json!({"id": id, "name": format!("Tenant {id}"), "tier": tier}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.json["api_key"]
        .as_str()
        .expect("api_key shown once")
        .to_string();
    (r.json.clone(), key)
}

fn audit_actions(node: &Node) -> Vec<String> {
    let page = node.admin_get("/v1/audit?limit=1000");
    page.ok()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

fn verify(node: &Node) -> Value {
    node.admin_get("/v1/audit/verify").ok().clone()
}

#[test]
fn durability_after_kill_9() {
    let dir = temp_dir();
    let mut node = Node::start(dir.path());
    node.admin(
        "POST",
        "/v1/tiers",
        &json!({"name": "gold", "limits": [{"limit": 500, "window_secs": 60}]}),
    )
    .ok();
    let (tenant, key) = create_tenant(&node, "acme", "gold");
    assert_eq!(tenant["id"], "acme");
    assert_eq!(tenant["key"]["status"], "active");
    let issued = node.call("POST", "/v1/tenants/acme/keys", Some(ADMIN_TOKEN), None);
    assert_eq!(issued.status, 201, "{}", issued.text);
    let second_key = issued.json["api_key"].as_str().unwrap().to_string();
    // kill -9 right after the last 2xx.
    node.kill9();

    let node = Node::start(dir.path());
    let t = node.admin_get("/v1/tenants/acme");
    assert_eq!(t.ok()["tier"], "gold");
    assert_eq!(
        node.admin_get("/v1/tenants/acme/keys")
            .ok()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for k in [&key, &second_key] {
        let who = node.get("/v1/whoami", Some(k));
        assert_eq!(who.ok()["tenant"]["id"], "acme");
        assert_eq!(who.json["effective"]["limits"][0]["limit"], 500);
    }
    assert_eq!(
        audit_actions(&node),
        ["cluster.init", "tier.create", "tenant.create", "key.issue"]
    );
    let v = verify(&node);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries_checked"], 4);
}

#[test]
fn bad_input_gets_problems_and_changes_nothing() {
    let dir = temp_dir();
    let node = Node::start_with(
        dir.path(),
        NodeOptions {
            sets: vec!["http.max_body_bytes=2048".into()],
            ..Default::default()
        },
    );
    create_tenant(&node, "acme", "free");
    let tenants_before = node.admin_get("/v1/tenants").ok().clone();
    let verify_before = verify(&node);

    // Malformed JSON.
    let r = node.call_raw(
        "POST",
        "/v1/tenants",
        Some(ADMIN_TOKEN),
        Some("application/json"),
        b"{\"name\": ",
    );
    assert_eq!(r.problem(400)["type"], "urn:colony:problem:malformed-json");
    // Wrong type, with a pointer at the field.
    let r = node.admin(
        "POST",
        "/v1/tiers",
        &json!({"name": "x", "limits": [{"limit": "many", "window_secs": 1}]}),
    );
    assert_eq!(r.problem(422)["pointer"], "/limits/0/limit");
    // Unknown field.
    let r = node.admin(
        "POST",
        "/v1/tenants",
        &json!({"name": "n", "tier": "free", "colour": "red"}),
    );
    assert!(
        r.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{}",
        r.text
    );
    // Invalid value.
    let r = node.admin("POST", "/v1/tenants", &json!({"id": "Bad Id", "name": "n"}));
    assert_eq!(r.problem(422)["pointer"], "/id");
    let r = node.admin(
        "POST",
        "/v1/tiers",
        &json!({"name": "z", "limits": [{"limit": 0, "window_secs": 60}]}),
    );
    assert_eq!(r.problem(422)["pointer"], "/limits/0/limit");
    // Unknown tier and duplicate tenant.
    let r = node.admin(
        "POST",
        "/v1/tenants",
        &json!({"id": "other", "name": "n", "tier": "nope"}),
    );
    r.problem(404);
    let r = node.admin(
        "POST",
        "/v1/tenants",
        &json!({"id": "acme", "name": "again"}),
    );
    r.problem(409);
    // Oversize body.
    let big = json!({"name": "x".repeat(4096)});
    node.admin("POST", "/v1/tenants", &big).problem(413);
    // Wrong content type.
    node.call_raw(
        "POST",
        "/v1/tenants",
        Some(ADMIN_TOKEN),
        Some("text/plain"),
        b"{}",
    )
    .problem(415);
    // Missing, malformed and wrong tokens.
    let r = node.get("/v1/tenants", None);
    r.problem(401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Bearer")));
    node.get("/v1/tenants", Some("not-the-token-at-all"))
        .problem(401);
    node.request("GET", "/v1/tenants", None)
        .set("authorization", "Basic abc")
        .call()
        .map_or_else(
            |e| match e {
                ureq::Error::Status(s, _) => assert_eq!(s, 401),
                other => panic!("{other}"),
            },
            |r| panic!("expected 401, got {}", r.status()),
        );
    node.get("/v1/whoami", Some("colony_key_nope.deadbeef"))
        .problem(401);
    node.get("/v1/whoami", Some(ADMIN_TOKEN)).problem(401);
    // Unknown route, wrong method, bad query parameters.
    node.admin_get("/v1/nothing-here").problem(404);
    let r = node.call("DELETE", "/v1/audit", Some(ADMIN_TOKEN), None);
    r.problem(405);
    assert!(r.header("allow").is_some());
    assert_eq!(
        node.admin_get("/v1/audit?limit=abc").problem(400)["parameter"],
        "limit"
    );
    assert_eq!(
        node.admin_get("/v1/audit?since=yesterday").problem(400)["parameter"],
        "since"
    );
    node.admin_get("/v1/audit?cursor=zzz").problem(400);
    node.admin_get("/v1/tenants/ghost").problem(404);

    // Nothing changed, and the node still serves.
    assert_eq!(node.admin_get("/v1/tenants").ok(), &tenants_before);
    assert_eq!(verify(&node), verify_before);
    assert_eq!(node.get("/healthz", None).status, 200);
    create_tenant(&node, "still-works", "pro");
}

#[test]
fn generated_admin_token_is_private_and_a_different_env_token_is_reported() {
    let dir = temp_dir();
    let opts = NodeOptions {
        no_admin_token: true,
        ..Default::default()
    };
    let mut node = Node::start_with(dir.path(), opts);
    let path = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&path)
        .expect("admin-token file")
        .trim()
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(node.get("/v1/tenants", Some(&token)).status, 200);
    assert!(
        !node.log_text().contains(&token),
        "the admin token must never be logged"
    );
    node.kill9();

    // Restart with a different COLONY_ADMIN_TOKEN: the node says so; the cluster's token still works.
    let opts = NodeOptions {
        env: vec![(
            "COLONY_ADMIN_TOKEN".into(),
            "c4e8a1f7b3d9e5a2c6f0b8d4e1a7c3f9b5d2e6a0c8f4b1d7e3a9c5f2b6d0e8a4".into(),
        )],
        ..Default::default()
    };
    let node = Node::start_with(dir.path(), opts);
    // The line is logged before the node turns ready, but the harness reads the log on
    // another thread: poll rather than race it.
    harness::eventually(
        Duration::from_secs(10),
        "the mismatch is reported in the log",
        || {
            node.log_text()
                .contains("COLONY_ADMIN_TOKEN differs")
                .then_some(())
        },
    );
    assert_eq!(node.get("/v1/tenants", Some(&token)).status, 200);
    node.get("/v1/tenants", Some("a-different-token-123456"))
        .problem(401);
}

#[test]
fn key_rotation_grace_and_revocation() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let (tenant, old_key) = create_tenant(&node, "acme", "free");
    let old_id = tenant["key"]["id"].as_str().unwrap().to_string();
    let r = node.admin(
        "POST",
        &format!("/v1/tenants/acme/keys/{old_id}/rotate"),
        &json!({"grace_period_secs": 1}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let new_key = r.json["api_key"].as_str().unwrap().to_string();
    assert!(r.json["old"]["expires_at_ms"].is_u64());
    assert_eq!(node.get("/v1/whoami", Some(&new_key)).status, 200);
    // The old key works until the grace period ends, then gets 401.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = node.get("/v1/whoami", Some(&old_key)).status;
        if s == 401 {
            break;
        }
        assert_eq!(s, 200);
        assert!(
            Instant::now() < deadline,
            "old key still valid long after its grace period"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let listed = node.admin_get("/v1/tenants/acme/keys");
    let statuses: Vec<_> = listed
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap().to_string())
        .collect();
    assert!(
        statuses.contains(&"expired".to_string()) && statuses.contains(&"active".to_string()),
        "{statuses:?}"
    );
    assert!(
        !listed.text.contains("secret_hash"),
        "hashes are not served"
    );

    // Revoke: refused at once; revoking again is a no-op.
    let new_id = r.json["new"]["id"].as_str().unwrap();
    let rv = node.call(
        "DELETE",
        &format!("/v1/tenants/acme/keys/{new_id}"),
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(rv.ok()["status"], "revoked");
    let who = node.get("/v1/whoami", Some(&new_key));
    assert!(who.problem(401)["detail"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    node.call(
        "DELETE",
        &format!("/v1/tenants/acme/keys/{new_id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .ok();
    let actions = audit_actions(&node);
    assert_eq!(
        actions.iter().filter(|a| *a == "key.revoke").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(verify(&node)["ok"], true);
}

#[test]
fn tenants_crud_and_suspension() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let (_, key) = create_tenant(&node, "acme", "free");
    let r = node.admin(
        "PATCH",
        "/v1/tenants/acme",
        &json!({"tier": "pro", "overrides": {"concurrency": 3}}),
    );
    assert_eq!(r.ok()["tier"], "pro");
    let who = node.get("/v1/whoami", Some(&key));
    assert_eq!(who.ok()["effective"]["concurrency"], 3);
    assert_eq!(who.json["effective"]["limits"][0]["limit"], 1000);
    node.call("DELETE", "/v1/tiers/pro", Some(ADMIN_TOKEN), None)
        .problem(409);
    node.admin("PATCH", "/v1/tenants/acme", &json!({"status": "suspended"}))
        .ok();
    node.get("/v1/whoami", Some(&key)).problem(403);
    assert_eq!(
        node.admin_get("/v1/tenants?status=suspended")
            .ok()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        node.call("DELETE", "/v1/tenants/acme", Some(ADMIN_TOKEN), None)
            .status,
        204
    );
    node.get("/v1/whoami", Some(&key)).problem(401);
    node.admin_get("/v1/tenants/acme").problem(404);
    assert_eq!(
        node.call("DELETE", "/v1/tiers/pro", Some(ADMIN_TOKEN), None)
            .status,
        204
    );
    let r = node.admin(
        "PUT",
        "/v1/tiers/free",
        &json!({"limits": [{"limit": 50, "window_secs": 60}], "concurrency": 2}),
    );
    assert_eq!(r.ok()["limits"][0]["limit"], 50);
    node.admin(
        "PUT",
        "/v1/tiers/free",
        &json!({"name": "other", "limits": []}),
    )
    .problem(422);
    assert_eq!(
        audit_actions(&node),
        [
            "cluster.init",
            "tenant.create",
            "tenant.update",
            "tenant.update",
            "tenant.delete",
            "tier.delete",
            "tier.update"
        ]
    );
}

#[test]
fn audit_filters_and_cursor_pagination() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    for i in 0..7 {
        create_tenant(&node, &format!("t{i}"), "free");
    }
    node.admin("PATCH", "/v1/tenants/t3", &json!({"name": "renamed"}))
        .ok();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = node.admin_get(&format!(
            "/v1/audit?action=tenant.*&limit=3&cursor={cursor}"
        ));
        let body = page.ok();
        seen.extend(
            body["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, (2..=9).collect::<Vec<u64>>());
    let t3 = node.admin_get("/v1/audit?tenant=t3");
    let actions: Vec<_> = t3.ok()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(actions, [json!("tenant.create"), json!("tenant.update")]);
    let exact = node.admin_get("/v1/audit?action=tenant.update&principal=admin");
    assert_eq!(exact.ok()["entries"].as_array().unwrap().len(), 1);
    let none = node.admin_get("/v1/audit?principal=someone-else");
    assert_eq!(none.ok()["entries"].as_array().unwrap().len(), 0);
    // Time filters: everything is after 2020 and before 2100.
    let all = node.admin_get("/v1/audit?since=2020-01-01T00:00:00Z&until=4102444800000&limit=1000");
    assert_eq!(all.ok()["entries"].as_array().unwrap().len(), 9);
    let future = node.admin_get("/v1/audit?since=2100-01-01T00:00:00Z");
    assert_eq!(future.ok()["entries"].as_array().unwrap().len(), 0);
    // Entries carry the request id of the request that made them.
    let r = node
        .request("POST", "/v1/tenants", Some(ADMIN_TOKEN))
        .set("x-request-id", "trace-me-123")
        .set("content-type", "application/json")
        .send_string(r#"{"id":"traced","name":"Traced"}"#)
        .expect("create");
    assert_eq!(r.header("x-request-id"), Some("trace-me-123"));
    let e = node.admin_get("/v1/audit?tenant=traced");
    assert_eq!(e.ok()["entries"][0]["request_id"], "trace-me-123");
}

#[test]
fn request_ids_metrics_and_health() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let a = node.get("/healthz", None);
    let b = node.get("/healthz", None);
    assert_eq!(a.status, 200);
    assert_ne!(a.request_id, b.request_id, "generated request ids differ");
    assert!(a.request_id.as_ref().unwrap().len() >= 16);
    let r = node.get("/readyz", None);
    assert_eq!(r.ok()["status"], "ready");
    let cluster = node.admin_get("/v1/cluster");
    let c = cluster.ok();
    assert_eq!(c["members"].as_array().unwrap().len(), 1);
    assert_eq!(c["members"][0]["state"], "active");
    assert_eq!(c["raft"]["leader"], c["node_id"]);
    assert_eq!(c["raft"]["voters"].as_array().unwrap().len(), 1);
    node.get("/v1/cluster", None).problem(401);
    let m = node.get("/metrics", None);
    assert_eq!(m.status, 200);
    for name in [
        "colony_http_requests_total{",
        "colony_http_request_duration_seconds_bucket{",
        "colony_raft_index{kind=\"applied\"}",
        "colony_raft_is_leader 1",
        "colony_audit_entries 1",
        "colony_process_resident_memory_bytes",
    ] {
        assert!(m.text.contains(name), "missing {name} in:\n{}", m.text);
    }
    assert!(
        m.text.contains("route=\"/v1/cluster\""),
        "route templates label requests"
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = temp_dir();
    let mut node = Node::start(dir.path());
    create_tenant(&node, "acme", "free");
    let status = node.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    let text = node.log_text();
    assert!(
        text.contains("shutting down") && text.contains("storage flushed"),
        "{text}"
    );
    let node = Node::start(dir.path());
    node.admin_get("/v1/tenants/acme").ok();
}

#[test]
fn snapshots_and_log_purge_survive_restart() {
    let dir = temp_dir();
    let opts = NodeOptions {
        sets: vec![
            "raft.snapshot_after_logs=20".into(),
            "raft.logs_kept_after_snapshot=5".into(),
        ],
        ..Default::default()
    };
    let mut node = Node::start_with(dir.path(), opts.clone());
    for i in 0..60 {
        create_tenant(&node, &format!("t{i}"), "free");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = node.admin_get("/v1/cluster");
        let raft = &c.ok()["raft"];
        if raft["snapshot_index"].as_u64().unwrap_or(0) >= 20
            && raft["purged_index"].as_u64().unwrap_or(0) > 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot/purge happened: {raft}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    node.kill9();
    let node = Node::start_with(dir.path(), opts);
    assert_eq!(
        node.admin_get("/v1/tenants").ok().as_array().unwrap().len(),
        60
    );
    let v = verify(&node);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries_checked"], 61);
}

#[test]
fn tampering_with_a_stored_audit_entry_is_detected() {
    let dir = temp_dir();
    let mut node = Node::start(dir.path());
    for i in 0..4 {
        create_tenant(&node, &format!("t{i}"), "free");
    }
    assert_eq!(verify(&node)["ok"], true);
    node.terminate(Duration::from_secs(30));

    // Test-only access: rewrite entry 3 in the node's sled database while it is stopped.
    {
        let db = sled::open(dir.path().join("raft")).expect("open sled");
        let sm = colony_cluster::raft::state_machine::StateMachineStore::open(&db)
            .expect("open state machine");
        sm.tamper_audit_entry_for_test(3, |e| e.details = json!({"name": "forged"}));
        db.flush().expect("flush");
    }

    let node = Node::start(dir.path());
    let v = verify(&node);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad"]["seq"], 3, "{v}");
}

#[test]
fn model_prices_are_set_listed_deleted_and_audited() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let r = node.admin(
        "PUT",
        "/v1/pricing/meta-llama%2FLlama-3-8B",
        &json!({"input_per_1k_usd": 0.15, "output_per_1k_usd": 0.6}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "meta-llama/Llama-3-8B");
    let bad = node.admin(
        "PUT",
        "/v1/pricing/m",
        &json!({"input_per_1k_usd": -1, "output_per_1k_usd": 0.6}),
    );
    assert_eq!(bad.problem(422)["pointer"], "/input_per_1k_usd");
    let unknown_field = node.admin(
        "PUT",
        "/v1/pricing/m",
        &json!({"input_per_1k_usd": 1, "output_per_1k_usd": 1, "currency": "EUR"}),
    );
    unknown_field.problem(422);
    let list = node.admin_get("/v1/pricing");
    assert_eq!(
        list.ok().as_array().unwrap().len(),
        1,
        "bad input stored nothing"
    );
    let gone = node.call(
        "DELETE",
        "/v1/pricing/meta-llama%2FLlama-3-8B",
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(gone.status, 204, "{}", gone.text);
    node.call("DELETE", "/v1/pricing/nope", Some(ADMIN_TOKEN), None)
        .problem(404);
    let actions = audit_actions(&node);
    assert!(actions.iter().any(|a| a == "price.set"));
    assert!(actions.iter().any(|a| a == "price.delete"));
    assert_eq!(verify(&node)["ok"], true);
}
