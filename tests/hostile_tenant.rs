//! A hostile tenant, end to end over real HTTP against the real binary: every test is one
//! attack a tenant (or someone holding only a tenant key) could try, and what must hold.
//!
//! Provider calls go to mock OpenAI-compatible servers on loopback that the tests start
//! and that count every request they get. The harness allows loopback egress
//! (`COLONY_PROVIDERS_EGRESS_ALLOW=127.0.0.0/8`) for every node; the egress tests set
//! their own policy.
//!
//! Where a refusal may be reported in more than one place (422 at submit, the evaluation
//! `failed` with an error, or an error on every case result), [`expect_refused`] accepts
//! any of them: what matters is that the refusal names why and that nothing was sent.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{eventually, run_to_exit, temp_dir, Node, NodeOptions, ADMIN_TOKEN, CLUSTER_SECRET};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for an evaluation to reach a status.
const WAIT: Duration = Duration::from_secs(60);

/// Statuses an evaluation does not leave.
const TERMINAL: &[&str] = &["completed", "failed", "cancelled", "budget_exceeded"];

// ---------------------------------------------------------------------------------------
// Helpers: tenants, credentials, evaluations.

/// Creates tenant `id` on the enterprise tier and returns its API key.
fn tenant(node: &Node, id: &str) -> String {
    node.create_tenant(id)
}

