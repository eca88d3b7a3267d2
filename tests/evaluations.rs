//! Evaluations on one node, end to end over real HTTP: builtin `echo` and `mock`
//! providers, spec validation, tenant isolation, cancel, monthly budgets, and a real
//! OpenAI-compatible server (started by the test) that rate-limits, fails, answers garbage
//! and runs out of quota.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{eventually, temp_dir, Node, NodeOptions};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest wait for an evaluation to reach a status.
const WAIT: Duration = Duration::from_secs(60);

/// Creates tenant `id` on the enterprise tier and returns its API key.
fn tenant(node: &Node, id: &str) -> String {
    node.create_tenant(id)
}

/// Submits `spec` as the tenant with `key`; asserts 202 and returns the answer.
#[track_caller]
fn submit(node: &Node, key: &str, spec: &Value) -> Value {
    let r = node.call("POST", "/v1/evaluations", Some(key), Some(spec));
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.json["id"].as_str().is_some_and(|id| !id.is_empty()));
    r.json.clone()
}

/// `GET /v1/evaluations/{id}` as the tenant; asserts 200.
#[track_caller]
fn get_eval(node: &Node, key: &str, id: &str) -> Value {
    node.evaluation(key, id)
}

/// Waits until the evaluation has one of `statuses` and returns it.
#[track_caller]
fn wait_status(node: &Node, key: &str, id: &str, statuses: &[&str]) -> Value {
    node.wait_evaluation(key, id, statuses, WAIT)
}

/// Every result of an evaluation, read page by page with `limit`.
fn all_results(node: &Node, key: &str, id: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<u64> = None;
    for _ in 0..10_000 {
        let path = match cursor {
            Some(c) => format!("/v1/evaluations/{id}/results?limit={limit}&cursor={c}"),
            None => format!("/v1/evaluations/{id}/results?limit={limit}"),
        };
        let page = node.get(&path, Some(key));
        let page = page.ok();
        let items = page["results"].as_array().unwrap();
        assert!(items.len() <= limit, "a page holds at most limit items");
        out.extend(items.iter().cloned());
        match page["next_cursor"].as_u64() {
            Some(c) => {
                assert_eq!(items.len(), limit, "only the last page is short");
                cursor = Some(c);
            }
            None => return out,
        }
    }
    panic!("results paging never ended");
}

/// The audit actions about evaluation `id`, oldest first.
fn eval_audit(node: &Node, id: &str) -> Vec<String> {
    node.admin_get("/v1/audit?limit=1000").ok()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"] == format!("evaluations/{id}"))
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

/// Every audit action (all resources).
fn all_audit_actions(node: &Node) -> Vec<String> {
    node.admin_get("/v1/audit?limit=1000").ok()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

/// The value of scorer `name` in a result.
#[track_caller]
fn score(result: &Value, name: &str) -> f64 {
    result["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scorer"] == name)
        .unwrap_or_else(|| panic!("no scorer {name} in {result}"))["value"]
        .as_f64()
        .unwrap()
}

/// The result of case `i` (first provider, repeat 0).
#[track_caller]
fn result_of(results: &[Value], i: u64) -> &Value {
    results
        .iter()
        .find(|r| r["case_index"] == i)
        .unwrap_or_else(|| panic!("no result for case {i}"))
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: expected {expected}, got {actual}"
    );
}

