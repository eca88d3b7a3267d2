//! Bucket ownership changes under traffic: a node joining and a node draining hand their
//! buckets over exactly; `kill -9` of an owner loses at most what it admitted since its
//! last replication to the successor.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{eventually, Cluster, NodeOptions};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longer than the default `ratelimit.max_duration_ms`: the tests using it raise the cap.
const YEAR_MS: u64 = 365 * 86_400_000;

/// How a whole check request ended, as the client saw it.
enum Answer {
    /// The per-item responses.
    Responses(Vec<Value>),
    /// The connection was refused: the node never saw the request, so nothing was charged.
    Refused,
    /// Anything else (reset, timeout, 5xx): the hits may or may not have been charged.
    Unknown(String),
}

/// One check straight over HTTP (usable from a traffic thread).
fn send_check(url: &str, api_key: &str, items: &Value) -> Answer {
    let res = ureq::post(&format!("{url}/v1/ratelimit/check"))
        .timeout(Duration::from_secs(10))
        .set("authorization", &format!("Bearer {api_key}"))
        .send_json(json!({ "requests": items }));
    match res {
        Ok(res) => match res.into_json::<Value>() {
            Ok(v) => match v["responses"].as_array() {
                Some(r) => Answer::Responses(r.clone()),
                None => Answer::Unknown(format!("no responses in {v}")),
            },
            Err(e) => Answer::Unknown(format!("body: {e}")),
        },
        Err(ureq::Error::Transport(t)) if t.kind() == ureq::ErrorKind::ConnectionFailed => {
            Answer::Refused
        }
        Err(e) => Answer::Unknown(e.to_string()),
    }
}

/// The responses of one check, or `None` when the request failed as a whole.
fn check(url: &str, api_key: &str, items: &Value) -> Option<Vec<Value>> {
    match send_check(url, api_key, items) {
        Answer::Responses(r) => Some(r),
        Answer::Refused | Answer::Unknown(_) => None,
    }
}

/// The API's tenant-scoped bucket key (crates/api/src/routes/ratelimit.rs).
fn bucket_key(tenant: &str, name: &str, key: &str) -> String {
    format!("{}:{tenant}/{}:{name}/{key}", tenant.len(), name.len())
}