/// Stores credential `name` = `value` for the tenant with `key`, allowed to `hosts`;
/// asserts 200 and that the answer never holds the value. Returns the answer.
#[track_caller]
fn put_credential(node: &Node, key: &str, name: &str, value: &str, hosts: &[String]) -> Value {
    let r = node.call(
        "PUT",
        &format!("/v1/credentials/{name}"),
        Some(key),
        Some(&json!({"value": value, "allowed_hosts": hosts})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !r.text.contains(value),
        "the value is never answered: {}",
        r.text
    );
    assert!(r.json.get("value").is_none(), "{}", r.text);
    r.json.clone()
}

/// Submits `spec` as the tenant with `key`; asserts 202 and returns the evaluation id.
#[track_caller]
fn submit(node: &Node, key: &str, spec: &Value) -> String {
    let r = node.call("POST", "/v1/evaluations", Some(key), Some(spec));
    assert_eq!(r.status, 202, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// `GET /v1/evaluations/{id}` as the tenant; asserts 200.
#[track_caller]
fn get_eval(node: &Node, key: &str, id: &str) -> Value {
    node.evaluation(key, id)
}

/// Waits (bounded) until the evaluation has one of `statuses` and returns it.
#[track_caller]
fn wait_status(node: &Node, key: &str, id: &str, statuses: &[&str]) -> Value {
    node.wait_evaluation(key, id, statuses, WAIT)
}

/// Every result of an evaluation (one page of up to 1000).
#[track_caller]
fn results(node: &Node, key: &str, id: &str) -> Vec<Value> {
    let r = node.get(
        &format!("/v1/evaluations/{id}/results?limit=1000"),
        Some(key),
    );
    r.ok()["results"].as_array().unwrap().clone()
}

/// The raw text of the results page and of the evaluation view, to search for leaks.
fn everything_shown(node: &Node, key: &str, id: &str) -> String {
    let mut all = node
        .get(
            &format!("/v1/evaluations/{id}/results?limit=1000"),
            Some(key),
        )
        .text;
    for format in ["jsonl", "csv"] {
        all.push('\n');
        all.push_str(
            &node
                .get(
                    &format!("/v1/evaluations/{id}/results?format={format}"),
                    Some(key),
                )
                .text,
        );
    }
    all.push('\n');
    all.push_str(&node.get(&format!("/v1/evaluations/{id}"), Some(key)).text);
    all
}

/// Asserts that a submitted evaluation was refused for a reason mentioning `word`
/// (case-insensitive): it failed with such an error, or it completed with such an error on
/// every case result. Returns every error text seen.
#[track_caller]
fn assert_refused(node: &Node, key: &str, id: &str, word: &str) -> String {
    let word = word.to_lowercase();
    let v = wait_status(node, key, id, TERMINAL);
    match v["status"].as_str().unwrap() {
        "failed" => {
            let err = v["error"].as_str().unwrap_or_default().to_string();
            assert!(
                err.to_lowercase().contains(&word),
                "the evaluation failed, but not for {word:?}: {v}"
            );
            err
        }
        "completed" => {
            let rs = results(node, key, id);
            assert!(!rs.is_empty(), "completed without results: {v}");
            let mut all = String::new();
            for r in &rs {
                let err = r["error"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a case went through (no error): {r}"));
                assert!(
                    err.to_lowercase().contains(&word),
                    "a case error does not mention {word:?}: {r}"
                );
                assert!(r["output"].is_null(), "a refused case has no output: {r}");
                all.push_str(err);
                all.push('\n');
            }
            all
        }
        other => panic!("unexpected end {other:?}: {v}"),
    }
}

/// Submits `spec` and asserts it is refused for a reason mentioning `word`: 422 at
/// submit, or afterwards as in [`assert_refused`]. Returns the error text.
#[track_caller]
fn expect_refused(node: &Node, key: &str, spec: &Value, word: &str) -> String {
    let r = node.call("POST", "/v1/evaluations", Some(key), Some(spec));
    if r.status == 422 {
        r.problem(422);
        assert!(
            r.text.to_lowercase().contains(&word.to_lowercase()),
            "422, but not naming {word:?}: {}",
            r.text
        );
        return r.text;
    }
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_refused(node, key, &id, word)
}

/// An openai provider at `base_url` (no credential unless `credential` is given).
fn openai(id: &str, base_url: &str, model: &str, credential: Option<&str>) -> Value {
    let mut p = json!({"id": id, "kind": "openai", "base_url": base_url, "model": model});
    if let Some(c) = credential {
        p["credential"] = json!(c);
    }
    p
}

/// A spec asking `provider` `n` prompts `"{tag} {i}"`, one call per case, no retries.
fn spec_with(provider: Value, tag: &str, n: usize) -> Value {
    json!({
        "providers": [provider],
        "prompt": "{{q}}",
        "cases": (0..n).map(|i| json!({"vars": {"q": format!("{tag} {i}")}, "reference": "ok"})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}],
        "concurrency": 1,
        "max_retries": 0,
        "timeout_ms": 3000
    })
}

/// A slow builtin evaluation (50 cases of 200 ms one at a time: ~10 s) to be stopped.
fn slow_spec() -> Value {
    json!({
        "providers": [{"id": "slow", "kind": "builtin", "model": "mock", "params": {"latency_ms": 200}}],
        "prompt": "case {{i}}",
        "cases": (0..50).map(|i| json!({"vars": {"i": i}, "reference": format!("case {i}")})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}],
        "concurrency": 1
    })
}

/// Waits until a running evaluation has recorded at least one result.
fn wait_some_progress(node: &Node, key: &str, id: &str) {
    eventually(WAIT, "the evaluation records a result", || {
        let v = get_eval(node, key, id);
        assert!(
            !TERMINAL.contains(&v["status"].as_str().unwrap_or_default()),
            "ended before it could be stopped: {v}"
        );
        (v["progress"]["done"].as_u64()? >= 1).then_some(())
    });
}

// ---------------------------------------------------------------------------------------
// A scripted OpenAI-compatible server that records every request, on any path.

/// One request the mock server got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    auth: Option<String>,
    model: String,
    /// The last user message.
    prompt: String,
}

/// What the mock server answers.
enum Reply {
    /// A chat completion with this content.
    Complete(String),
    /// This status, content type and body.
    Status(u16, &'static str, String),
    /// 302 to this location.
    Redirect(String),
}

type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

#[derive(Clone)]
struct MockState {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

/// A mock provider on its own runtime thread; dropping it stops it.
struct Mock {
    port: u16,
    /// `host:port` as a URL authority (`127.0.0.1:P`, `[::1]:P`).
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    /// On 127.0.0.1, answering as `script` says.
    fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Mock {
        Self::start_on("127.0.0.1:0", script).expect("bind 127.0.0.1")
    }

    /// On 127.0.0.1, answering every request with the completion "ok".
    fn ok() -> Mock {
        Self::start(|_| Reply::Complete("ok".into()))
    }

    /// On `bind`, or `None` when it cannot be bound (e.g. no IPv6 loopback).
    fn start_on(
        bind: &str,
        script: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Option<Mock> {
        let listener = std::net::TcpListener::bind(bind).ok()?;
        listener.set_nonblocking(true).unwrap();
        let local = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = MockState {
            seen: seen.clone(),
            script: Arc::new(script),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(mock_handler).with_state(state);
                let serve = std::future::IntoFuture::into_future(axum::serve(listener, app));
                // Not a graceful shutdown: an open keep-alive connection must not hold the test up.
                tokio::select! {
                    _ = serve => {}
                    _ = rx => {}
                }
            });
            rt.shutdown_background();
        });
        Some(Mock {
            port: local.port(),
            addr: local.to_string(),
            seen,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://ADDR/v1`.
    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests received so far.
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Requests received so far carrying `Authorization: Bearer {value}`.
    fn with_bearer(&self, value: &str) -> usize {
        let want = format!("Bearer {value}");
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.auth.as_deref() == Some(want.as_str()))
            .count()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn completion(text: &str, prompt: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let p = prompt.split_whitespace().count();
    let c = text.split_whitespace().count();
    axum::Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    }))
    .into_response()
}

async fn mock_handler(
    axum::extract::State(st): axum::extract::State<MockState>,
    uri: axum::http::Uri,
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
    let seen = Seen {
        path: uri.path().to_string(),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        model: req["model"].as_str().unwrap_or_default().to_string(),
        prompt: prompt.clone(),
    };
    st.seen.lock().unwrap().push(seen.clone());
    match (st.script)(&seen) {
        Reply::Complete(text) => completion(&text, &prompt),
        Reply::Status(status, content_type, body) => (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [(axum::http::header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
        Reply::Redirect(location) => (
            axum::http::StatusCode::FOUND,
            [(axum::http::header::LOCATION, location)],
            String::new(),
        )
            .into_response(),
    }
}

/// A node whose egress policy is `allow` instead of the harness's loopback CIDR.
fn node_with_egress(dir: &Path, allow: &str) -> Node {
    Node::start_with(
        dir,
        NodeOptions {
            env: vec![("COLONY_PROVIDERS_EGRESS_ALLOW".into(), allow.into())],
            ..NodeOptions::default()
        },
    )
}

// ---------------------------------------------------------------------------------------
// Credentials.

#[test]
fn credentials_are_write_only_and_another_tenants_names_are_unusable() {
    // Attack: read a stored provider key back, or use another tenant's credential by name.
    let server = Mock::ok();
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let a = tenant(&node, "tenant-a");
    let b = tenant(&node, "tenant-b");
    let secret = "sk-a-secret-0123456789abcdef";
    let host = format!("127.0.0.1:{}", server.port);

    let put = put_credential(&node, &a, "a-only", secret, std::slice::from_ref(&host));
    assert_eq!(put["name"], "a-only", "{put}");
    assert_eq!(put["allowed_hosts"], json!([host]), "{put}");
    assert!(put["created_at_ms"].as_u64().is_some(), "{put}");
    assert!(put["updated_at_ms"].as_u64().is_some(), "{put}");

    // Listed and read back without the value.
    let list = node.get("/v1/credentials", Some(&a));
    assert!(!list.text.contains(secret), "{}", list.text);
    let items = list.ok()["credentials"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{}", list.text);
    assert_eq!(items[0]["name"], "a-only");
    assert!(items[0].get("value").is_none(), "{}", list.text);
    let one = node.get("/v1/credentials/a-only", Some(&a));
    assert!(!one.text.contains(secret), "{}", one.text);
    assert_eq!(one.ok()["name"], "a-only");
    assert!(one.json.get("value").is_none(), "{}", one.text);

    // B sees none of it.
    let list_b = node.get("/v1/credentials", Some(&b));
    assert!(
        list_b.ok()["credentials"].as_array().unwrap().is_empty(),
        "{}",
        list_b.text
    );
    node.get("/v1/credentials/a-only", Some(&b)).problem(404);

    // B naming A's credential: no credential by that name for B; nothing is sent with A's key.
    let provider = openai("gpt", &server.base_url(), "gpt-test", Some("a-only"));
    expect_refused(
        &node,
        &b,
        &spec_with(provider.clone(), "b asks", 2),
        "no credential named",
    );
    assert_eq!(server.with_bearer(secret), 0, "{:?}", server.seen());
    assert_eq!(server.count(), 0, "{:?}", server.seen());

    // A's own evaluation does send it, as a bearer token, to the allowed host.
    let id = submit(&node, &a, &spec_with(provider.clone(), "a asks", 2));
    let v = wait_status(&node, &a, &id, TERMINAL);
    assert_eq!(v["status"], "completed", "{v}");
    assert!(results(&node, &a, &id).iter().all(|r| r["error"].is_null()));
    assert_eq!(server.with_bearer(secret), 2, "{:?}", server.seen());
    assert!(
        !everything_shown(&node, &a, &id).contains(secret),
        "the value is not in the evaluation or its results"
    );

    // Deleted: gone, and an evaluation naming it fails.
    let d = node.call("DELETE", "/v1/credentials/a-only", Some(&a), None);
    assert_eq!(d.status, 204, "{}", d.text);
    node.get("/v1/credentials/a-only", Some(&a)).problem(404);
    let before = server.count();
    expect_refused(
        &node,
        &a,
        &spec_with(provider, "after delete", 1),
        "no credential named",
    );
    assert_eq!(server.count(), before, "nothing sent after the delete");
}

#[test]
fn a_credential_is_never_sent_to_a_host_it_does_not_list() {
    // Attack: store a key bound to one host, then point a provider at another host to
    // capture it.
    let allowed = Mock::ok();
    let thief = Mock::ok();
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let secret = "sk-bound-to-one-host-0123456789";
    put_credential(
        &node,
        &key,
        "bound",
        secret,
        &[format!("127.0.0.1:{}", allowed.port)],
    );
    let spec = spec_with(
        openai("gpt", &thief.base_url(), "gpt-test", Some("bound")),
        "steal",
        3,
    );
    let err = expect_refused(&node, &key, &spec, "credential");
    assert!(!err.contains(secret), "{err}");
    assert_eq!(thief.with_bearer(secret), 0, "{:?}", thief.seen());
    assert_eq!(allowed.count(), 0);
}

#[test]
fn api_key_env_is_refused_at_submit_and_nothing_is_sent() {
    // Attack: `api_key_env: COLONY_ADMIN_TOKEN` to have the node send its own admin token
    // (or any variable of its environment) to a server the tenant runs.
    let server = Mock::ok();
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let mut provider = openai("gpt", &server.base_url(), "gpt-test", None);
    provider["api_key_env"] = json!("COLONY_ADMIN_TOKEN");
    let r = node.call(
        "POST",
        "/v1/evaluations",
        Some(&key),
        Some(&spec_with(provider, "leak", 1)),
    );
    r.problem(422);
    assert!(
        r.text.to_lowercase().contains("credential"),
        "the problem names what replaces it: {}",
        r.text
    );
    assert!(!r.text.contains(ADMIN_TOKEN), "{}", r.text);
    let list = node.get("/v1/evaluations", Some(&key));
    assert!(list.ok()["evaluations"].as_array().unwrap().is_empty());
    // Nothing was stored, so nothing can run; a moment later the server still saw nothing.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.count(), 0, "{:?}", server.seen());
}

// ---------------------------------------------------------------------------------------
// Egress.

#[test]
fn the_default_egress_policy_refuses_loopback_metadata_ipv6_loopback_and_localhost() {
    // Attack: SSRF through `base_url` to services on the node's host or the cloud metadata
    // endpoint.
    let server = Mock::ok();
    let server6 = Mock::start_on("[::1]:0", |_| Reply::Complete("ok".into()));
    let dir = temp_dir();
    let node = node_with_egress(dir.path(), "");
    let key = tenant(&node, "acme");
    let port6 = server6.as_ref().map_or(server.port, |s| s.port);
    let targets = [
        format!("http://127.0.0.1:{}/v1", server.port),
        "http://169.254.169.254/v1".to_string(),
        format!("http://[::1]:{port6}/v1"),
        format!("http://localhost:{}/v1", server.port),
    ];
    for (i, url) in targets.iter().enumerate() {
        let spec = spec_with(openai("p", url, "gpt-test", None), &format!("ssrf {i}"), 2);
        let err = expect_refused(&node, &key, &spec, "egress");
        println!("{url}: {err}");
    }
    assert_eq!(server.count(), 0, "{:?}", server.seen());
    if let Some(s6) = &server6 {
        assert_eq!(s6.count(), 0, "{:?}", s6.seen());
    }
}

#[test]
fn a_host_port_egress_rule_allows_exactly_that_server() {
    // Attack: a rule meant for one internal server used to reach another port on the same
    // host.
    let allowed = Mock::ok();
    let other = Mock::ok();
    let dir = temp_dir();
    let node = node_with_egress(dir.path(), &format!("127.0.0.1:{}", allowed.port));
    let key = tenant(&node, "acme");

    let id = submit(
        &node,
        &key,
        &spec_with(
            openai("p", &allowed.base_url(), "gpt-test", None),
            "allowed",
            2,
        ),
    );
    let v = wait_status(&node, &key, &id, TERMINAL);
    assert_eq!(v["status"], "completed", "{v}");
    for r in results(&node, &key, &id) {
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["output"], "ok", "{r}");
    }
    assert_eq!(allowed.count(), 2, "{:?}", allowed.seen());
    assert!(
        allowed
            .seen()
            .iter()
            .all(|s| s.path == "/v1/chat/completions" && s.model == "gpt-test"),
        "{:?}",
        allowed.seen()
    );

    expect_refused(
        &node,
        &key,
        &spec_with(openai("p", &other.base_url(), "gpt-test", None), "other", 2),
        "egress",
    );
    assert_eq!(other.count(), 0, "{:?}", other.seen());
}

#[test]
fn a_base_url_with_a_query_fragment_or_userinfo_is_refused_at_submit() {
    // Attack: smuggle a different host or path past host checks through URL parts
    // (`http://u:p@host`, `?`, `#`).
    let server = Mock::ok();
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let p = server.port;
    for url in [
        format!("http://127.0.0.1:{p}/v1?x=1"),
        format!("http://127.0.0.1:{p}/v1#frag"),
        format!("http://u:p@127.0.0.1:{p}/v1"),
        "http://u:p@127.0.0.1:1/v1".to_string(),
        format!("http://127.0.0.1:{p}@169.254.169.254/v1"),
    ] {
        let r = node.call(
            "POST",
            "/v1/evaluations",
            Some(&key),
            Some(&spec_with(openai("p", &url, "gpt-test", None), "url", 1)),
        );
        r.problem(422);
        assert!(r.text.contains("base_url"), "{url}: {}", r.text);
    }
    let list = node.get("/v1/evaluations", Some(&key));
    assert!(list.ok()["evaluations"].as_array().unwrap().is_empty());
    assert_eq!(server.count(), 0, "{:?}", server.seen());
}

#[test]
fn redirects_are_not_followed() {
    // Attack: an allowed server answers 302 to an address the policy (or the credential)
    // would refuse.
    let target = Mock::ok();
    let target_authority = format!("127.0.0.1:{}", target.port);
    let location = format!("http://{target_authority}/v1/chat/completions");
    let redirector = Mock::start(move |_| Reply::Redirect(location.clone()));
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let id = submit(
        &node,
        &key,
        &spec_with(
            openai("p", &redirector.base_url(), "gpt-test", None),
            "hop",
            2,
        ),
    );
    let err = assert_refused(&node, &key, &id, "redirect");
    assert!(redirector.count() >= 1, "the redirector was asked");
    assert_eq!(target.count(), 0, "{:?}", target.seen());
    assert!(
        !err.contains(&target_authority),
        "where the redirect pointed is not reported: {err}"
    );
}

#[test]
fn provider_error_bodies_are_not_echoed_into_results() {
    // Attack: use the node as a proxy that reads internal pages back through error texts.
    const MARKER: &str = "INTERNAL-PAGE-MARKER-7f3e9a";
    let server = Mock::start(|_| {
        Reply::Status(
            500,
            "text/html",
            format!("<html><body><h1>Admin console</h1><p>{MARKER}</p></body></html>"),
        )
    });
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let id = submit(
        &node,
        &key,
        &spec_with(openai("p", &server.base_url(), "gpt-test", None), "read", 3),
    );
    let v = wait_status(&node, &key, &id, TERMINAL);
    assert!(server.count() >= 1, "the server was asked: {v}");
    let rs = results(&node, &key, &id);
    for r in &rs {
        assert!(r["error"].is_string(), "a 500 is an error: {r}");
    }
    let shown = everything_shown(&node, &key, &id);
    assert!(!shown.contains(MARKER), "the error body leaked:\n{shown}");
}

#[test]
fn the_nodes_own_listeners_are_refused_even_with_loopback_allowed() {
    // Attack: with loopback allowed for local providers, aim a provider at the node's own
    // Raft, actor-transport or HTTP listener.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let own = [
        node.raft_addr.clone(),
        node.cluster_addr.clone(),
        node.http_addr.clone(),
    ];
    for (i, addr) in own.iter().filter(|a| !a.is_empty()).enumerate() {
        let url = format!("http://{addr}/v1");
        let spec = spec_with(openai("p", &url, "gpt-test", None), &format!("self {i}"), 1);
        let err = expect_refused(&node, &key, &spec, "egress");
        println!("{url}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Scorer and spec bombs.

#[test]
fn an_exponential_json_schema_does_not_freeze_the_node() {
    // Attack: a score-only spec whose json_schema has 30 levels of two-way `$ref` branching
    // (2^30 paths, every one failing) to pin the node's threads.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let mut defs = serde_json::Map::new();
    for i in 0..29 {
        let next = format!("#/$defs/a{}", i + 1);
        defs.insert(
            format!("a{i}"),
            json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    defs.insert("a29".into(), json!({"type": "number"}));
    let schema = json!({"$defs": defs, "$ref": "#/$defs/a0"});
    let spec = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "p {{i}}",
        "cases": (0..4).map(|i| json!({"vars": {"i": i}, "outputs": {"a": "\"x\""}})).collect::<Vec<_>>(),
        "scorers": [{"type": "json_schema", "schema": schema}]
    });

    // /healthz latencies, measured in the background while the evaluation runs.
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{}/healthz", node.url);
    let probe = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut lat: Vec<(Duration, u16)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let status = match ureq::get(&url).timeout(Duration::from_secs(10)).call() {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(s, _)) => s,
                    Err(_) => 0,
                };
                lat.push((t.elapsed(), status));
                std::thread::sleep(Duration::from_millis(20));
            }
            lat
        })
    };

    let r = node.call("POST", "/v1/evaluations", Some(&key), Some(&spec));
    let outcome = if r.status == 422 {
        // Refusing the schema up front is an answer too.
        r.problem(422);
        println!("the schema was refused at submit: {}", r.text);
        None
    } else {
        assert_eq!(r.status, 202, "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        let v = wait_status(&node, &key, &id, TERMINAL);
        Some((id, v))
    };
    stop.store(true, Ordering::Relaxed);
    let lat = probe.join().unwrap();

    let mut ms: Vec<f64> = lat.iter().map(|(d, _)| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if !ms.is_empty() {
        let p99 = ms[((ms.len() as f64 * 0.99).ceil() as usize).clamp(1, ms.len()) - 1];
        println!(
            "/healthz during the schema bomb: {} probes, p99 {p99:.1} ms, max {:.1} ms",
            ms.len(),
            ms[ms.len() - 1]
        );
    }
    let failed: Vec<_> = lat.iter().filter(|(_, s)| *s != 200).collect();
    assert!(failed.is_empty(), "/healthz did not answer: {failed:?}");
    assert_eq!(node.get("/healthz", None).status, 200);

    if let Some((id, v)) = outcome {
        println!("status {}", v["status"]);
        if v["status"] == "completed" {
            let rs = results(&node, &key, &id);
            assert_eq!(rs.len(), 4, "{v}");
            for r in &rs {
                let detail = r["scores"]
                    .as_array()
                    .and_then(|s| s.iter().find(|s| s["scorer"] == "json_schema"))
                    .and_then(|s| s["detail"].as_str())
                    .unwrap_or_default();
                let error = r["error"].as_str().unwrap_or_default();
                assert!(
                    !detail.is_empty() || !error.is_empty(),
                    "a result with neither a score detail nor an error: {r}"
                );
                assert_ne!(r["passed"], true, "\"x\" is not a number: {r}");
            }
        } else {
            assert_eq!(v["status"], "failed", "{v}");
            assert!(v["error"].is_string(), "{v}");
        }
    }
}

#[test]
fn a_json_schema_regex_memory_bomb_is_refused_at_submit() {
    // Attack: 100 patternProperties of `\w{200}N…` (each a huge compiled regex) to exhaust
    // the node's memory while compiling the scorer.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let mut props = serde_json::Map::new();
    for i in 0..100 {
        props.insert(format!("\\w{{200}}N{i}"), json!({"type": "string"}));
    }
    let spec = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "{{q}}",
        "cases": [{"vars": {"q": "{}"}}],
        "scorers": [{"type": "json_schema", "schema": {"type": "object", "patternProperties": props}}]
    });
    let t = Instant::now();
    let r = node.call("POST", "/v1/evaluations", Some(&key), Some(&spec));
    println!("answered {} in {:?}", r.status, t.elapsed());
    let p = r.problem(422);
    assert!(
        p["pointer"]
            .as_str()
            .is_some_and(|s| s.starts_with("/scorers/0")),
        "{p}"
    );
    assert_eq!(node.get("/healthz", None).status, 200);
}

#[test]
fn a_regex_scorer_memory_bomb_is_refused_at_submit() {
    // Attack: a regex scorer `(\w{100}){100}` whose compiled program is enormous.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let spec = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "{{q}}",
        "cases": [{"vars": {"q": "x"}}],
        "scorers": [{"type": "regex", "pattern": "(\\w{100}){100}"}]
    });
    let t = Instant::now();
    let r = node.call("POST", "/v1/evaluations", Some(&key), Some(&spec));
    println!("answered {} in {:?}", r.status, t.elapsed());
    let p = r.problem(422);
    assert_eq!(p["pointer"], "/scorers/0/pattern", "{p}");
    assert_eq!(node.get("/healthz", None).status, 200);
}