#[test]
fn echo_evaluation_runs_to_completion_with_hand_checked_scores_paging_and_exports() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let spec = json!({
        "providers": [{"id": "echo", "kind": "builtin", "model": "echo"}],
        "prompt": "{{answer}}",
        "cases": [
            {"vars": {"answer": "Paris"}, "reference": "Paris"},
            {"vars": {"answer": "Berlin"}, "reference": "Paris"},
            {"vars": {"answer": "the cat sat on the mat"}, "reference": "the cat sat on the mat"},
            {"vars": {"answer": "the cat sat"}, "reference": "the cat ran"},
            {"vars": {"answer": "Paris is lovely"}, "references": ["London", "Paris"]},
            {"vars": {"answer": "seven"}, "reference": "seven"},
            {"vars": {"answer": "eight"}, "reference": "nine"}
        ],
        "scorers": [
            {"type": "exact_match"},
            {"type": "token_f1"},
            {"type": "bleu"},
            {"type": "contains"}
        ],
        "concurrency": 2
    });
    let sub = submit(&node, &key, &spec);
    let id = sub["id"].as_str().unwrap().to_string();
    assert_eq!(sub["total"], 7);
    assert!(
        ["queued", "running"].contains(&sub["status"].as_str().unwrap()),
        "{sub}"
    );

    let done = wait_status(&node, &key, &id, &["completed"]);
    assert_eq!(done["progress"]["total"], 7, "{done}");
    assert_eq!(done["progress"]["done"], 7, "{done}");
    assert_eq!(done["progress"]["failed"], 0, "{done}");
    assert_eq!(done["spec"], spec, "the spec is kept as submitted");
    assert!(done["finished_at_ms"].as_u64().is_some(), "{done}");
    // Echo usage: whitespace words of prompt and answer.
    let words: u64 = [1, 1, 6, 3, 3, 1, 1].iter().sum();
    assert_eq!(done["usage"]["prompt_tokens"], words, "{done}");
    assert_eq!(done["usage"]["completion_tokens"], words, "{done}");

    // Aggregates: one provider, one entry per scorer.
    let agg = &done["aggregates"];
    let providers = agg["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 1, "{agg}");
    assert_eq!(providers[0]["provider_id"], "echo");
    assert_eq!(providers[0]["results"], 7);
    assert_eq!(providers[0]["errors"], 0);
    let scorers = agg["scorers"].as_array().unwrap();
    let names: Vec<&str> = scorers
        .iter()
        .map(|s| s["scorer"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["exact_match", "token_f1", "bleu", "contains"]);
    let exact = &scorers[0];
    assert_eq!(exact["n"], 7);
    // Exact matches: cases 0, 2 and 5.
    assert_eq!(exact["passed"], 3, "{exact}");
    assert_close(exact["mean"].as_f64().unwrap(), 3.0 / 7.0, "exact mean");
    assert!(done["comparisons"].is_array(), "{done}");

    // Paging: several page sizes all cover every item exactly once, in order.
    let full = all_results(&node, &key, &id, 1000);
    assert_eq!(full.len(), 7);
    for limit in [1, 2, 3, 7] {
        let paged = all_results(&node, &key, &id, limit);
        assert_eq!(paged, full, "limit {limit}");
    }
    let indexes: Vec<u64> = full
        .iter()
        .map(|r| r["case_index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5, 6]);
    let distinct: BTreeSet<u64> = indexes.iter().copied().collect();
    assert_eq!(distinct.len(), 7);
    node.get(&format!("/v1/evaluations/{id}/results?limit=0"), Some(&key))
        .problem(400);
    node.get(
        &format!("/v1/evaluations/{id}/results?format=xml"),
        Some(&key),
    )
    .problem(400);

    // Scores by hand.
    for r in &full {
        assert_eq!(r["provider_id"], "echo");
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
    }
    let r0 = result_of(&full, 0);
    assert_eq!(r0["output"], "Paris");
    assert_close(score(r0, "exact_match"), 1.0, "exact Paris/Paris");
    assert_close(score(r0, "token_f1"), 1.0, "f1 Paris/Paris");
    assert_close(score(r0, "contains"), 1.0, "contains Paris/Paris");
    assert_eq!(r0["passed"], true, "{r0}");
    let r1 = result_of(&full, 1);
    assert_eq!(r1["output"], "Berlin");
    for s in ["exact_match", "token_f1", "bleu", "contains"] {
        assert_close(score(r1, s), 0.0, &format!("{s} Berlin/Paris"));
    }
    assert_eq!(r1["passed"], false);
    assert_close(r1["weighted_score"].as_f64().unwrap(), 0.0, "weighted");
    let r2 = result_of(&full, 2);
    for s in ["exact_match", "token_f1", "bleu", "contains"] {
        assert_close(score(r2, s), 1.0, &format!("{s} identical sentence"));
    }
    assert_close(r2["weighted_score"].as_f64().unwrap(), 1.0, "weighted");
    let r3 = result_of(&full, 3);
    // SQuAD normalisation drops "the": {cat, sat} vs {cat, ran}: P = R = 1/2.
    assert_close(score(r3, "token_f1"), 0.5, "f1 cat sat/cat ran");
    assert_close(score(r3, "exact_match"), 0.0, "exact cat sat/cat ran");
    assert_close(score(r3, "contains"), 0.0, "contains cat sat/cat ran");
    let r4 = result_of(&full, 4);
    // Best reference "Paris": P = 1/3, R = 1, F1 = 1/2; contains any reference.
    assert_close(score(r4, "token_f1"), 0.5, "f1 against the best reference");
    assert_close(score(r4, "contains"), 1.0, "contains one of the references");
    assert_close(score(r4, "exact_match"), 0.0, "exact");

    // JSON Lines: one line per result, each a result.
    let r = node.get(
        &format!("/v1/evaluations/{id}/results?format=jsonl"),
        Some(&key),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.content_type.starts_with("application/x-ndjson"), "{r:?}");
    let lines: Vec<&str> = r.text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 7);
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut jsonl_idx: Vec<u64> = parsed
        .iter()
        .map(|v| v["case_index"].as_u64().unwrap())
        .collect();
    jsonl_idx.sort_unstable();
    assert_eq!(jsonl_idx, [0, 1, 2, 3, 4, 5, 6]);

    // CSV: fixed columns, then NAME and NAME.passed per scorer; one row per result.
    let r = node.get(
        &format!("/v1/evaluations/{id}/results?format=csv"),
        Some(&key),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.content_type.starts_with("text/csv"), "{r:?}");
    let rows: Vec<&str> = r.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 8, "header + 7 rows: {}", r.text);
    assert_eq!(
        rows[0],
        "case_index,repeat,provider_id,passed,weighted_score,latency_ms,prompt_tokens,\
         completion_tokens,cost_usd,cached,attempts,error,output,exact_match,exact_match.passed,\
         token_f1,token_f1.passed,bleu,bleu.passed,contains,contains.passed"
    );

    // Listed, also by status.
    let list = node.get("/v1/evaluations", Some(&key));
    let list = list.ok()["evaluations"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    let completed = node.get("/v1/evaluations?status=completed", Some(&key));
    assert_eq!(completed.ok()["evaluations"].as_array().unwrap().len(), 1);
    let running = node.get("/v1/evaluations?status=running", Some(&key));
    assert!(running.ok()["evaluations"].as_array().unwrap().is_empty());

    // Cancelling a completed evaluation is a no-op.
    let c = node.call(
        "POST",
        &format!("/v1/evaluations/{id}/cancel"),
        Some(&key),
        None,
    );
    assert_eq!(c.ok()["status"], "completed");

    // Audited: submitted, then completed, once each.
    let actions = eval_audit(&node, &id);
    assert_eq!(
        actions,
        ["evaluation.submit", "evaluation.complete"],
        "{actions:?}"
    );
    assert_eq!(node.admin_get("/v1/audit/verify").ok()["ok"], true);

    // Usage: the echo model's tokens today, at no cost (no price set).
    let usage = node.get("/v1/usage", Some(&key));
    let usage = usage.ok();
    let days = usage["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{usage}");
    let models = days[0]["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{usage}");
    assert_eq!(models[0]["model"], "echo");
    assert_eq!(models[0]["cases"], 7);
    assert_eq!(models[0]["prompt_tokens"], words);
    assert_close(usage["month_cost_usd"].as_f64().unwrap(), 0.0, "cost");
    assert!(usage["monthly_budget_usd"].is_null(), "{usage}");
}

/// A spec that passes validation; the bad ones below change one thing.
#[test]
fn exports_of_many_results_stream_every_result_once_in_item_order() {
    // 1234 results: the export is written 500 at a time, so this crosses two page ends.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let n = 1234;
    let spec = json!({
        "providers": [{"id": "echo", "kind": "builtin", "model": "echo"}],
        "prompt": "q {{i}}",
        "cases": (0..n).map(|i| json!({"vars": {"i": i}, "reference": format!("q {i}")})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}],
        "concurrency": 64
    });
    let id = submit(&node, &key, &spec)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = wait_status(&node, &key, &id, &["completed"]);
    assert_eq!(v["progress"]["done"], n, "{v}");

    let r = node.get(
        &format!("/v1/evaluations/{id}/results?format=jsonl"),
        Some(&key),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let idx: Vec<u64> = r
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["case_index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        idx,
        (0..n as u64).collect::<Vec<_>>(),
        "every result once, in order"
    );

    let r = node.get(
        &format!("/v1/evaluations/{id}/results?format=csv"),
        Some(&key),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let rows: Vec<&str> = r.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), n + 1, "one header, then a row per result");
    assert!(rows[0].starts_with("case_index,"), "{}", rows[0]);
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("case_index,")).count(),
        1
    );
    assert!(
        rows[n].starts_with(&format!("{},0,echo,true", n - 1)),
        "{}",
        rows[n]
    );
}