fn counter(metrics: &str, event: &str) -> u64 {
    let needle = format!("colony_cluster_events_total{{event=\"{event}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[derive(Default)]
struct Tally {
    admitted: Vec<u64>,
    item_errors: Vec<u64>,
    /// Requests refused at connect: charged nothing.
    refused: u64,
    /// Requests whose outcome the client cannot know (each may have charged one hit per
    /// key), with the first few reasons for the failure message.
    unknown: u64,
    reasons: Vec<String>,
}

#[test]
fn a_join_and_a_drain_under_traffic_hand_buckets_over_exactly() {
    const KEYS: usize = 24;
    const LIMIT: u64 = 5_000;
    // Year-long buckets (so nothing refills during the test) are over the default
    // `ratelimit.max_duration_ms` of one day.
    let opts = NodeOptions {
        sets: vec![format!("ratelimit.max_duration_ms={YEAR_MS}")],
        ..NodeOptions::default()
    };
    let mut c = Cluster::start(3, opts);
    let api_key = c.enterprise_tenant("acme");
    c.wait_active(3);
    c.wait_routable(&api_key);

    let items: Value = json!((0..KEYS)
        .map(
            |k| json!({"name": "moving", "key": format!("user-{k}"), "hits": 1,
            "limit": LIMIT, "duration_ms": YEAR_MS})
        )
        .collect::<Vec<_>>());
    let urls = Arc::new(Mutex::new(
        (0..3).map(|i| c.node(i).url.clone()).collect::<Vec<_>>(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally {
        admitted: vec![0; KEYS],
        item_errors: vec![0; KEYS],
        ..Tally::default()
    }));
    let traffic = {
        let (urls, stop, rounds, tally, items, api_key) = (
            urls.clone(),
            stop.clone(),
            rounds.clone(),
            tally.clone(),
            items.clone(),
            api_key.clone(),
        );
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let url = {
                    let u = urls.lock().unwrap();
                    u[i % u.len()].clone()
                };
                i += 1;
                let answer = send_check(&url, &api_key, &items);
                let mut t = tally.lock().unwrap();
                match answer {
                    Answer::Responses(responses) => {
                        for (k, r) in responses.iter().enumerate() {
                            if let Some(e) = r.get("error") {
                                t.item_errors[k] += 1;
                                if t.reasons.len() < 5 {
                                    t.reasons.push(format!("item {k} via {url}: {e}"));
                                }
                            } else if r["status"] == "under_limit" {
                                t.admitted[k] += 1;
                            }
                        }
                    }
                    Answer::Refused => t.refused += 1,
                    Answer::Unknown(why) => {
                        t.unknown += 1;
                        if t.reasons.len() < 5 {
                            t.reasons.push(format!("request via {url}: {why}"));
                        }
                    }
                }
                drop(t);
                rounds.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let wait_rounds = |more: usize| {
        let target = rounds.load(Ordering::Relaxed) + more;
        eventually(Duration::from_secs(60), "traffic rounds", || {
            (rounds.load(Ordering::Relaxed) >= target).then_some(())
        });
    };
    wait_rounds(50);

    // A fourth node joins: the buckets it now owns move to it from their old owners.
    let joined = c.add();
    c.wait_active(4);
    urls.lock().unwrap().push(c.node(joined).url.clone());
    wait_rounds(100);

    // Node 1 drains (SIGTERM) while it still takes traffic: it hands its buckets over and
    // forwards what still reaches it, then exits 0.
    let drained_url = c.node(1).url.clone();
    let logs: Vec<_> = (0..4).map(|i| c.node(i).log.clone()).collect();
    let status = c.terminate(1, Duration::from_secs(30));
    assert!(status.success(), "drain exits 0: {status:?}");
    urls.lock().unwrap().retain(|u| *u != drained_url);
    c.wait_active(3);
    wait_rounds(100);
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();

    let t = tally.lock().unwrap();
    // On failure, the nodes' logs say which handover went wrong.
    if t.item_errors.iter().sum::<u64>() > 0 || t.unknown > 0 {
        for (i, l) in logs.iter().enumerate() {
            eprintln!("==== node {i}\n{}", l.text());
        }
    }
    eprintln!(
        "admitted per key {:?}; item errors {:?}; refused {}; unknown outcome {}; {:?}",
        t.admitted, t.item_errors, t.refused, t.unknown, t.reasons
    );
    // Every hit the clients saw admitted is in the bucket, and nothing else: the bucket's
    // remaining count, read through every node, is the limit minus the admitted hits.
    let peeks: Value = json!((0..KEYS)
        .map(
            |k| json!({"name": "moving", "key": format!("user-{k}"), "hits": 0,
            "limit": LIMIT, "duration_ms": YEAR_MS})
        )
        .collect::<Vec<_>>());
    for i in c.running() {
        let responses = check(&c.node(i).url, &api_key, &peeks).unwrap();
        assert_eq!(responses.len(), KEYS);
        for (k, r) in responses.iter().enumerate() {
            let remaining = r["remaining"].as_u64().unwrap();
            let used = LIMIT - remaining;
            // A request that failed as a whole after being sent may have been charged.
            let unknown = t.item_errors[k] + t.unknown;
            assert!(
                used >= t.admitted[k] && used <= t.admitted[k] + unknown,
                "key {k}: {used} hits used, {} admitted (+{unknown} unknown) — node {i}; {:?}",
                t.admitted[k],
                t.reasons
            );
        }
    }
    assert!(
        t.item_errors.iter().sum::<u64>() == 0,
        "items failed during the changes: {:?}; {:?}",
        t.item_errors,
        t.reasons
    );
    assert_eq!(
        t.unknown, 0,
        "requests failed as a whole during the changes: {:?}",
        t.reasons
    );
    // The changes did move buckets (the test exercises handoff, not a lucky placement).
    let moved: u64 = c
        .running()
        .iter()
        .map(|i| {
            let m = c.node(*i).get("/metrics", None).text;
            counter(&m, "buckets_installed") + counter(&m, "buckets_pulled")
        })
        .sum();
    assert!(moved > 0, "no bucket was handed over");
}

#[test]
fn kill_9_of_an_owner_loses_at_most_one_replication_interval() {
    const LIMIT: u64 = 100;
    let mut c = Cluster::start(3, NodeOptions::default());
    let api_key = c.enterprise_tenant("acme");
    c.wait_active(3);
    c.wait_routable(&api_key);
    let ids: Vec<u64> = (0..3).map(|i| c.node(i).id().parse().unwrap()).collect();
    // A key owned by node 1 or 2, sent through node 0 (which survives).
    let name = (0..1000)
        .map(|i| format!("crash-{i}"))
        .find(|n| {
            colony_placement::owner(bucket_key("acme", n, "k").as_bytes(), &ids) != Some(ids[0])
        })
        .unwrap();
    let owner_id =
        colony_placement::owner(bucket_key("acme", &name, "k").as_bytes(), &ids).unwrap();
    let owner = ids.iter().position(|id| *id == owner_id).unwrap();
    let item =
        json!([{"name": name, "key": "k", "hits": 1, "limit": LIMIT, "duration_ms": 86_400_000}]);
    let via = c.node(0).url.clone();

    // (answered at, admitted) of every decision.
    let mut log: Vec<(Instant, bool)> = Vec::new();
    let mut killed_at = None;
    let mut over_in_a_row = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while over_in_a_row < 20 {
        assert!(Instant::now() < deadline, "the key never ran out");
        let answer = check(&via, &api_key, &item);
        let at = Instant::now();
        if let Some(r) = answer.as_ref().and_then(|r| r.first()) {
            if r.get("error").is_none() {
                let ok = r["status"] == "under_limit";
                log.push((at, ok));
                over_in_a_row = if ok { 0 } else { over_in_a_row + 1 };
            }
        }
        if killed_at.is_none() && log.iter().filter(|(_, ok)| *ok).count() >= 50 {
            c.kill9(owner);
            killed_at = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let killed_at = killed_at.unwrap();
    let admitted = log.iter().filter(|(_, ok)| *ok).count() as u64;
    // What the owner may have admitted after its last replication: one interval (100 ms)
    // plus the send, counted generously (500 ms) for a busy machine.
    let window = Duration::from_millis(500);
    let at_risk = log
        .iter()
        .filter(|(at, ok)| *ok && *at <= killed_at && killed_at.duration_since(*at) <= window)
        .count() as u64;
    let resumed = log
        .iter()
        .find(|(at, _)| *at > killed_at)
        .map(|(at, _)| at.duration_since(killed_at))
        .unwrap();
    eprintln!(
        "admitted {admitted} of limit {LIMIT}; {at_risk} admitted in the {window:?} before the kill; service back after {resumed:?}"
    );
    assert!(
        admitted <= LIMIT + at_risk,
        "over-admission beyond the bound: {admitted} > {LIMIT} + {at_risk}"
    );
    assert!(
        resumed < Duration::from_secs(15),
        "service for the key came back after {resumed:?}"
    );
}

#[test]
fn draining_another_node_over_the_api_hands_its_buckets_over() {
    let mut c = Cluster::start(3, NodeOptions::default());
    let api_key = c.enterprise_tenant("acme");
    c.wait_active(3);
    c.wait_routable(&api_key);
    let ids: Vec<u64> = (0..3).map(|i| c.node(i).id().parse().unwrap()).collect();
    let name = (0..1000)
        .map(|i| format!("drained-{i}"))
        .find(|n| {
            colony_placement::owner(bucket_key("acme", n, "k").as_bytes(), &ids) == Some(ids[2])
        })
        .unwrap();
    let hit = |c: &Cluster, node: usize, hits: u64| {
        let item = json!([{"name": name, "key": "k", "hits": hits, "limit": 10, "duration_ms": 86_400_000}]);
        check(&c.node(node).url, &api_key, &item).unwrap()[0].clone()
    };
    for _ in 0..6 {
        assert_eq!(hit(&c, 0, 1)["status"], "under_limit");
    }

    // Bad requests name what is wrong and drain nothing.
    let bad = c
        .node(0)
        .admin("POST", "/v1/cluster/drain", &json!({"node_id": "abc"}));
    assert_eq!(bad.problem(422)["pointer"], "/node_id", "{}", bad.text);
    let unknown = c
        .node(0)
        .admin("POST", "/v1/cluster/drain", &json!({"node_id": "12345"}));
    unknown.problem(404);
    assert!(c.node(0).admin_get("/v1/cluster").json["drain"].is_null());

    // Node 0 asks node 2 (the bucket's owner) to drain: it exits 0 and the bucket lives on
    // with exactly the 4 hits it had left.
    let r = c.node(0).admin(
        "POST",
        "/v1/cluster/drain",
        &json!({"node_id": ids[2].to_string()}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["state"], "draining");
    // While it drains, the node still answers but asks clients to close their connection,
    // so none sends its next request into a socket the shutdown is about to close.
    let closes = eventually(Duration::from_secs(10), "connection: close", || {
        let res = c.node(2).get("/healthz", None);
        let close = res
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        (res.status == 0 || close).then_some(res.status)
    });
    assert_eq!(
        closes, 200,
        "the draining node answered with connection: close"
    );
    let status = c.wait_exit(2, Duration::from_secs(30));
    assert!(status.success(), "a drained node exits 0: {status:?}");
    c.wait_active(2);
    assert_eq!(
        hit(&c, 1, 0)["remaining"],
        4,
        "the count moved with the bucket"
    );
    let more: usize = (0..8)
        .filter(|i| hit(&c, i % 2, 1)["status"] == "under_limit")
        .count();
    assert_eq!(more, 4);
}