#[test]
fn a_prompt_or_output_over_the_size_caps_is_refused_at_submit() {
    // Attack: a small body that renders to a huge prompt (1000 × a 10 000-char var = 10 MB
    // per case), and a precomputed output over 64 KiB.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let amplified = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "{{v}}".repeat(1000),
        "cases": [{"vars": {"v": "x".repeat(10_000)}, "reference": "x"}],
        "scorers": [{"type": "exact_match"}]
    });
    let r = node.call("POST", "/v1/evaluations", Some(&key), Some(&amplified));
    r.problem(422);
    assert!(
        r.text.contains("evaluations.max_prompt_bytes"),
        "{}",
        r.text
    );

    let big_output = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "{{q}}",
        "cases": [{"vars": {"q": "x"}, "reference": "x", "outputs": {"a": "y".repeat(64 * 1024 + 1)}}],
        "scorers": [{"type": "exact_match"}]
    });
    let r = node.call("POST", "/v1/evaluations", Some(&key), Some(&big_output));
    r.problem(422);
    assert!(r.text.contains("max_output_bytes"), "{}", r.text);
    let list = node.get("/v1/evaluations", Some(&key));
    assert!(list.ok()["evaluations"].as_array().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Isolation between tenants.

#[test]
fn one_tenants_failures_do_not_open_another_tenants_breaker() {
    // Attack: tenant A hammers a provider that fails only for A, to open the circuit
    // breaker for everyone using the same base_url and model.
    const KEY_A: &str = "sk-tenant-a-breaks-it-0123456789";
    const KEY_B: &str = "sk-tenant-b-is-fine-0123456789";
    let want_a = format!("Bearer {KEY_A}");
    let server = Mock::start(move |s| {
        if s.auth.as_deref() == Some(want_a.as_str()) {
            Reply::Status(
                500,
                "application/json",
                json!({"error": {"message": "boom", "type": "server_error", "code": null}})
                    .to_string(),
            )
        } else {
            Reply::Complete("ok".into())
        }
    });
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let a = tenant(&node, "tenant-a");
    let b = tenant(&node, "tenant-b");
    let host = vec![format!("127.0.0.1:{}", server.port)];
    put_credential(&node, &a, "openai", KEY_A, &host);
    put_credential(&node, &b, "openai", KEY_B, &host);
    let provider = openai("gpt", &server.base_url(), "gpt-test", Some("openai"));

    let id_a = submit(&node, &a, &spec_with(provider.clone(), "a", 30));
    let v = wait_status(&node, &a, &id_a, TERMINAL);
    assert!(
        ["completed", "failed"].contains(&v["status"].as_str().unwrap()),
        "{v}"
    );
    let rs_a = results(&node, &a, &id_a);
    assert!(rs_a.iter().all(|r| r["error"].is_string()), "{rs_a:?}");
    let circuit = v["error"].as_str().is_some_and(|e| e.contains("circuit"))
        || rs_a
            .iter()
            .any(|r| r["error"].as_str().is_some_and(|e| e.contains("circuit")));
    assert!(
        circuit,
        "A's breaker opened (else this test proves nothing): {v} {rs_a:?}"
    );

    // B, right away (within the breaker's cooldown), same base_url and model.
    let id_b = submit(&node, &b, &spec_with(provider, "b", 10));
    let v = wait_status(&node, &b, &id_b, TERMINAL);
    assert_eq!(v["status"], "completed", "{v}");
    for r in results(&node, &b, &id_b) {
        assert!(
            r["error"].is_null(),
            "B is not affected by A's breaker: {r}"
        );
        assert_eq!(r["output"], "ok", "{r}");
    }
    assert_eq!(server.with_bearer(KEY_B), 10, "every B case was called");
}

#[test]
fn metrics_hold_no_tenant_controlled_strings() {
    // Attack: write strings into provider ids, models and URLs that then appear on the
    // unauthenticated /metrics page (a covert channel, and label-cardinality blow-up).
    let server = Mock::start(|s| {
        if s.prompt.contains("fail") {
            Reply::Status(500, "application/json", "{}".into())
        } else {
            Reply::Complete("ok".into())
        }
    });
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let authority = format!("127.0.0.1:{}", server.port);
    put_credential(
        &node,
        &key,
        "tenant-cred-name",
        "sk-metrics-0123456789",
        std::slice::from_ref(&authority),
    );
    let spec = json!({
        "providers": [openai("tenant-secret-provider-id", &server.base_url(), "tenant-model-name", Some("tenant-cred-name"))],
        "prompt": "{{q}}",
        "cases": [
            {"vars": {"q": "hello"}, "reference": "ok"},
            {"vars": {"q": "please fail"}, "reference": "ok"}
        ],
        "scorers": [{"type": "exact_match"}],
        "concurrency": 1,
        "max_retries": 0
    });
    let id = submit(&node, &key, &spec);
    let v = wait_status(&node, &key, &id, TERMINAL);
    assert_eq!(v["status"], "completed", "{v}");
    assert!(server.count() >= 2, "{:?}", server.seen());
    let m = node.get("/metrics", None);
    assert_eq!(m.status, 200, "{}", m.text);
    for s in [
        "tenant-secret-provider-id",
        "tenant-model-name",
        "tenant-cred-name",
        authority.as_str(),
    ] {
        assert!(!m.text.contains(s), "/metrics contains {s:?}:\n{}", m.text);
    }
}

// ---------------------------------------------------------------------------------------
// Stopping a tenant.

#[test]
fn an_admin_can_cancel_any_tenants_evaluation_and_a_tenant_cannot_use_that_route() {
    // Attack: a tenant cancels (or probes) other tenants' evaluations through the admin
    // route; and an operator must be able to stop a runaway evaluation.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let a = tenant(&node, "tenant-a");
    let b = tenant(&node, "tenant-b");
    let id = submit(&node, &a, &slow_spec());
    wait_some_progress(&node, &a, &id);

    let path = format!("/v1/admin/evaluations/{id}/cancel");
    for k in [&b, &a] {
        let r = node.call("POST", &path, Some(k), None);
        assert!(
            [401, 403].contains(&r.status),
            "a tenant key on the admin route: {} {}",
            r.status,
            r.text
        );
    }
    let r = node.call("POST", &path, None, None);
    assert!([401, 403].contains(&r.status), "{} {}", r.status, r.text);
    assert_ne!(get_eval(&node, &a, &id)["status"], "cancelled");

    let r = node.call("POST", &path, Some(ADMIN_TOKEN), None);
    assert_eq!(r.ok()["status"], "cancelled", "{}", r.text);
    let v = wait_status(&node, &a, &id, &["cancelled"]);
    assert!(v["finished_at_ms"].as_u64().is_some(), "{v}");
    node.call(
        "POST",
        "/v1/admin/evaluations/ev_doesnotexist/cancel",
        Some(ADMIN_TOKEN),
        None,
    )
    .problem(404);
}

#[test]
fn suspending_a_tenant_cancels_its_running_evaluations() {
    // Attack: a tenant whose keys were suspended keeps spending through evaluations it
    // started before.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let id = submit(&node, &key, &slow_spec());
    wait_some_progress(&node, &key, &id);

    node.admin("PATCH", "/v1/tenants/acme", &json!({"status": "suspended"}))
        .ok();
    node.get(&format!("/v1/evaluations/{id}"), Some(&key))
        .problem(403);
    // Reactivated only to read the evaluation back with the tenant's key.
    node.admin("PATCH", "/v1/tenants/acme", &json!({"status": "active"}))
        .ok();
    let v = wait_status(&node, &key, &id, TERMINAL);
    assert_eq!(v["status"], "cancelled", "{v}");
    let done = v["progress"]["done"].as_u64().unwrap();
    assert!(done < 50, "stopped early: {v}");
    // Nothing more is recorded afterwards (a checkpoint interval and a few cases later).
    std::thread::sleep(Duration::from_millis(900));
    let later = get_eval(&node, &key, &id);
    assert_eq!(later["status"], "cancelled", "{later}");
    assert_eq!(later["progress"]["done"], done, "{later}");
}

#[test]
fn a_tenant_cannot_run_more_evaluations_at_once_than_its_cap() {
    // Attack: submit evaluations without end, each within the per-spec caps, to hold every
    // provider slot and scoring thread of the cluster.
    let dir = temp_dir();
    let node = Node::start_with(
        dir.path(),
        NodeOptions {
            sets: vec!["evaluations.max_live_per_tenant=2".into()],
            ..NodeOptions::default()
        },
    );
    let key = tenant(&node, "acme");
    let other = tenant(&node, "bystander");
    let first = submit(&node, &key, &slow_spec());
    let _second = submit(&node, &key, &slow_spec());
    let r = node.call("POST", "/v1/evaluations", Some(&key), Some(&slow_spec()));
    let p = r.problem(409);
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("evaluations.max_live_per_tenant")),
        "{p}"
    );
    let list = node.get("/v1/evaluations", Some(&key));
    assert_eq!(
        list.ok()["evaluations"].as_array().map(Vec::len),
        Some(2),
        "the refused submission left nothing behind"
    );
    // Another tenant is not held back by acme's cap.
    let theirs = submit(&node, &other, &slow_spec());
    // Once one of acme's ends there is room again.
    node.call(
        "POST",
        &format!("/v1/evaluations/{first}/cancel"),
        Some(&key),
        None,
    )
    .ok();
    wait_status(&node, &key, &first, TERMINAL);
    submit(&node, &key, &slow_spec());
    node.call(
        "POST",
        &format!("/v1/evaluations/{theirs}/cancel"),
        Some(&other),
        None,
    )
    .ok();
}