fn valid_spec() -> Value {
    json!({
        "providers": [{"id": "e", "kind": "builtin", "model": "echo"}],
        "prompt": "Q: {{q}}",
        "cases": [
            {"vars": {"q": "one"}, "reference": "one"},
            {"vars": {"q": "two"}, "reference": "two"}
        ],
        "scorers": [{"type": "exact_match"}]
    })
}

/// `valid_spec()` with the value at `pointer` set (created when absent).
fn with(pointer: &str, value: Value) -> Value {
    let mut body = valid_spec();
    if let Some(slot) = body.pointer_mut(pointer) {
        *slot = value;
        return body;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    body.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), value);
    body
}

#[test]
fn invalid_specs_are_422_with_a_pointer_and_nothing_is_stored() {
    let dir = temp_dir();
    let node = Node::start_with(
        dir.path(),
        NodeOptions {
            sets: vec!["evaluations.max_cases=3".into()],
            ..NodeOptions::default()
        },
    );
    let key = tenant(&node, "acme");
    let mut without_prompt = valid_spec();
    without_prompt.as_object_mut().unwrap().remove("prompt");
    let four_cases = with(
        "/cases",
        json!((0..4)
            .map(|i| json!({"vars": {"q": i}, "reference": "x"}))
            .collect::<Vec<_>>()),
    );
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown top-level field",
            with("/colour", json!("red")),
            "/colour",
        ),
        (
            "unknown provider param",
            with("/providers/0/params", json!({"temprature": 0.5})),
            "/providers/0/params/temprature",
        ),
        (
            "unknown case field",
            with("/cases/1/expected", json!("two")),
            "/cases/1/expected",
        ),
        (
            "unknown scorer type",
            with("/scorers/0", json!({"type": "meteor"})),
            "/scorers/0/type",
        ),
        (
            "bad regex",
            with(
                "/scorers/0",
                json!({"type": "regex", "pattern": "(unclosed"}),
            ),
            "/scorers/0/pattern",
        ),
        (
            "template var missing from a case",
            with("/cases/1/vars", json!({"question": "two"})),
            "/cases/1/vars",
        ),
        ("too many cases", four_cases, "/cases"),
        ("no prompt nor messages", without_prompt, "/prompt"),
        (
            "unknown builtin model",
            with("/providers/0/model", json!("gpt-4")),
            "/providers/0/model",
        ),
        (
            "openai without base_url",
            with(
                "/providers/0",
                json!({"id": "o", "kind": "openai", "model": "gpt"}),
            ),
            "/providers/0/base_url",
        ),
        (
            "concurrency 0",
            with("/concurrency", json!(0)),
            "/concurrency",
        ),
        ("wrong type", with("/repeat", json!("twice")), "/repeat"),
        (
            "threshold out of range",
            with("/scorers/0/threshold", json!(1.5)),
            "/scorers/0/threshold",
        ),
    ];
    for (what, body, pointer) in &cases {
        let r = node.call("POST", "/v1/evaluations", Some(&key), Some(body));
        let p = r.problem(422);
        assert_eq!(p["pointer"], *pointer, "{what}: {p}");
        let errors = p["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {p}"));
        assert!(!errors.is_empty(), "{what}: {p}");
        assert_eq!(errors[0]["pointer"], *pointer, "{what}: {p}");
        assert!(errors[0]["detail"].is_string(), "{what}: {p}");
    }

    // Several semantic errors are listed together; the first is the problem's pointer.
    let mut several = with("/concurrency", json!(0));
    several["providers"][0]["model"] = json!("nope");
    several["scorers"][0] = json!({"type": "regex", "pattern": "["});
    let r = node.call("POST", "/v1/evaluations", Some(&key), Some(&several));
    let p = r.problem(422);
    let pointers: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/providers/0/model", "/scorers/0/pattern", "/concurrency"],
        "{p}"
    );
    assert_eq!(p["pointer"], "/providers/0/model");

    // Nothing was stored or audited.
    let list = node.get("/v1/evaluations", Some(&key));
    assert!(
        list.ok()["evaluations"].as_array().unwrap().is_empty(),
        "{}",
        list.text
    );
    assert!(
        !all_audit_actions(&node)
            .iter()
            .any(|a| a.starts_with("evaluation.")),
        "rejected specs are not audited"
    );

    // The limit is inclusive: 3 cases are accepted.
    let three = with(
        "/cases",
        json!((0..3)
            .map(|i| json!({"vars": {"q": i}, "reference": "x"}))
            .collect::<Vec<_>>()),
    );
    let sub = submit(&node, &key, &three);
    assert_eq!(sub["total"], 3);
    let list = node.get("/v1/evaluations", Some(&key));
    assert_eq!(list.ok()["evaluations"].as_array().unwrap().len(), 1);
}

