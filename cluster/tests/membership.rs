//! SWIM membership over real UDP on 127.0.0.1: joining via seeds, failure detection,
//! restarts, authentication, metadata updates, graceful leave and partitions.
//!
//! Every wait polls with a deadline; the deadlines are generous (the machine running the
//! suite may be busy) while the measured times are printed for comparison with the tuned
//! timings (a crashed node should be Down in about 2 s).

// Tests fail loudly on unexpected errors.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use colony_cluster::membership::{
    Legacy, MemberEvent, MemberStatus, MemberView, Membership, MembershipConfig, MembershipError,
    NodeMeta, NodeState,
};
use tokio::sync::mpsc::Receiver;

const SECRET: &[u8] = b"test cluster secret";
/// Generous bound for anything that should take a couple of seconds.
const DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn meta(node_id: u64) -> NodeMeta {
    NodeMeta {
        node_id,
        http_addr: format!("127.0.0.1:{}", 8000 + node_id),
        raft_addr: format!("127.0.0.1:{}", 9000 + node_id),
        version: "0.1.0".to_owned(),
        state: NodeState::Active,
        cluster_addr: format!("127.0.0.1:{}", 7000 + node_id),
        features: Vec::new(),
    }
}

fn config(node_id: u64, bind: SocketAddr, seeds: &[SocketAddr], secret: &[u8]) -> MembershipConfig {
    let mut cfg = MembershipConfig::lan_defaults(node_id, bind, secret.to_vec(), meta(node_id));
    cfg.seeds = seeds.to_vec();
    cfg
}

struct Node {
    m: Membership,
    events: Receiver<MemberEvent>,
}

async fn start(node_id: u64, seeds: &[SocketAddr]) -> Node {
    start_with(config(node_id, loopback_any_port(), seeds, SECRET)).await
}

async fn start_with(cfg: MembershipConfig) -> Node {
    let (m, events) = Membership::start(cfg).await.unwrap();
    Node { m, events }
}

/// Starts on a fixed address, retrying while the previous owner's socket is still closing.
async fn start_on(cfg: MembershipConfig) -> Node {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match Membership::start(cfg.clone()).await {
            Ok((m, events)) => return Node { m, events },
            Err(MembershipError::Bind { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("restart failed: {e}"),
        }
    }
}

/// Polls `check` until it holds; returns how long that took.
async fn wait_for(what: &str, deadline: Duration, check: impl FnMut() -> bool) -> Duration {
    wait_or_dump(what, deadline, check, String::new).await
}

/// Like [`wait_for`], and on timeout also prints `dump()` (e.g. everyone's member list).
async fn wait_or_dump(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> bool,
    dump: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}\n{}",
            dump()
        );
        tokio::time::sleep(POLL).await;
    }
    started.elapsed()
}

/// Everyone's member list, one line per member, for timeout diagnostics.
fn dump_members(nodes: &[&Membership]) -> String {
    let mut out = String::new();
    for m in nodes {
        for v in m.members() {
            out.push_str(&format!(
                "{} {}: node {} {:?} inc {} boot {} meta {:?} seen {:?}\n",
                if v.is_self { "self" } else { "    " },
                m.local_addr(),
                v.node_id,
                v.status,
                v.incarnation,
                v.boot,
                v.meta.map(|m| m.state),
                v.last_seen_ms_ago
            ));
        }
        out.push_str(&format!("counters {:?}\n", m.counters()));
    }
    out
}

/// Waits for an event matching `pred`, skipping others.
async fn expect_event(
    rx: &mut Receiver<MemberEvent>,
    what: &str,
    pred: impl Fn(&MemberEvent) -> bool,
) -> MemberEvent {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) if pred(&event) => return event,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event channel closed waiting for: {what}"),
            Err(_) => panic!("timed out waiting for event: {what}"),
        }
    }
}

fn view(m: &Membership, node_id: u64) -> Option<MemberView> {
    m.members()
        .into_iter()
        .find(|v| v.node_id == node_id && !v.is_self)
}