#[test]
fn a_tenant_cannot_store_evaluations_without_end() {
    // Attack: submit and cancel in a loop (a cancelled evaluation is no longer live), so
    // that every replica keeps each record and spec forever.
    let dir = temp_dir();
    let node = Node::start_with(
        dir.path(),
        NodeOptions {
            sets: vec!["evaluations.max_stored_per_tenant=2".into()],
            ..NodeOptions::default()
        },
    );
    let key = tenant(&node, "acme");
    let done = submit(&node, &key, &small_spec(2));
    wait_status(&node, &key, &done, TERMINAL);
    let running = submit(&node, &key, &slow_spec());
    let refused = node.call("POST", "/v1/evaluations", Some(&key), Some(&small_spec(1)));
    let p = refused.problem(409);
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("evaluations.max_stored_per_tenant")),
        "{p}"
    );
    // A running evaluation is not deleted (cancel it first); another tenant's is unseen.
    node.call(
        "DELETE",
        &format!("/v1/evaluations/{running}"),
        Some(&key),
        None,
    )
    .problem(409);
    let other = tenant(&node, "bystander");
    node.call(
        "DELETE",
        &format!("/v1/evaluations/{done}"),
        Some(&other),
        None,
    )
    .problem(404);
    // Deleting an ended one frees its place, and it is gone with its results.
    let r = node.call(
        "DELETE",
        &format!("/v1/evaluations/{done}"),
        Some(&key),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text);
    node.get(&format!("/v1/evaluations/{done}"), Some(&key))
        .problem(404);
    node.get(&format!("/v1/evaluations/{done}/results"), Some(&key))
        .problem(404);
    let again = submit(&node, &key, &small_spec(1));
    wait_status(&node, &key, &again, TERMINAL);
    let audit = node.admin_get("/v1/audit?limit=1000");
    assert!(audit.text.contains("evaluation.delete"), "{}", audit.text);
    node.call(
        "POST",
        &format!("/v1/evaluations/{running}/cancel"),
        Some(&key),
        None,
    )
    .ok();
}