#[test]
fn tenants_never_see_each_others_evaluations_or_usage() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let a = tenant(&node, "tenant-a");
    let b = tenant(&node, "tenant-b");
    let spec = json!({
        "providers": [{"id": "e", "kind": "builtin", "model": "echo"}],
        "prompt": "say {{w}}",
        "cases": [{"vars": {"w": "hi"}, "reference": "say hi"}, {"vars": {"w": "yo"}, "reference": "say yo"}],
        "scorers": [{"type": "exact_match"}]
    });
    let id = submit(&node, &a, &spec)["id"].as_str().unwrap().to_string();
    let done = wait_status(&node, &a, &id, &["completed"]);
    assert_eq!(done["tenant"], "tenant-a");

    // B: every route on A's id answers 404, like an id that does not exist.
    for (method, path) in [
        ("GET", format!("/v1/evaluations/{id}")),
        ("GET", format!("/v1/evaluations/{id}/results")),
        ("GET", format!("/v1/evaluations/{id}/results?format=jsonl")),
        ("GET", format!("/v1/evaluations/{id}/results?format=csv")),
        ("POST", format!("/v1/evaluations/{id}/cancel")),
        ("GET", "/v1/evaluations/ev_doesnotexist".to_string()),
    ] {
        let r = node.call(method, &path, Some(&b), None);
        let p = r.problem(404);
        assert!(
            !r.text.contains("say hi"),
            "{method} {path} leaks data: {p}"
        );
    }
    let list = node.get("/v1/evaluations", Some(&b));
    assert!(list.ok()["evaluations"].as_array().unwrap().is_empty());
    let usage_b = node.get("/v1/usage", Some(&b));
    let usage_b = usage_b.ok();
    assert_eq!(usage_b["tenant"], "tenant-b");
    assert!(usage_b["days"].as_array().unwrap().is_empty(), "{usage_b}");

    // A still sees its evaluation, untouched by B's cancel attempt, and its usage.
    assert_eq!(get_eval(&node, &a, &id)["status"], "completed");
    let list = node.get("/v1/evaluations", Some(&a));
    assert_eq!(list.ok()["evaluations"].as_array().unwrap().len(), 1);
    let usage_a = node.get("/v1/usage", Some(&a));
    let usage_a = usage_a.ok();
    assert_eq!(usage_a["days"][0]["models"][0]["cases"], 2, "{usage_a}");
    assert!(!eval_audit(&node, &id).contains(&"evaluation.cancel".to_string()));

    // And B's own evaluation is invisible to A.
    let id_b = submit(&node, &b, &spec)["id"].as_str().unwrap().to_string();
    node.get(&format!("/v1/evaluations/{id_b}"), Some(&a))
        .problem(404);
    wait_status(&node, &b, &id_b, &["completed"]);
    let list = node.get("/v1/evaluations", Some(&a));
    let ids: Vec<&str> = list.ok()["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(ids, [id.as_str()]);
}