fn status(m: &Membership, node_id: u64) -> Option<MemberStatus> {
    view(m, node_id).map(|v| v.status)
}

/// `m` sees every node in `others` Alive with its metadata.
fn sees_alive(m: &Membership, others: &[u64]) -> bool {
    others
        .iter()
        .all(|id| view(m, *id).is_some_and(|v| v.status == MemberStatus::Alive && v.meta.is_some()))
}

/// Starts node 1 (no seeds) and nodes 2..=n seeded with node 1; waits until all see all.
async fn cluster(n: u64) -> Vec<Node> {
    let first = start(1, &[]).await;
    let seed = first.m.local_addr();
    let mut nodes = vec![first];
    for id in 2..=n {
        nodes.push(start(id, &[seed]).await);
    }
    let ids: Vec<u64> = (1..=n).collect();
    let took = wait_for("cluster formed", DEADLINE, || {
        nodes.iter().enumerate().all(|(i, node)| {
            let others: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| *id != i as u64 + 1)
                .collect();
            sees_alive(&node.m, &others)
        })
    })
    .await;
    println!("{n}-node cluster formed in {took:?}");
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_form_a_cluster_with_metadata() {
    let mut nodes = cluster(3).await;

    for (i, node) in nodes.iter().enumerate() {
        let me = i as u64 + 1;
        let members = node.m.members();
        assert_eq!(members.len(), 3, "{members:?}");
        let own = &members[0];
        assert!(own.is_self);
        assert_eq!(own.node_id, me);
        assert_eq!(own.status, MemberStatus::Alive);
        assert_eq!(own.gossip_addr, node.m.local_addr());
        assert_eq!(own.meta.as_ref(), Some(&meta(me)));
        for v in &members[1..] {
            assert!(!v.is_self);
            assert_eq!(v.status, MemberStatus::Alive);
            assert_eq!(v.meta.as_ref(), Some(&meta(v.node_id)));
            assert_ne!(v.boot, 0);
        }
    }

    // Everyone got an Up event for each of the two others, with metadata.
    for (i, node) in nodes.iter_mut().enumerate() {
        let me = i as u64 + 1;
        let mut up = Vec::new();
        while up.len() < 2 {
            let event =
                expect_event(&mut node.events, "Up", |e| matches!(e, MemberEvent::Up(_))).await;
            let MemberEvent::Up(v) = event else {
                unreachable!()
            };
            assert_eq!(v.meta.as_ref(), Some(&meta(v.node_id)));
            up.push(v.node_id);
        }
        up.sort_unstable();
        let expected: Vec<u64> = (1..=3).filter(|id| *id != me).collect();
        assert_eq!(up, expected);
        let c = node.m.counters();
        assert_eq!(c.up_events, 2);
        assert!(c.packets_in > 0 && c.packets_out > 0);
        assert_eq!(c.packets_rejected, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_agent_is_declared_down() {
    let mut nodes = cluster(3).await;
    let crashed = nodes.pop().unwrap();
    // Dropping every handle stops the agent without leaving, like a crash.
    drop(crashed);
    let (a, b) = (&nodes[0].m.clone(), &nodes[1].m.clone());

    let took = wait_for("node 3 Down on nodes 1 and 2", DEADLINE, || {
        status(a, 3) == Some(MemberStatus::Down) && status(b, 3) == Some(MemberStatus::Down)
    })
    .await;
    println!("crash detected (Down on both survivors) after {took:?}");

    let event = expect_event(
        &mut nodes[0].events,
        "Down(3)",
        |e| matches!(e, MemberEvent::Down(v) if v.node_id == 3),
    )
    .await;
    let MemberEvent::Down(v) = event else {
        unreachable!()
    };
    assert_eq!(v.status, MemberStatus::Down);
    assert_eq!(v.meta.as_ref(), Some(&meta(3)));

    // The survivors never doubted each other.
    assert!(sees_alive(a, &[2]) && sees_alive(b, &[1]));
    assert_eq!(a.counters().down_events, 1);
    assert_eq!(b.counters().down_events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_in_seven_node_cluster_is_detected_without_false_positives() {
    let mut nodes = cluster(7).await;
    drop(nodes.pop().unwrap());
    let survivors: Vec<Membership> = nodes.iter().map(|n| n.m.clone()).collect();

    let handles: Vec<&Membership> = survivors.iter().collect();
    let took = wait_or_dump(
        "node 7 Down on all six survivors",
        DEADLINE,
        || {
            survivors
                .iter()
                .all(|m| status(m, 7) == Some(MemberStatus::Down))
        },
        || dump_members(&handles),
    )
    .await;
    println!("crash in 7-node cluster detected everywhere after {took:?}");
    for (i, m) in survivors.iter().enumerate() {
        let others: Vec<u64> = (1..=6).filter(|id| *id != i as u64 + 1).collect();
        assert!(
            sees_alive(m, &others),
            "false suspicion:\n{}",
            dump_members(&handles)
        );
        assert_eq!(m.counters().down_events, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_with_same_id_comes_back_alive() {
    let mut nodes = cluster(3).await;
    let crashed = nodes.pop().unwrap();
    let addr = crashed.m.local_addr();
    let old_boot = crashed.m.members()[0].boot;
    drop(crashed);
    let (a, b) = (&nodes[0].m, &nodes[1].m);
    wait_for("node 3 Down", DEADLINE, || {
        status(a, 3) == Some(MemberStatus::Down)
    })
    .await;

    // Same node id and address, new process: a newer boot stamp replaces the dead identity.
    let seeds = [a.local_addr()];
    let restarted = start_on(config(3, addr, &seeds, SECRET)).await;
    let took = wait_for("node 3 Alive again with a new boot", DEADLINE, || {
        [a, b].iter().all(|m| {
            view(m, 3).is_some_and(|v| {
                v.status == MemberStatus::Alive && v.boot > old_boot && v.meta.is_some()
            })
        }) && sees_alive(&restarted.m, &[1, 2])
    })
    .await;
    println!("restarted node back Alive after {took:?}");
    assert_eq!(a.members().len(), 3);

    expect_event(
        &mut nodes[0].events,
        "Up(3) after restart",
        |e| matches!(e, MemberEvent::Up(v) if v.node_id == 3 && v.boot > old_boot),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_agent_on_same_address_is_a_new_member() {
    let mut nodes = cluster(2).await;
    let old = nodes.pop().unwrap();
    let addr = old.m.local_addr();
    drop(old);
    let a = &nodes[0].m;

    // New node id on the old address (data wiped), started before anyone noticed the crash.
    let wiped = start_on(config(22, addr, &[a.local_addr()], SECRET)).await;
    wait_for("node 22 Alive and node 2 Down on node 1", DEADLINE, || {
        sees_alive(a, &[22]) && status(a, 2) == Some(MemberStatus::Down)
    })
    .await;
    wait_for("node 22 sees node 1", DEADLINE, || {
        sees_alive(&wiped.m, &[1])
    })
    .await;
    expect_event(
        &mut nodes[0].events,
        "Down(2)",
        |e| matches!(e, MemberEvent::Down(v) if v.node_id == 2),
    )
    .await;
    expect_event(
        &mut nodes[0].events,
        "Up(22)",
        |e| matches!(e, MemberEvent::Up(v) if v.node_id == 22),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_with_wrong_secret_cannot_join() {
    let nodes = cluster(2).await;
    let (a, b) = (&nodes[0].m, &nodes[1].m);
    let stranger = start_with(config(
        9,
        loopback_any_port(),
        &[a.local_addr(), b.local_addr()],
        b"not the cluster secret",
    ))
    .await;

    wait_for("node 1 rejects the stranger's packets", DEADLINE, || {
        a.counters().packets_rejected > 0 && b.counters().packets_rejected > 0
    })
    .await;
    // Proving an absence needs some time to pass: let the stranger retry its announce
    // (once per second while alone) a few times.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(a.counters().packets_rejected >= 2);
    for m in [a, b] {
        assert!(view(m, 9).is_none(), "stranger listed: {:?}", m.members());
        assert_eq!(m.members().len(), 2);
    }
    assert_eq!(stranger.m.members().len(), 1, "stranger only knows itself");
    assert!(stranger.m.counters().packets_out >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_change_propagates_as_update() {
    let mut nodes = cluster(3).await;
    nodes[1].m.set_state(NodeState::Draining);
    let started = Instant::now();

    // Read-your-writes locally.
    let own = nodes[1].m.members()[0].clone();
    assert_eq!(own.meta.unwrap().state, NodeState::Draining);

    let event = expect_event(
        &mut nodes[0].events,
        "Updated(2)",
        |e| matches!(e, MemberEvent::Updated(v) if v.node_id == 2),
    )
    .await;
    println!("state change seen after {:?}", started.elapsed());
    let MemberEvent::Updated(v) = event else {
        unreachable!()
    };
    assert_eq!(v.status, MemberStatus::Alive);
    assert_eq!(v.meta.unwrap().state, NodeState::Draining);

    let (a, c) = (&nodes[0].m, &nodes[2].m);
    wait_for("Draining visible on nodes 1 and 3", DEADLINE, || {
        [a, c].iter().all(|m| {
            view(m, 2).and_then(|v| v.meta).map(|meta| meta.state) == Some(NodeState::Draining)
        })
    })
    .await;
    // A state change is not a failure.
    assert!(sees_alive(a, &[2, 3]) && sees_alive(c, &[1, 2]));
    assert_eq!(a.counters().down_events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_is_seen_quickly() {
    let mut nodes = cluster(3).await;
    let leaver = nodes.pop().unwrap();
    let started = Instant::now();
    leaver.m.leave().await;
    // Leaving stops the agent: later calls are harmless no-ops.
    leaver.m.set_state(NodeState::Draining);
    leaver.m.leave().await;
    assert_eq!(leaver.m.members()[0].meta.as_ref(), Some(&meta(3)));

    let (a, b) = (&nodes[0].m, &nodes[1].m);
    wait_for("node 3 Down after leave", Duration::from_secs(5), || {
        status(a, 3) == Some(MemberStatus::Down) && status(b, 3) == Some(MemberStatus::Down)
    })
    .await;
    println!("leave seen on both nodes after {:?}", started.elapsed());
    expect_event(
        &mut nodes[0].events,
        "Down(3)",
        |e| matches!(e, MemberEvent::Down(v) if v.node_id == 3),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_link_is_suspected_then_heals() {
    let nodes = cluster(2).await;
    let (a, b) = (&nodes[0].m, &nodes[1].m);
    let b_boot = view(a, 2).unwrap().boot;
    let a_boot = view(b, 1).unwrap().boot;

    a.set_blocked(vec![b.local_addr()]);
    let started = Instant::now();
    wait_for("both sides declare the other Down", DEADLINE, || {
        status(a, 2) == Some(MemberStatus::Down) && status(b, 1) == Some(MemberStatus::Down)
    })
    .await;
    println!("partition detected after {:?}", started.elapsed());
    assert!(a.counters().suspect_events + b.counters().suspect_events > 0);

    a.set_blocked(Vec::new());
    let started = Instant::now();
    wait_for("both Alive again after healing", DEADLINE, || {
        sees_alive(a, &[2]) && sees_alive(b, &[1])
    })
    .await;
    println!("partition healed after {:?}", started.elapsed());
    // At least one side had to renew its identity to come back from Down.
    assert!(view(a, 2).unwrap().boot > b_boot || view(b, 1).unwrap().boot > a_boot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_one_way_cut_heals_every_node_sees_every_other_alive() {
    let nodes = cluster(3).await;
    let (a, b, c) = (&nodes[0].m, &nodes[1].m, &nodes[2].m);
    // Everything c sends is lost; it still hears the others. They declare it Down and tell
    // it so, and it renews its identity while it suspects them: foca drops the timers of
    // those suspicions with the old identity, which used to leave them Suspect on c for good.
    c.set_impaired(Duration::ZERO, 100);
    wait_for("a and b declare c Down", DEADLINE, || {
        status(a, 3) == Some(MemberStatus::Down) && status(b, 3) == Some(MemberStatus::Down)
    })
    .await;
    wait_for("c suspects a and b", DEADLINE, || {
        [1, 2]
            .iter()
            .all(|id| status(c, *id) != Some(MemberStatus::Alive))
    })
    .await;
    c.set_impaired(Duration::ZERO, 0);
    // A stuck suspicion is reset once it is 2 s overdue (housekeeping runs every second);
    // before that fix c kept them Suspect for 10 s, until some later message undid it.
    let took = wait_or_dump(
        "every node sees the others Alive again",
        Duration::from_secs(6),
        || sees_alive(a, &[2, 3]) && sees_alive(b, &[1, 3]) && sees_alive(c, &[1, 2]),
        || dump_members(&[a, b, c]),
    )
    .await;
    println!("one-way cut healed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_node_does_not_make_the_others_renew_their_identities() {
    // Chaos finding 4: the cut-off node declared both others Down, so after the heal every
    // node renewed its identity (each a member down and up again on every node). The
    // cut-off node hears from nobody, doubts itself and postpones its verdicts; only it,
    // rightly declared Down by the majority, renews.
    let nodes = cluster(3).await;
    let (a, b, c) = (&nodes[0].m, &nodes[1].m, &nodes[2].m);
    let cut_at = Instant::now();
    c.set_blocked(vec![a.local_addr(), b.local_addr()]);
    wait_for("a and b declare c Down", DEADLINE, || {
        status(a, 3) == Some(MemberStatus::Down) && status(b, 3) == Some(MemberStatus::Down)
    })
    .await;
    // A 4 s partition: well past the ~2 s in which c used to declare them Down.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(cut_at.elapsed())).await;
    assert!(
        [1, 2]
            .iter()
            .all(|id| status(c, *id) != Some(MemberStatus::Down)),
        "c declared a member Down while it could reach nobody:\n{}",
        dump_members(&[a, b, c])
    );
    c.set_blocked(Vec::new());
    wait_or_dump(
        "every node sees the others Alive again",
        DEADLINE,
        || sees_alive(a, &[2, 3]) && sees_alive(b, &[1, 3]) && sees_alive(c, &[1, 2]),
        || dump_members(&[a, b, c]),
    )
    .await;
    assert_eq!(a.counters().identity_renewals, 0, "a renewed");
    assert_eq!(b.counters().identity_renewals, 0, "b renewed");
    assert_eq!(
        c.counters().identity_renewals,
        1,
        "c was declared Down once"
    );
    assert!(c.counters().down_verdicts_postponed > 0);
    // The majority did not postpone anything: it declared c Down at the usual speed.
    assert_eq!(a.counters().down_verdicts_postponed, 0);
    assert_eq!(b.counters().down_verdicts_postponed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_moves_from_unencrypted_gossip_through_send_and_accept() {
    // An old node (unencrypted version 1 only) is stood in for by `send` (it speaks only
    // version 1); `accept` speaks the encrypted form and still reads version 1.
    let mut old = config(1, loopback_any_port(), &[], SECRET);
    old.legacy = Legacy::Send;
    let a = start_with(old).await;
    let mut mid = config(2, loopback_any_port(), &[a.m.local_addr()], SECRET);
    mid.legacy = Legacy::Accept;
    let b = start_with(mid).await;
    wait_for("send and accept nodes see each other", DEADLINE, || {
        sees_alive(&a.m, &[2]) && sees_alive(&b.m, &[1])
    })
    .await;
    // A node with legacy off (the default) joins through the accept node and refuses the
    // version-1 speaker's packets.
    let c = start_with(config(3, loopback_any_port(), &[b.m.local_addr()], SECRET)).await;
    wait_for(
        "the encrypted-only node joins through the accept node",
        DEADLINE,
        || sees_alive(&c.m, &[2]) && sees_alive(&b.m, &[3]),
    )
    .await;
    wait_for(
        "it refuses the version-1 speaker's packets",
        DEADLINE,
        || c.m.counters().packets_rejected > 0,
    )
    .await;
}