/// Starts `GET path` with `key` on a raw connection and reads only the status line and
/// headers: the body stays unread, as a client that stops reading would leave it.
fn open_unread(node: &Node, path: &str, key: &str) -> (std::net::TcpStream, String) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(&node.http_addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: colony\r\nAuthorization: Bearer {key}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (conn, String::from_utf8_lossy(&head).into_owned())
}

#[test]
fn a_tenant_cannot_hold_the_nodes_export_streams() {
    // Attack: open many large exports and never read them, so that every stream (and a page
    // of results each) stays in the node's memory and nobody else can export.
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let other = tenant(&node, "bystander");
    // 300 echoed outputs of 60 KB: an 18 MB export, more than loopback buffers hold.
    let spec = json!({
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "{{v}}".repeat(60),
        "cases": (0..300).map(|i| json!({"vars": {"v": format!("{i:04}").repeat(250)}, "reference": "x"})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}],
        "concurrency": 32
    });
    let id = submit(&node, &key, &spec);
    let v = wait_status(&node, &key, &id, TERMINAL);
    assert_eq!(v["status"], "completed", "{v}");
    let path = format!("/v1/evaluations/{id}/results?format=jsonl");
    let (first, head) = open_unread(&node, &path, &key);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (_second, head) = open_unread(&node, &path, &key);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let third = node.get(&path, Some(&key));
    let p = third.problem(429);
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains("exports")),
        "{p}"
    );
    // Another tenant still exports (its own evaluation).
    let theirs = submit(&node, &other, &small_spec(2));
    wait_status(&node, &other, &theirs, TERMINAL);
    let r = node.get(
        &format!("/v1/evaluations/{theirs}/results?format=jsonl"),
        Some(&other),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Closing one stream frees its slot.
    drop(first);
    eventually(WAIT, "the closed stream's slot is free again", || {
        let r = node.get(&path, Some(&key));
        (r.status == 200).then_some(())
    });
}