#[test]
fn cancelling_a_running_evaluation_stops_it() {
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let spec = json!({
        "providers": [{"id": "slow", "kind": "builtin", "model": "mock", "params": {"latency_ms": 200}}],
        "prompt": "case {{i}}",
        "cases": (0..50).map(|i| json!({"vars": {"i": i}, "reference": format!("case {i}")})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}],
        "concurrency": 1
    });
    let id = submit(&node, &key, &spec)["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Let it make some progress first (checkpoints land every 500 ms).
    eventually(WAIT, "the evaluation records a result", || {
        let v = get_eval(&node, &key, &id);
        (v["progress"]["done"].as_u64()? >= 1).then_some(())
    });
    let c = node.call(
        "POST",
        &format!("/v1/evaluations/{id}/cancel"),
        Some(&key),
        None,
    );
    let c = c.ok().clone();
    assert_eq!(c["status"], "cancelled", "{c}");

    let v = wait_status(&node, &key, &id, &["cancelled"]);
    let done = v["progress"]["done"].as_u64().unwrap();
    assert!(
        (1..50).contains(&done),
        "done {done} of 50 after an early cancel: {v}"
    );
    assert!(v["finished_at_ms"].as_u64().is_some(), "{v}");
    // Nothing is recorded after the cancel (a checkpoint interval and a case later).
    std::thread::sleep(Duration::from_millis(900));
    let later = get_eval(&node, &key, &id);
    assert_eq!(later["status"], "cancelled");
    assert_eq!(later["progress"]["done"], done, "{later}");
    assert_eq!(all_results(&node, &key, &id, 1000).len() as u64, done);

    // Cancelling again: 200, still cancelled, not audited twice.
    let again = node.call(
        "POST",
        &format!("/v1/evaluations/{id}/cancel"),
        Some(&key),
        None,
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["status"], "cancelled");
    assert_eq!(again.json["progress"]["done"], done);
    let actions = eval_audit(&node, &id);
    assert_eq!(
        actions,
        ["evaluation.submit", "evaluation.cancel"],
        "{actions:?}"
    );
    let cancelled = node.get("/v1/evaluations?status=cancelled", Some(&key));
    assert_eq!(cancelled.ok()["evaluations"][0]["id"], id.as_str());
}

