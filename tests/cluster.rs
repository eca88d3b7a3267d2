//! Multi-node clusters of the real binary on loopback: replication, any-node writes,
//! failover, catch-up, voter replacement, partitions. Every test is bounded in time and
//! kills its processes on exit (the harness's guards).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{eventually, Cluster, Node, NodeOptions, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn opts(sets: &[&str]) -> NodeOptions {
    NodeOptions {
        sets: sets.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Creates tenant `id` through `node`; returns whether it was acknowledged (2xx).
fn create(node: &Node, id: &str) -> bool {
    let r = node.admin("POST", "/v1/tenants", &json!({"id": id, "name": id}));
    if !(200..300).contains(&r.status) {
        println!(
            "write {id} via {} failed: {} {}",
            node.url, r.status, r.text
        );
    }
    (200..300).contains(&r.status)
}

fn tenant_ids(node: &Node, consistent: bool) -> BTreeSet<String> {
    let q = if consistent { "?consistent=true" } else { "" };
    let r = node.admin_get(&format!("/v1/tenants{q}"));
    r.ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

fn cluster_view(node: &Node) -> Value {
    node.admin_get("/v1/cluster").ok().clone()
}

fn voters(node: &Node) -> BTreeSet<String> {
    cluster_view(node)["raft"]["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn writes_through_every_node_are_readable_on_every_node() {
    let c = Cluster::start(3, NodeOptions::default());
    for i in 0..3 {
        assert!(
            create(c.node(i), &format!("via-{i}")),
            "write through node {i} failed"
        );
        // A linearizable read on any other node sees the write at once.
        let other = c.node((i + 1) % 3);
        assert!(
            tenant_ids(other, true).contains(&format!("via-{i}")),
            "consistent read on a follower missed a write"
        );
    }
    let want: BTreeSet<String> = (0..3).map(|i| format!("via-{i}")).collect();
    for i in 0..3 {
        eventually(Duration::from_secs(10), "local reads catch up", || {
            (tenant_ids(c.node(i), false) == want).then_some(())
        });
    }
    c.wait_converged(Duration::from_secs(10));
    let view = cluster_view(c.node(1));
    let members = view["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{view}");
    assert!(members.iter().all(|m| m["state"] == "active"), "{view}");
    assert_eq!(view["raft"]["voters"].as_array().unwrap().len(), 3);
    // Forwarded writes are counted on the nodes that forwarded them.
    let followers: Vec<usize> = (0..3)
        .filter(|i| *i != c.leader(Duration::from_secs(5)))
        .collect();
    let metrics = c.node(followers[0]).get("/metrics", None).text;
    assert!(
        metrics.contains("colony_cluster_events_total{event=\"forwarded_writes\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("colony_members{state=\"active\"} 3"),
        "{metrics}"
    );
}

#[test]
fn killing_the_leader_elects_a_new_one_and_loses_nothing() {
    let mut c = Cluster::start(3, NodeOptions::default());
    let mut acked = Vec::new();
    for i in 0..5 {
        let id = format!("before-{i}");
        assert!(create(c.node(i % 3), &id));
        acked.push(id);
    }
    let old = c.leader(Duration::from_secs(10));
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let killed_at = Instant::now();
    c.kill9(old);
    // Time from the kill to the first acknowledged write through a survivor.
    let mut n = 0;
    let first_write = eventually(
        Duration::from_secs(30),
        "a write succeeds after the leader died",
        || {
            n += 1;
            let id = format!("after-{n}");
            let node = c.node(survivors[n % 2]);
            let ok = create(node, &id);
            if ok {
                acked.push(id);
            }
            ok.then(|| killed_at.elapsed())
        },
    );
    println!(
        "failover: kill -9 of the leader to first successful write: {} ms",
        first_write.as_millis()
    );
    let new = c.leader(Duration::from_secs(10));
    assert_ne!(new, old);
    for i in 0..5 {
        let id = format!("later-{i}");
        assert!(create(c.node(survivors[i % 2]), &id));
        acked.push(id);
    }
    // The old leader comes back as a follower and catches up; nothing acknowledged is lost.
    c.restart(old);
    c.wait_converged(Duration::from_secs(30));
    for i in 0..3 {
        let ids = tenant_ids(c.node(i), false);
        for id in &acked {
            assert!(ids.contains(id), "node {i} lost acknowledged write {id}");
        }
    }
}

#[test]
fn a_restarted_follower_catches_up_from_log_or_snapshot() {
    // Small snapshot thresholds so the follower catches up from a snapshot once the log it
    // missed has been purged.
    let mut c = Cluster::start(
        3,
        opts(&[
            "raft.snapshot_after_logs=10",
            "raft.logs_kept_after_snapshot=2",
        ]),
    );
    let leader = c.leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    c.kill9(follower);
    for i in 0..40 {
        assert!(create(c.node(leader), &format!("t{i}")));
    }
    c.restart(follower);
    let (head, entries) = c.wait_converged(Duration::from_secs(30));
    assert!(entries > 40);
    assert_eq!(c.audit_head(follower), (head, entries));
    assert_eq!(tenant_ids(c.node(follower), false).len(), 40);
}

#[test]
fn five_voters_replace_one_down_past_grace_and_it_rejoins_as_learner() {
    let base = opts(&["cluster.voter_down_grace_ms=2000"]);
    let mut c = Cluster::start(6, base);
    let first = c.node(0);
    eventually(Duration::from_secs(60), "5 voters and 1 learner", || {
        let v = cluster_view(first);
        (v["raft"]["voters"].as_array()?.len() == 5 && v["raft"]["learners"].as_array()?.len() == 1)
            .then_some(())
    });
    let leader = c.leader(Duration::from_secs(10));
    let ids: Vec<String> = (0..6).map(|i| c.node(i).id()).collect();
    let voter_set = voters(c.node(leader));
    let victim = (0..6)
        .find(|i| *i != leader && voter_set.contains(&ids[*i]))
        .unwrap();
    let victim_id = ids[victim].clone();
    c.kill9(victim);
    let killed_at = Instant::now();
    let replaced = eventually(
        Duration::from_secs(60),
        "the dead voter is replaced",
        || {
            let v = voters(c.node(leader));
            (v.len() == 5 && !v.contains(&victim_id)).then(|| killed_at.elapsed())
        },
    );
    println!(
        "voter replacement after kill -9 (grace 2 s): {} ms",
        replaced.as_millis()
    );
    assert!(create(c.node(leader), "still-writable"));
    // Back again: 5 voters already, so it rejoins as a learner.
    c.restart(victim);
    eventually(
        Duration::from_secs(60),
        "the restarted node is a learner",
        || {
            let v = cluster_view(c.node(leader));
            let learners: Vec<&str> = v["raft"]["learners"]
                .as_array()?
                .iter()
                .filter_map(|x| x.as_str())
                .collect();
            (learners.contains(&victim_id.as_str()) && v["raft"]["voters"].as_array()?.len() == 5)
                .then_some(())
        },
    );
    c.wait_converged(Duration::from_secs(30));
}

#[test]
fn a_partitioned_minority_cannot_commit_and_the_majority_keeps_working() {
    let base = opts(&["cluster.fault_injection=true", "http.write_timeout_ms=2000"]);
    let c = Cluster::start(3, base);
    let mut acked = vec![];
    assert!(create(c.node(0), "before"));
    acked.push("before".to_string());
    let old_leader = c.leader(Duration::from_secs(10));
    let ids: Vec<String> = (0..3).map(|i| c.node(i).id()).collect();
    let others: Vec<usize> = (0..3).filter(|i| *i != old_leader).collect();
    // Cut the leader off from both others, in both directions.
    let cut = |i: usize, peers: Vec<String>| {
        let r = c.node(i).admin(
            "PUT",
            "/v1/testing/faults",
            &json!({"block_out": peers, "block_in": peers}),
        );
        r.ok();
    };
    cut(old_leader, others.iter().map(|i| ids[*i].clone()).collect());
    for i in &others {
        cut(*i, vec![ids[old_leader].clone()]);
    }
    // The minority says so with a 503 problem and commits nothing.
    let r = c.node(old_leader).admin(
        "POST",
        "/v1/tenants",
        &json!({"id": "minority", "name": "m"}),
    );
    r.problem(503);
    // The majority elects a leader and keeps working.
    // Each attempt uses a new id: a 503 may still commit later, and must not block retries.
    let mut attempt = 0;
    let first = eventually(
        Duration::from_secs(30),
        "the majority accepts writes",
        || {
            attempt += 1;
            let id = format!("majority-try-{attempt}");
            create(c.node(others[0]), &id).then_some(id)
        },
    );
    acked.push(first);
    assert!(create(c.node(others[1]), "majority-2"));
    acked.push("majority-2".to_string());
    assert!(!tenant_ids(c.node(others[0]), true).contains("minority"));
    // The cut-off leader still thinks it leads (openraft has no step-down), but once it
    // has heard from no majority for 2 election timeouts it refuses at once, saying why,
    // instead of holding writes and consistent reads until the client gives up.
    let mut attempt = 0;
    eventually(
        Duration::from_secs(15),
        "the cut-off leader refuses writes, naming the lost majority",
        || {
            attempt += 1;
            let r = c.node(old_leader).admin(
                "POST",
                "/v1/tenants",
                &json!({"id": format!("minority-{attempt}"), "name": "m"}),
            );
            (r.status == 503 && r.text.contains("heard from no majority")).then_some(())
        },
    );
    let read = c.node(old_leader).admin_get("/v1/tenants?consistent=true");
    assert!(
        read.problem(503)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("heard from no majority")),
        "{}",
        read.text
    );
    // Heal: everyone converges on the majority's history, with one leader.
    for i in 0..3 {
        cut(i, vec![]);
    }
    c.leader(Duration::from_secs(30));
    c.wait_converged(Duration::from_secs(30));
    for i in 0..3 {
        let tenants = tenant_ids(c.node(i), false);
        assert!(
            !tenants.iter().any(|t| t.starts_with("minority")),
            "an unacknowledged minority write was committed: {tenants:?}"
        );
        for id in &acked {
            assert!(tenants.contains(id), "node {i} lost {id}");
        }
        eventually(
            Duration::from_secs(20),
            "every node ready after healing",
            || (c.node(i).get("/readyz", None).status == 200).then_some(()),
        );
    }
}

#[test]
fn slow_links_are_survived_and_a_leader_whose_messages_are_all_lost_is_replaced() {
    let base = opts(&["cluster.fault_injection=true", "http.write_timeout_ms=2000"]);
    let c = Cluster::start(3, base);
    let set = |i: usize, body: serde_json::Value| {
        c.node(i)
            .admin("PUT", "/v1/testing/faults", &body)
            .ok()
            .clone()
    };
    // Bad impairments are refused, naming the field.
    let bad = c
        .node(0)
        .admin("PUT", "/v1/testing/faults", &json!({"loss_percent": 101}));
    assert_eq!(bad.problem(422)["pointer"], "/loss_percent");
    let bad = c
        .node(0)
        .admin("PUT", "/v1/testing/faults", &json!({"delay_ms": 20_000}));
    assert_eq!(bad.problem(422)["pointer"], "/delay_ms");
    // Every node's Raft and gossip traffic 40 ms late: the cluster keeps committing. (Not
    // 100 ms or more: openraft times an append out after raft.heartbeat_ms, 100 ms here.)
    for i in 0..3 {
        assert_eq!(set(i, json!({"delay_ms": 40}))["delay_ms"], 40);
    }
    let mut acked = vec![];
    let mut attempt = 0;
    acked.push(eventually(
        Duration::from_secs(30),
        "a write commits over slow links",
        || {
            attempt += 1;
            let id = format!("slow-{attempt}");
            create(c.node(0), &id).then_some(id)
        },
    ));
    // Everything the leader sends is lost (it still hears the others): they elect
    // another leader and keep committing.
    for i in 0..3 {
        set(i, json!({}));
    }
    let old_leader = c.leader(Duration::from_secs(10));
    set(old_leader, json!({"loss_percent": 100}));
    let other = (old_leader + 1) % 3;
    let mut attempt = 0;
    acked.push(eventually(
        Duration::from_secs(30),
        "the others commit without the muted leader",
        || {
            attempt += 1;
            let id = format!("muted-{attempt}");
            create(c.node(other), &id).then_some(id)
        },
    ));
    let muted_id = c.node(old_leader).id();
    let seen = c.node(other).admin_get("/v1/cluster");
    assert_ne!(
        seen.ok()["raft"]["leader"].as_str(),
        Some(muted_id.as_str()),
        "the write was committed by a leader other than the muted one"
    );
    set(old_leader, json!({}));
    c.leader(Duration::from_secs(30));
    c.wait_converged(Duration::from_secs(30));
    for i in 0..3 {
        let tenants = tenant_ids(c.node(i), false);
        for id in &acked {
            assert!(tenants.contains(id), "node {i} lost {id}");
        }
    }
}

#[test]
fn fault_injection_is_off_by_default_and_strangers_cannot_join() {
    let c = Cluster::start(1, NodeOptions::default());
    c.node(0)
        .admin("PUT", "/v1/testing/faults", &json!({"block_out": []}))
        .problem(404);
    // A node with the wrong secret seeding into the cluster never becomes a member.
    let dir = harness::temp_dir();
    let stranger = Node::start_with(
        dir.path(),
        NodeOptions {
            seeds: vec![c.node(0).gossip_addr.clone()],
            env: vec![(
                "COLONY_CLUSTER_SECRET".into(),
                "5e8a2c7f1b9d3e6a4c0f8b2d7e1a5c9f3b6d0e4a8c2f7b1d9e5a3c6f0b8d4e2a".into(),
            )],
            no_wait_ready: true,
            ..Default::default()
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stranger.get("/readyz", None).status, 503);
    let view = cluster_view(c.node(0));
    assert_eq!(view["members"].as_array().unwrap().len(), 1, "{view}");
    let metrics = c.node(0).get("/metrics", None).text;
    let rejected = metrics
        .lines()
        .find(|l| l.starts_with("colony_cluster_events_total{event=\"gossip_packets_rejected\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        rejected > 0,
        "the stranger's packets are rejected:\n{metrics}"
    );
}

#[test]
fn colony_dev_starts_a_cluster_and_stops_it_on_sigterm() {
    let dir = harness::temp_dir();
    // Pick a base port whose 3 x 3 ports are free right now.
    let base = (0..50)
        // Below Linux's ephemeral range (32768+), so no other test's port-0 bind can take
        // one of these ports between the check and colony dev binding it.
        .map(|k| 20000 + (std::process::id() as u16 % 190) * 60 + k * 7)
        .find(|b| {
            (1..=3).all(|i| {
                std::net::TcpListener::bind(("127.0.0.1", b + i)).is_ok()
                    && std::net::UdpSocket::bind(("127.0.0.1", b + 100 + i)).is_ok()
                    && std::net::TcpListener::bind(("127.0.0.1", b + 200 + i)).is_ok()
            })
        })
        .expect("free ports");
    let mut child = std::process::Command::new(harness::colony_bin())
        .args([
            "dev",
            "--nodes",
            "3",
            "--base-port",
            &base.to_string(),
            "--dir",
        ])
        .arg(dir.path())
        .env("COLONY_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // TLS by default: the dev CA verifies every node.
        let ca = dir.path().join("certs/ca.crt");
        let agent = eventually(Duration::from_secs(30), "the dev CA", || {
            let pem = std::fs::read(&ca).ok()?;
            colony_nodeproc::http::trust_ca(&pem).ok()?;
            let tls = colony_nodeproc::http::tls_config()?;
            Some(ureq::AgentBuilder::new().tls_config(tls).build())
        });
        eventually(
            Duration::from_secs(90),
            "3 dev nodes ready with 3 voters, over HTTPS",
            || {
                let url = format!("https://127.0.0.1:{}/v1/cluster", base + 1);
                let v: Value = agent
                    .get(&url)
                    .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
                    .call()
                    .ok()?
                    .into_json()
                    .ok()?;
                let ready = (1..=3).all(|i| {
                    agent
                        .get(&format!("https://127.0.0.1:{}/readyz", base + i))
                        .call()
                        .is_ok_and(|r| r.status() == 200)
                });
                let mtls = v["listeners"]["raft"] == "mutual tls";
                (ready && mtls && v["raft"]["voters"].as_array()?.len() == 3).then_some(())
            },
        );
    }));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _guard = Guard(child);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "colony dev exits 0 after SIGTERM: {status:?}"
    );
    for i in 1..=3 {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok(),
            "node {i} stopped"
        );
    }
}

#[test]
fn a_wiped_node_rejoins_with_a_new_identity_and_replaces_its_old_self() {
    let mut c = Cluster::start(3, opts(&["cluster.voter_down_grace_ms=2000"]));
    assert!(create(c.node(0), "before-wipe"));
    let victim = (c.leader(Duration::from_secs(10)) + 1) % 3;
    let old_id = c.node(victim).id();
    c.kill9(victim);
    let dir = c.dirs[victim].path().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    // Same addresses, empty data dir: a new member, not a ghost of the old one.
    c.restart(victim);
    let new_id = c.node(victim).id();
    assert_ne!(old_id, new_id);
    let observer = (victim + 1) % 3;
    eventually(
        Duration::from_secs(60),
        "the new identity votes and the old one is gone",
        || {
            let v = cluster_view(c.node(observer));
            let ids = |k: &str| -> BTreeSet<String> {
                v["raft"][k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            };
            let (voters, learners) = (ids("voters"), ids("learners"));
            (voters.len() == 3
                && voters.contains(&new_id)
                && !voters.contains(&old_id)
                && !learners.contains(&old_id))
            .then_some(())
        },
    );
    c.wait_converged(Duration::from_secs(30));
    assert!(tenant_ids(c.node(victim), false).contains("before-wipe"));
}

#[test]
fn draining_the_leader_hands_over_leadership_without_failed_writes_and_it_returns_as_a_voter() {
    let mut c = Cluster::start(3, NodeOptions::default());
    let leader = c.leader(Duration::from_secs(30));
    let writer = (leader + 1) % 3;
    let drained_id = c.node(leader).id();
    let old_voters = voters(c.node(writer));
    assert_eq!(old_voters.len(), 3);

    // Writes keep going through another node while the leader drains.
    let url = c.node(writer).url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let r = ureq::post(&format!("{url}/v1/tenants"))
                    .timeout(Duration::from_secs(15))
                    .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
                    .send_json(json!({"id": format!("w{i}"), "name": "w"}));
                match r {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let status = c.terminate(leader, Duration::from_secs(30));
    let drain_time = t.elapsed();
    assert!(status.success(), "drain exits 0: {status:?}");
    let new_leader = c.leader(Duration::from_secs(30));
    assert_ne!(c.node(new_leader).id(), drained_id);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = writes.join().unwrap();
    println!(
        "drain took {drain_time:?}; {ok} writes acknowledged during it, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "writes failed during the drain: {failed:?}"
    );
    assert!(ok > 0);

    // Restarted on the same data dir, it rejoins and gets its voter seat back.
    c.restart(leader);
    c.wait_active(3);
    eventually(Duration::from_secs(60), "three voters again", || {
        let v = voters(c.node(writer));
        (v.len() == 3 && v.contains(&drained_id)).then_some(())
    });
}