/// A short builtin evaluation of `n` cases.
fn small_spec(n: usize) -> Value {
    json!({
        "providers": [{"id": "m", "kind": "builtin", "model": "mock"}],
        "prompt": "case {{i}}",
        "cases": (0..n).map(|i| json!({"vars": {"i": i}, "reference": format!("case {i}")})).collect::<Vec<_>>(),
        "scorers": [{"type": "exact_match"}]
    })
}

// ---------------------------------------------------------------------------------------
// Rate limits.

#[test]
fn a_rate_limit_duration_of_u64_max_is_an_error_not_an_overflow() {
    // Attack: `duration_ms` = u64::MAX to overflow the bucket arithmetic (panic, or a
    // bucket that never refills or never expires).
    let dir = temp_dir();
    let node = Node::start(dir.path());
    let key = tenant(&node, "acme");
    let body = json!({"requests": [
        {"name": "n", "key": "k", "limit": 10, "duration_ms": 18446744073709551615u64}
    ]});
    let r = node.call("POST", "/v1/ratelimit/check", Some(&key), Some(&body));
    let refused = (400..500).contains(&r.status)
        || (r.status == 200 && r.json["responses"][0]["error"].is_string());
    assert!(refused, "{} {}", r.status, r.text);
    // The node still serves, and a sane check still works.
    assert_eq!(node.get("/healthz", None).status, 200);
    let sane = json!({"requests": [{"name": "n", "key": "k2", "limit": 10, "duration_ms": 60000}]});
    let r = node.call("POST", "/v1/ratelimit/check", Some(&key), Some(&sane));
    let ok = r.ok();
    assert!(ok["responses"][0].get("error").is_none(), "{ok}");
    assert_eq!(ok["responses"][0]["status"], "under_limit", "{ok}");
}