#[test]
fn a_tenant_over_its_monthly_budget_is_stopped_and_refused() {
    let dir = temp_dir();
    // Small checkpoints so the budget is checked every 5 results.
    let node = Node::start_with(
        dir.path(),
        NodeOptions {
            sets: vec!["evaluations.checkpoint_every=5".into()],
            ..NodeOptions::default()
        },
    );
    let key = tenant(&node, "acme");
    // 1 USD per 1000 tokens in and out: "word N" is 2 + 2 tokens = 0.004 USD a case.
    node.admin(
        "PUT",
        "/v1/pricing/mock",
        &json!({"input_per_1k_usd": 1.0, "output_per_1k_usd": 1.0}),
    )
    .ok();
    // 0.1 USD: exceeded at 25 cases, soft threshold (80%) at 20.
    let t = node.admin(
        "PATCH",
        "/v1/tenants/acme",
        &json!({"overrides": {"monthly_budget_usd": 0.1}}),
    );
    assert_eq!(t.ok()["overrides"]["monthly_budget_usd"], 0.1, "{}", t.text);
    let who = node.get("/v1/whoami", Some(&key));
    assert_eq!(
        who.ok()["effective"]["monthly_budget_usd"],
        0.1,
        "{}",
        who.text
    );

    let spec = json!({
        "providers": [{"id": "m", "kind": "builtin", "model": "mock", "params": {"latency_ms": 10}}],
        "prompt": "word {{i}}",
        "cases": (0..200).map(|i| json!({"vars": {"i": i}, "reference": format!("word {i}")})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}],
        "concurrency": 2
    });
    let id = submit(&node, &key, &spec)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = wait_status(
        &node,
        &key,
        &id,
        &["budget_exceeded", "completed", "failed"],
    );
    assert_eq!(v["status"], "budget_exceeded", "{v}");
    let done = v["progress"]["done"].as_u64().unwrap();
    assert!(
        (25..200).contains(&done),
        "stopped at the first checkpoint over budget: done {done}: {v}"
    );
    let cost = v["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - done as f64 * 0.004).abs() < 1e-6,
        "cost {cost} for {done} cases"
    );
    assert!(cost >= 0.1 - 1e-9, "{v}");
    // Results carry their cost.
    let results = all_results(&node, &key, &id, 1000);
    assert_eq!(results.len() as u64, done);
    for r in &results {
        assert_close(r["cost_usd"].as_f64().unwrap(), 0.004, "case cost");
    }

    // Usage shows what was spent and that nothing is left.
    let usage = node.get("/v1/usage", Some(&key));
    let usage = usage.ok();
    assert_close(usage["monthly_budget_usd"].as_f64().unwrap(), 0.1, "budget");
    assert!(
        (usage["month_cost_usd"].as_f64().unwrap() - cost).abs() < 1e-6,
        "{usage}"
    );
    assert_close(usage["budget_left_usd"].as_f64().unwrap(), 0.0, "left");
    let m = &usage["days"][0]["models"][0];
    assert_eq!(m["model"], "mock", "{usage}");
    assert_eq!(m["cases"], done, "{usage}");
    assert_eq!(m["prompt_tokens"], 2 * done, "{usage}");
    assert_eq!(m["completion_tokens"], 2 * done, "{usage}");

    // Audited: the soft threshold on the way, then the stop.
    let actions = eval_audit(&node, &id);
    assert_eq!(
        actions,
        ["evaluation.submit", "evaluation.budget_exceeded"],
        "{actions:?}"
    );
    let all = all_audit_actions(&node);
    assert!(
        all.contains(&"tenant.budget_soft_threshold".to_string()),
        "{all:?}"
    );

    // Nothing more is recorded afterwards.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(get_eval(&node, &key, &id)["progress"]["done"], done);

    // A new submission is over budget at once and never runs.
    let sub = submit(&node, &key, &spec);
    assert_eq!(sub["status"], "budget_exceeded", "{sub}");
    let id2 = sub["id"].as_str().unwrap().to_string();
    let v2 = get_eval(&node, &key, &id2);
    assert_eq!(v2["status"], "budget_exceeded");
    assert_eq!(v2["progress"]["done"], 0);
    let listed = node.get("/v1/evaluations?status=budget_exceeded", Some(&key));
    assert_eq!(listed.ok()["evaluations"].as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------
// A scripted OpenAI-compatible server.

/// What the scripted server saw.
#[derive(Default)]
struct Seen {
    /// Requests per prompt (the last user message).
    requests: HashMap<String, u32>,
    /// `Authorization` of every request.
    auth: Vec<Option<String>>,
    /// `model` of every request.
    models: Vec<String>,
}

/// A chat completions server on 127.0.0.1 running on its own runtime thread.
struct MockOpenAi {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockOpenAi {
    fn start() -> MockOpenAi {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new()
                    .route("/v1/chat/completions", axum::routing::post(chat))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        MockOpenAi {
            port,
            seen,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    fn requests(&self, prompt: &str) -> u32 {
        self.seen
            .lock()
            .unwrap()
            .requests
            .get(prompt)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for MockOpenAi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const P_FRANCE: &str = "What is the capital of France?";
const P_JAPAN: &str = "What is the capital of Japan?";
const P_ITALY: &str = "What is the capital of Italy?";
const P_SPAIN: &str = "What is the capital of Spain?";
const P_RATE_LIMITED: &str = "What is the capital of Peru? (rate-limited once)";
const P_FLAKY: &str = "What is the capital of Chile? (two 500s)";
const P_GARBAGE: &str = "What is the capital of Mars? (garbage)";
const P_NO_QUOTA: &str = "What is the capital of Atlantis? (no quota)";

fn answer_for(prompt: &str) -> &'static str {
    for (country, capital) in [
        ("France", "Paris"),
        ("Japan", "Tokyo"),
        ("Italy", "Rome"),
        ("Spain", "Madrid"),
        ("Peru", "Lima"),
        ("Chile", "Santiago"),
    ] {
        if prompt.contains(country) {
            return capital;
        }
    }
    "I do not know"
}

fn completion(prompt: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let text = answer_for(prompt);
    let body = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt.split_whitespace().count(),
            "completion_tokens": text.split_whitespace().count(),
            "total_tokens": prompt.split_whitespace().count() + text.split_whitespace().count()
        }
    });
    axum::Json(body).into_response()
}

fn error(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: Value,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut resp = (
        axum::http::StatusCode::from_u16(status).unwrap(),
        axum::Json(body),
    )
        .into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_static(k),
            axum::http::HeaderValue::from_static(v),
        );
    }
    resp
}

