//! Evaluations on a 3-node cluster: the node running an evaluation is killed (or drained)
//! halfway; the leader reassigns it with a new epoch and another node finishes it from the
//! last checkpoint, with every result recorded exactly once and the same totals and cost
//! as a run that was never interrupted.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{eventually, Cluster, Node, NodeOptions};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const CASES: usize = 2000;

/// 2000 cases with distinct prompts (so no response is served from a cache), answered by
/// the deterministic mock model in 10 ms each, 8 at a time.
fn spec() -> Value {
    let cases: Vec<Value> = (0..CASES)
        .map(|i| json!({"vars": {"q": format!("question {i} about item-{}", i * 7)}, "reference": format!("question {i} about item-{}", i * 7)}))
        .collect();
    json!({
        "providers": [{"id": "mock", "kind": "builtin", "model": "mock", "params": {"latency_ms": 10}}],
        "prompt": "{{q}}",
        "cases": cases,
        "scorers": [{"type": "exact_match"}, {"type": "token_f1"}],
        "concurrency": 8,
    })
}

fn get(node: &Node, key: &str, path: &str) -> Value {
    eventually(Duration::from_secs(15), path, || try_get(node, key, path))
}

/// A GET while nodes fail: `None` for a refusal (e.g. 503 while the tenant's owner node is
/// being declared down: tenant limits fail closed), so a poll just tries again.
fn try_get(node: &Node, key: &str, path: &str) -> Option<Value> {
    let r = node.call("GET", path, Some(key), None);
    (r.status == 200).then_some(r.json)
}

fn submit(node: &Node, key: &str) -> String {
    let r = node.call("POST", "/v1/evaluations", Some(key), Some(&spec()));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["total"], CASES);
    r.json["id"].as_str().unwrap().to_string()
}

fn wait_done(node: &Node, key: &str, id: &str) -> Value {
    eventually(Duration::from_secs(120), "evaluation completed", || {
        let v = try_get(node, key, &format!("/v1/evaluations/{id}"))?;
        assert!(
            ["queued", "running", "completed"].contains(&v["status"].as_str().unwrap_or("")),
            "unexpected status: {}",
            v["status"]
        );
        (v["status"] == "completed").then_some(v)
    })
}

/// Every result, paged through; checks each work item appears exactly once.
fn all_results(node: &Node, key: &str, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/v1/evaluations/{id}/results?limit=1000&cursor={c}"),
            None => format!("/v1/evaluations/{id}/results?limit=1000"),
        };
        let page = get(node, key, &path);
        out.extend(page["results"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let keys: BTreeSet<(u64, String, u64)> = out
        .iter()
        .map(|r| {
            (
                r["case_index"].as_u64().unwrap(),
                r["provider_id"].as_str().unwrap().to_string(),
                r["repeat"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(out.len(), CASES, "one result per case");
    assert_eq!(keys.len(), CASES, "no case recorded twice");
    out
}

fn setup(c: &Cluster) -> String {
    let price = c.node(0).admin(
        "PUT",
        "/v1/pricing/mock",
        &json!({"input_per_1k_usd": 0.5, "output_per_1k_usd": 1.5}),
    );
    assert_eq!(price.status, 200, "{}", price.text);
    let key = c.enterprise_tenant("acme");
    c.wait_active(3);
    for i in 0..3 {
        eventually(Duration::from_secs(10), "tenant replicated", || {
            (c.node(i).get("/v1/whoami", Some(&key)).status == 200).then_some(())
        });
    }
    key
}

/// Runs the evaluation, interrupting its owner with `interrupt` once about a third is
/// done, then compares it with an uninterrupted run of the same spec.
fn interrupted_run_matches_a_clean_run(interrupt: impl FnOnce(&mut Cluster, usize)) {
    // No response cache: the clean run repeats the same prompts, and a node that answered
    // them in the first run would serve them from its cache at no cost.
    let mut c = Cluster::start(
        3,
        NodeOptions {
            sets: vec!["evaluations.cache=false".into()],
            ..Default::default()
        },
    );
    let key = setup(&c);
    let id = submit(c.node(0), &key);
    let ids: Vec<String> = (0..3).map(|i| c.node(i).id()).collect();
    let first = eventually(Duration::from_secs(60), "a third done", || {
        let v = try_get(c.node(0), &key, &format!("/v1/evaluations/{id}"))?;
        (v["progress"]["done"].as_u64().unwrap_or(0) >= (CASES / 3) as u64).then_some(v)
    });
    assert_eq!(first["status"], "running");
    let owner = ids
        .iter()
        .position(|n| first["owner"].as_str() == Some(n.as_str()))
        .unwrap();
    interrupt(&mut c, owner);
    let survivor = c.running()[0];
    let done = wait_done(c.node(survivor), &key, &id);
    assert_ne!(done["owner"], first["owner"], "another node finished it");
    assert!(
        done["epoch"].as_u64().unwrap() >= 2,
        "reassigned with a new epoch"
    );
    assert_eq!(done["progress"]["done"], CASES);
    assert_eq!(done["progress"]["failed"], 0);
    let results = all_results(c.node(survivor), &key, &id);

    // The same spec, never interrupted: the same outputs, tokens and cost.
    let clean_id = submit(c.node(survivor), &key);
    let clean = wait_done(c.node(survivor), &key, &clean_id);
    let clean_results = all_results(c.node(survivor), &key, &clean_id);
    assert_eq!(clean["progress"]["cached"], 0);
    assert_eq!(
        done["usage"], clean["usage"],
        "totals and cost equal a clean run"
    );
    assert!(done["usage"]["cost_usd"].as_f64().unwrap() > 0.0);
    let outputs = |rs: &[Value]| -> Vec<(u64, String)> {
        rs.iter()
            .map(|r| {
                (
                    r["case_index"].as_u64().unwrap(),
                    r["output"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(outputs(&results), outputs(&clean_results));
    let usage = get(c.node(survivor), &key, "/v1/usage");
    let cases: u64 = usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["models"].as_array().unwrap().iter())
        .map(|m| m["cases"].as_u64().unwrap())
        .sum();
    assert_eq!(cases, 2 * CASES as u64, "usage counts every case once");
    let audit = c
        .node(survivor)
        .admin_get("/v1/audit?action=evaluation.reassign&limit=100");
    let moves = audit.ok()["entries"].as_array().unwrap().len();
    assert!(moves >= 1, "the reassignment is audited");
    eprintln!(
        "interrupted at {} of {CASES} done; finished at epoch {} after {moves} reassignment(s)",
        first["progress"]["done"], done["epoch"]
    );
}

#[test]
fn kill_9_of_the_owner_mid_evaluation_loses_and_duplicates_nothing() {
    interrupted_run_matches_a_clean_run(|c, owner| c.kill9(owner));
}

#[test]
fn draining_the_owner_mid_evaluation_hands_it_over_at_a_checkpoint() {
    interrupted_run_matches_a_clean_run(|c, owner| {
        let status = c.terminate(owner, Duration::from_secs(30));
        assert!(status.success(), "drain exits 0: {status:?}");
    });
}