// ---------------------------------------------------------------------------------------
// Secrets hygiene.

const EXIT_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn a_placeholder_cluster_secret_is_refused_at_start() {
    // Attack: a deployment left with the shipped CHANGE-ME secret (anyone can join).
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap();
    let (code, stderr) = run_to_exit(
        &[
            "node",
            "--bootstrap",
            "--data-dir",
            d,
            "--http",
            "127.0.0.1:0",
            "--gossip",
            "127.0.0.1:0",
            "--raft",
            "127.0.0.1:0",
            "--cluster",
            "127.0.0.1:0",
        ],
        &[
            (
                "COLONY_CLUSTER_SECRET",
                "CHANGE-ME-cluster-secret-0123456789abcdef",
            ),
            ("COLONY_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
        EXIT_WITHIN,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cluster.secret"), "{stderr}");
    assert!(
        !stderr.contains("CHANGE-ME-cluster-secret-0123456789abcdef"),
        "the refused secret is not echoed: {stderr}"
    );
}

#[test]
fn a_cluster_secret_on_the_command_line_is_refused() {
    // Attack: any local user reads a node's command line (ps, /proc/PID/cmdline), so a
    // secret passed as --set cluster.secret=... is everyone's.
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap();
    let set = format!("cluster.secret={CLUSTER_SECRET}");
    let (code, stderr) = run_to_exit(
        &[
            "node",
            "--data-dir",
            d,
            "--http",
            "127.0.0.1:0",
            "--set",
            &set,
        ],
        &[("COLONY_ADMIN_TOKEN", ADMIN_TOKEN)],
        EXIT_WITHIN,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--set cluster.secret"), "{stderr}");
    assert!(stderr.contains("COLONY_CLUSTER_SECRET"), "{stderr}");
    assert!(!stderr.contains(CLUSTER_SECRET), "not echoed: {stderr}");
}

#[test]
fn a_low_entropy_admin_token_is_refused_at_start() {
    // Attack: guessing an admin token of one repeated character.
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap();
    let (code, stderr) = run_to_exit(
        &[
            "node",
            "--data-dir",
            d,
            "--http",
            "127.0.0.1:0",
            "--gossip",
            "127.0.0.1:0",
            "--raft",
            "127.0.0.1:0",
            "--cluster",
            "127.0.0.1:0",
        ],
        &[
            (
                "COLONY_ADMIN_TOKEN",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
            ("COLONY_CLUSTER_SECRET", CLUSTER_SECRET),
        ],
        EXIT_WITHIN,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("COLONY_ADMIN_TOKEN"), "{stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_nodes_secrets_are_gone_from_its_proc_environ() {
    // Attack: anything that can read the node's /proc/PID/environ (a crash dump, a debug
    // endpoint, a process of the same user) reads the secrets the node started with, even
    // though the node removed them from its environment.
    let dir = temp_dir();
    let node = Node::start_with(
        dir.path(),
        NodeOptions {
            env: vec![("HOSTILE_TEST_HARMLESS".into(), "stays-visible".into())],
            ..NodeOptions::default()
        },
    );
    let environ = std::fs::read(format!("/proc/{}/environ", node.pid())).unwrap();
    let text = String::from_utf8_lossy(&environ);
    for secret in [ADMIN_TOKEN, CLUSTER_SECRET] {
        assert!(!text.contains(secret), "a secret is in /proc/PID/environ");
    }
    // The block is still there, and other variables in it are untouched.
    assert!(
        text.contains("HOSTILE_TEST_HARMLESS=stays-visible"),
        "{text}"
    );
    assert!(
        text.contains("COLONY_ADMIN_TOKEN="),
        "the name stays, its value is zeroed"
    );
}

/// Every entry under `dir` whose mode is not 0700 (directories) or 0600 (files), and how
/// many entries were checked.
fn loose_modes(dir: &Path, bad: &mut Vec<String>, checked: &mut usize) {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let mode = meta.permissions().mode() & 0o777;
    if meta.file_type().is_symlink() {
        return;
    }
    *checked += 1;
    if meta.is_dir() {
        if mode != 0o700 {
            bad.push(format!("{} dir {mode:o}", dir.display()));
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        for entry in entries.flatten() {
            loose_modes(&entry.path(), bad, checked);
        }
    } else if mode != 0o600 {
        bad.push(format!("{} file {mode:o}", dir.display()));
    }
}

#[test]
fn every_file_in_the_data_dir_is_private_to_the_node_user() {
    // Attack: another local user reads sealed credentials, keys or the Raft log from the
    // data dir (the test process keeps its usual umask, e.g. 022).
    let dir = temp_dir();
    // A data dir the node creates itself.
    let data = dir.path().join("data");
    let mut node = Node::start(&data);
    let key = tenant(&node, "acme");
    put_credential(
        &node,
        &key,
        "openai",
        "sk-on-disk-0123456789",
        &["api.example.com:443".to_string()],
    );
    let id = submit(
        &node,
        &key,
        &json!({
            "providers": [{"id": "e", "kind": "builtin", "model": "echo"}],
            "prompt": "{{q}}",
            "cases": [{"vars": {"q": "one"}, "reference": "one"}],
            "scorers": [{"type": "exact_match"}]
        }),
    );
    wait_status(&node, &key, &id, &["completed"]);

    let mut bad = Vec::new();
    let mut checked = 0;
    loose_modes(&data, &mut bad, &mut checked);
    assert!(checked > 1, "the data dir holds files");
    assert!(bad.is_empty(), "while running: {bad:#?}");

    node.kill9();
    let mut bad = Vec::new();
    let mut checked = 0;
    loose_modes(&data, &mut bad, &mut checked);
    assert!(bad.is_empty(), "after the process ended: {bad:#?}");
}