async fn chat(
    axum::extract::State(seen): axum::extract::State<Arc<Mutex<Seen>>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let prompt = req["messages"]
        .as_array()
        .and_then(|ms| ms.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let n = {
        let mut s = seen.lock().unwrap();
        s.auth.push(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        );
        s.models
            .push(req["model"].as_str().unwrap_or_default().to_string());
        let n = s.requests.entry(prompt.clone()).or_insert(0);
        *n += 1;
        *n
    };
    if prompt == P_RATE_LIMITED && n == 1 {
        return error(
            429,
            &[("retry-after", "1")],
            json!({"error": {"message": "Rate limit reached, slow down", "type": "requests", "code": "rate_limit_exceeded"}}),
        );
    }
    if prompt == P_FLAKY && n <= 2 {
        return error(
            500,
            &[],
            json!({"error": {"message": "The server had an error", "type": "server_error", "code": null}}),
        );
    }
    if prompt == P_GARBAGE {
        return (
            [(axum::http::header::CONTENT_TYPE, "text/html")],
            "<html><body>502 bad gateway, but with a 200</body></html>",
        )
            .into_response();
    }
    if prompt == P_NO_QUOTA {
        return error(
            429,
            &[("retry-after", "1")],
            json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        );
    }
    completion(&prompt)
}

#[test]
fn an_openai_compatible_provider_is_retried_as_it_asks_and_its_failures_are_recorded() {
    let server = MockOpenAi::start();
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant_with_credential(&node, "acme", &server);
    // Healthy answers first, so the failures below stay under the circuit breaker's rate.
    let cases = [
        (P_FRANCE, "Paris"),
        (P_JAPAN, "Tokyo"),
        (P_ITALY, "Rome"),
        (P_SPAIN, "Madrid"),
        (P_RATE_LIMITED, "Lima"),
        (P_FLAKY, "Santiago"),
        (P_GARBAGE, "Olympus"),
        (P_NO_QUOTA, "Poseidonia"),
    ];
    let spec = json!({
        "providers": [{
            "id": "gpt",
            "kind": "openai",
            "base_url": format!("http://127.0.0.1:{}/v1", server.port),
            "model": "gpt-test",
            "params": {"temperature": 0.0, "max_tokens": 16},
            "credential": "openai"
        }],
        "messages": [
            {"role": "system", "content": "Answer with the city name only."},
            {"role": "user", "content": "{{q}}"}
        ],
        "cases": cases.iter().map(|(q, r)| json!({"vars": {"q": q}, "reference": r})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}, {"type": "latency_ms", "max": 60000}],
        "concurrency": 1,
        "max_retries": 3,
        "timeout_ms": 10000
    });
    let id = submit(&node, &key, &spec)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = wait_status(&node, &key, &id, &["completed", "failed"]);
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["progress"]["done"], 8, "{v}");
    assert_eq!(
        v["progress"]["failed"], 2,
        "the garbage and no-quota cases: {v}"
    );

    // Server side: how often each prompt was asked.
    assert_eq!(server.requests(P_FRANCE), 1);
    assert_eq!(server.requests(P_JAPAN), 1);
    assert_eq!(
        server.requests(P_RATE_LIMITED),
        2,
        "one 429 with Retry-After, then success"
    );
    assert_eq!(server.requests(P_FLAKY), 3, "two 500s, then success");
    assert_eq!(
        server.requests(P_NO_QUOTA),
        1,
        "insufficient_quota is never retried"
    );
    assert_eq!(
        server.requests(P_GARBAGE),
        2,
        "a malformed answer is retried once, then the call ends"
    );
    {
        let seen = server.seen.lock().unwrap();
        assert!(!seen.auth.is_empty());
        for auth in &seen.auth {
            assert_eq!(
                auth.as_deref(),
                Some("Bearer sk-test-0123456789"),
                "the credential is sent as a bearer token"
            );
        }
        assert!(
            seen.models.iter().all(|m| m == "gpt-test"),
            "{:?}",
            seen.models
        );
    }

    // Client side: the results.
    let results = all_results(&node, &key, &id, 1000);
    assert_eq!(results.len(), 8);
    for (i, (_, reference)) in cases.iter().enumerate() {
        let r = result_of(&results, i as u64);
        match i {
            0..=5 => {
                assert!(r["error"].is_null(), "case {i}: {r}");
                assert_eq!(r["output"], *reference, "case {i}: {r}");
                assert_close(score(r, "exact_match"), 1.0, &format!("case {i}"));
                assert_eq!(r["passed"], true, "case {i}: {r}");
                // Usage as the server reported it.
                assert!(r["usage"]["prompt_tokens"].as_u64().unwrap() >= 5, "{r}");
                assert_eq!(r["usage"]["completion_tokens"], 1, "{r}");
            }
            _ => {
                assert!(r["output"].is_null(), "case {i}: {r}");
                assert_eq!(r["passed"], false, "case {i}: {r}");
                assert_close(score(r, "exact_match"), 0.0, &format!("case {i}"));
            }
        }
    }
    assert_eq!(result_of(&results, 0)["attempts"], 1);
    assert_eq!(result_of(&results, 4)["attempts"], 2, "429 then success");
    assert_eq!(result_of(&results, 5)["attempts"], 3, "500, 500, success");
    let garbage = result_of(&results, 6)["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(garbage.contains("malformed"), "{garbage}");
    let quota = result_of(&results, 7)["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(quota.contains("quota"), "{quota}");

    // Aggregates count the two errors.
    let p = &v["aggregates"]["providers"][0];
    assert_eq!(p["provider_id"], "gpt", "{v}");
    assert_eq!(p["results"], 8);
    assert_eq!(p["errors"], 2);
    assert_eq!(p["passed"], 6);
    assert_eq!(
        eval_audit(&node, &id),
        ["evaluation.submit", "evaluation.complete"]
    );
}

#[test]
fn a_credential_that_does_not_exist_fails_the_evaluation() {
    let server = MockOpenAi::start();
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let spec = json!({
        "providers": [{
            "id": "gpt",
            "kind": "openai",
            "base_url": format!("http://127.0.0.1:{}/v1", server.port),
            "model": "gpt-test",
            "credential": "not-stored"
        }],
        "prompt": "{{q}}",
        "cases": [{"vars": {"q": P_FRANCE}, "reference": "Paris"}],
        "scorers": [{"type": "exact_match"}]
    });
    let id = submit(&node, &key, &spec)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = wait_status(&node, &key, &id, &["failed", "completed"]);
    assert_eq!(v["status"], "failed", "{v}");
    let err = v["error"].as_str().unwrap_or_default();
    assert!(err.contains("not-stored"), "{v}");
    assert_eq!(server.requests(P_FRANCE), 0, "no call without the key");
    assert!(eval_audit(&node, &id).contains(&"evaluation.fail".to_string()));
}

/// The openai provider of the scripted server, with the tenant's credential `openai`.
fn scripted_provider(server: &MockOpenAi) -> Value {
    json!({
        "id": "gpt",
        "kind": "openai",
        "base_url": format!("http://127.0.0.1:{}/v1", server.port),
        "model": "gpt-test",
        "credential": "openai"
    })
}

/// A tenant whose credential `openai` (`sk-test-0123456789`) may go to `server`.
fn tenant_with_credential(node: &Node, id: &str, server: &MockOpenAi) -> String {
    let key = tenant(node, id);
    let r = node.call(
        "PUT",
        "/v1/credentials/openai",
        Some(&key),
        Some(&json!({
            "value": "sk-test-0123456789",
            "allowed_hosts": [format!("127.0.0.1:{}", server.port)]
        })),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !r.text.contains("sk-test"),
        "the value is never answered: {}",
        r.text
    );
    key
}

#[test]
fn a_failed_call_records_the_attempts_it_made() {
    // Repro: a provider whose answer is always malformed is asked twice (one retry), one
    // that answers insufficient_quota once; both results say `"attempts": 0` (also in the
    // CSV export), though `attempts` is documented as "calls made, retries included" and
    // the error text itself says "after 2 attempt(s)".
    let server = MockOpenAi::start();
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant_with_credential(&node, "acme", &server);
    let spec = json!({
        "providers": [scripted_provider(&server)],
        "prompt": "{{q}}",
        "cases": [
            {"vars": {"q": P_GARBAGE}, "reference": "x"},
            {"vars": {"q": P_NO_QUOTA}, "reference": "x"}
        ],
        "scorers": [{"type": "exact_match"}],
        "concurrency": 1,
        "max_retries": 3
    });
    let id = submit(&node, &key, &spec)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&node, &key, &id, &["completed"]);
    assert_eq!(server.requests(P_GARBAGE), 2);
    assert_eq!(server.requests(P_NO_QUOTA), 1);
    let results = all_results(&node, &key, &id, 1000);
    assert_eq!(result_of(&results, 0)["attempts"], 2, "{results:?}");
    assert_eq!(result_of(&results, 1)["attempts"], 1, "{results:?}");
}

#[test]
fn a_repeated_evaluation_is_served_from_the_response_cache_at_no_cost() {
    let server = MockOpenAi::start();
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant_with_credential(&node, "acme", &server);
    node.admin(
        "PUT",
        "/v1/pricing/gpt-test",
        &json!({"input_per_1k_usd": 10.0, "output_per_1k_usd": 10.0}),
    )
    .ok();
    let spec = json!({
        "providers": [scripted_provider(&server)],
        "prompt": "{{q}}",
        "cases": [
            {"vars": {"q": P_FRANCE}, "reference": "Paris"},
            {"vars": {"q": P_JAPAN}, "reference": "Tokyo"},
            {"vars": {"q": P_NO_QUOTA}, "reference": "x"}
        ],
        "scorers": [{"type": "exact_match"}]
    });
    let first = submit(&node, &key, &spec)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v1 = wait_status(&node, &key, &first, &["completed"]);
    assert_eq!(v1["progress"]["cached"], 0, "{v1}");
    assert_eq!(v1["progress"]["failed"], 1, "{v1}");
    let cost1 = v1["usage"]["cost_usd"].as_f64().unwrap();
    // "What is the capital of France?" is 6 tokens, "Paris" 1: 7 tokens at 0.01 USD each.
    assert!((cost1 - 0.14).abs() < 1e-9, "{v1}");

    let second = submit(&node, &key, &spec)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v2 = wait_status(&node, &key, &second, &["completed"]);
    assert_eq!(v2["progress"]["cached"], 2, "{v2}");
    assert_eq!(v2["progress"]["failed"], 1, "errors are not cached: {v2}");
    assert_close(
        v2["usage"]["cost_usd"].as_f64().unwrap(),
        0.0,
        "cached cost",
    );
    assert_eq!(server.requests(P_FRANCE), 1, "served from the cache");
    assert_eq!(server.requests(P_JAPAN), 1, "served from the cache");
    assert_eq!(server.requests(P_NO_QUOTA), 2, "a failure is asked again");
    let results = all_results(&node, &key, &second, 1000);
    let r0 = result_of(&results, 0);
    assert_eq!(r0["cached"], true, "{r0}");
    assert_eq!(r0["output"], "Paris");
    assert_close(r0["cost_usd"].as_f64().unwrap(), 0.0, "cached result cost");
    assert_eq!(result_of(&results, 2)["cached"], false);
    let usage = node.get("/v1/usage", Some(&key));
    assert!(
        (usage.ok()["month_cost_usd"].as_f64().unwrap() - cost1).abs() < 1e-9,
        "only the first run is billed: {}",
        usage.text
    );
}
