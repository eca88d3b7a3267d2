//! Tests of the runtime as a whole: shards, handoff, pulls and the limiter together.

use crate::buckets::{Buckets, BucketsConfig};
use crate::handoff::Handoff;
use crate::types::{BucketError, CheckItem, PullAnswer};
use colony_core::clock::now_ms;
use colony_ratelimit::{Algorithm, Decision, Limit};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn item(key: &str, hits: u64) -> CheckItem {
    CheckItem {
        key: key.into(),
        algorithm: Algorithm::TokenBucket,
        limit: Limit::new(100, 60_000),
        hits,
    }
}

async fn admitted(b: &Buckets, key: &str, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        let r = b.check(vec![item(key, 1)]).await;
        if matches!(&r[0], Ok(d) if d.status == colony_ratelimit::Status::UnderLimit) {
            ok += 1;
        }
    }
    ok
}

#[tokio::test]
async fn exactly_the_limit_is_admitted_and_keys_are_independent() {
    let b = Buckets::start(BucketsConfig {
        shards: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(admitted(&b, "a", 150).await, 100);
    assert_eq!(admitted(&b, "b", 50).await, 50);
    // A batch keeps its order across shards; invalid limits fail alone.
    let mut bad = item("c", 1);
    bad.limit = Limit::new(0, 1000);
    let r = b
        .check(vec![item("a", 1), bad, item("d", 0), item("b", 1)])
        .await;
    assert!(matches!(&r[0], Ok(d) if d.status == colony_ratelimit::Status::OverLimit));
    assert!(matches!(&r[1], Err(BucketError::Limit(_))));
    assert!(
        matches!(&r[2], Ok(d) if d.remaining == 100),
        "peek of a new bucket: {:?}",
        r[2]
    );
    assert!(matches!(&r[3], Ok(d) if d.remaining == 49));
    assert_eq!(b.len().await, 2, "peeks create no bucket");
    b.stop().await;
}

#[tokio::test]
async fn a_panicking_shard_is_restarted_and_service_continues() {
    let b = Buckets::start(BucketsConfig {
        shards: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(admitted(&b, "k", 3).await, 3);
    b.inject_panic(None);
    for _ in 0..100 {
        if b.restarts() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.restarts(), 2, "both shards were restarted");
    // Calls during the restart are retried once; poll until served again.
    let mut served = false;
    for _ in 0..100 {
        if b.check(vec![item("k", 1)]).await[0].is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "service continues after the shards panicked");
    // The restarted shard starts afresh (its state may have been half-updated).
    assert_eq!(
        remaining(&b.check(vec![item("k", 1)]).await[0]),
        98,
        "a fresh bucket"
    );
    b.stop().await;
}

#[tokio::test]
async fn overload_is_refused_not_queued() {
    let b = Buckets::start(BucketsConfig {
        shards: 1,
        max_in_flight_per_shard: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(admitted(&b, "live", 1).await, 1);
    // Hold the only permit, as a batch in flight would.
    let held = b.permits[0].clone().try_acquire_owned().unwrap();
    assert_eq!(
        b.check(vec![item("x", 1)]).await[0],
        Err(BucketError::Overloaded)
    );
    // A live bucket is checked in place under the shard's lock: no queue to be full.
    assert_eq!(remaining(&b.check(vec![item("live", 1)]).await[0]), 98);
    assert_eq!(
        b.check(vec![item("live", 1), item("x", 1)]).await[0],
        Err(BucketError::Overloaded),
        "a batch with a bucket to create goes through the actor"
    );
    drop(held);
    assert!(b.check(vec![item("x", 1)]).await[0].is_ok());
    b.stop().await;
}

/// A two-node view (this node is 1) where node 2 is reachable through a stand-in actor.
struct TwoNodes {
    peer: ractor::ActorCell,
}

impl crate::view::ClusterView for TwoNodes {
    fn active_members(&self) -> Vec<u64> {
        vec![1, 2]
    }
    fn router_of(&self, node: u64) -> Option<ractor::ActorCell> {
        (node == 2).then(|| self.peer.clone())
    }
}

fn key_owned_by(node: u64) -> String {
    (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| colony_placement::owner(k.as_bytes(), &[1, 2]) == Some(node))
        .unwrap()
}

fn remaining(r: &Result<Decision, BucketError>) -> u64 {
    r.as_ref().map(|d| d.remaining).unwrap()
}

#[tokio::test]
async fn released_buckets_answer_moved_and_installed_or_replicated_ones_continue() {
    // Node 2 holds nothing: it answers pulls "unknown".
    let (peer, _) = Actor::spawn(None, ServedMeanwhile, HashMap::new())
        .await
        .unwrap();
    let handoff = Handoff::new(
        1,
        Arc::new(TwoNodes {
            peer: peer.get_cell(),
        }),
        crate::HandoffConfig::default(),
    );
    assert!(handoff.replicating());
    let b = Buckets::start(BucketsConfig {
        shards: 2,
        handoff: Some(handoff),
        ..Default::default()
    })
    .await
    .unwrap();
    let mine = key_owned_by(1);
    assert_eq!(admitted(&b, &mine, 3).await, 3);
    // Changed buckets are reported once for replication, then not again.
    let dirty = b.take_dirty(false).await;
    assert_eq!(dirty.len(), 1);
    assert!(b.take_dirty(false).await.is_empty());
    assert_eq!(
        b.take_dirty(true).await.len(),
        1,
        "a resync sends everything"
    );

    // Node 2 takes the bucket: it gets the state, and later checks here are sent on.
    let state = match b.release(mine.clone(), 2).await.unwrap() {
        PullAnswer::State(s) => s,
        other => panic!("expected the state, got {other:?}"),
    };
    assert_eq!(
        b.check(vec![item(&mine, 1)]).await[0],
        Err(BucketError::Moved(2))
    );
    // Asked again by the same node (its answer was lost): the same state.
    assert_eq!(
        b.release(mine.clone(), 2).await.unwrap(),
        PullAnswer::State(state.clone())
    );

    // Installed state continues exactly (97 left, one more hit: 96).
    let other = key_owned_by(1) + "-installed";
    assert_eq!(b.install(vec![(other.clone(), state.clone())]).await, 1);
    assert_eq!(b.install(vec![(other.clone(), state.clone())]).await, 0);
    assert_eq!(remaining(&b.check(vec![item(&other, 1)]).await[0]), 96);
    // Two live copies (this node was paused while another served the key): the one that
    // admitted more wins; the other's admissions are not forgotten.
    let busier = match b.release(other.clone(), 2).await.unwrap() {
        PullAnswer::State(s) => s,
        other => panic!("expected the state, got {other:?}"),
    };
    assert_eq!(b.install(vec![(other.clone(), busier.clone())]).await, 1);
    let stale = state.clone();
    assert_eq!(b.install(vec![(other.clone(), stale)]).await, 0);
    assert_eq!(
        remaining(&b.check(vec![item(&other, 0)]).await[0]),
        96,
        "the busier copy stays"
    );
    let mut slot = None;
    let limit = Limit::new(100, 60_000);
    colony_ratelimit::check(&mut slot, Algorithm::TokenBucket, &limit, 10, now_ms()).unwrap();
    assert_eq!(b.install(vec![(other.clone(), slot.unwrap())]).await, 0);
    assert_eq!(
        remaining(&b.check(vec![item(&other, 0)]).await[0]),
        90,
        "a busier copy replaces it"
    );

    // A replica is continued from when this node owns the key and nobody else has it.
    let replicated = (0..1000)
        .map(|i| format!("r{i}"))
        .find(|k| colony_placement::owner(k.as_bytes(), &[1, 2]) == Some(1))
        .unwrap();
    b.store_replicas(vec![(replicated.clone(), state.clone())]);
    assert_eq!(remaining(&b.check(vec![item(&replicated, 1)]).await[0]), 96);

    // Asked for a key it holds only a replica of (e.g. its push to the new owner failed
    // and the tombstone was turned back into a replica), it hands the replica over rather
    // than answering "unknown", which would make the new owner start afresh.
    let kept = (0..1000)
        .map(|i| format!("p{i}"))
        .find(|k| colony_placement::owner(k.as_bytes(), &[1, 2]) == Some(2))
        .unwrap();
    b.store_replicas(vec![(kept.clone(), state.clone())]);
    assert_eq!(
        b.release(kept.clone(), 2).await.unwrap(),
        PullAnswer::State(state)
    );

    // A key owned by node 2 that this node never had is sent there.
    let theirs = key_owned_by(2);
    assert_eq!(
        b.check(vec![item(&theirs, 1)]).await[0],
        Err(BucketError::Moved(2))
    );
    b.stop().await;
}

/// Node 2 while it has not yet taken a bucket over: it sends the first `n` checks back
/// to node 1 ("moved"), then admits.
struct LateOwner;

impl Actor for LateOwner {
    type Msg = crate::wire::RouterMsg;
    type State = u32;
    type Arguments = u32;
    async fn pre_start(&self, _: ActorRef<Self::Msg>, n: u32) -> Result<u32, ActorProcessingErr> {
        Ok(n)
    }
    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        left: &mut u32,
    ) -> Result<(), ActorProcessingErr> {
        use crate::wire::{CheckReply, RouterMsg, Wire, WireOutcome};
        if let RouterMsg::CheckBuckets(Wire(Ok(batch)), port) = msg {
            let results = batch
                .items
                .iter()
                .map(|it| {
                    if *left > 0 {
                        WireOutcome::Moved(1)
                    } else {
                        let mut slot = None;
                        colony_ratelimit::check(
                            &mut slot,
                            it.algorithm,
                            &it.limit,
                            it.hits,
                            now_ms(),
                        )
                        .map_or_else(WireOutcome::Invalid, WireOutcome::Decision)
                    }
                })
                .collect();
            *left = left.saturating_sub(1);
            let _ = port.send(Wire(Ok(CheckReply { results })));
        } else if let RouterMsg::Pull(Wire(Ok(req)), port) = msg {
            // It holds no state of its own (asked while node 1 is new to the view).
            let answers = req.keys.iter().map(|_| PullAnswer::Unknown).collect();
            let _ = port.send(Wire(Ok(crate::wire::PullReply { answers })));
        }
        Ok(())
    }
}

/// Node 1 released a bucket to node 2, which does not have it yet and still thinks node
/// 1 owns the key: the check bounces between them until node 2 takes it over, then is
/// answered (not given up as unavailable after a fixed number of hops).
async fn bounced_check(bounces: u32) -> Result<Decision, BucketError> {
    let (peer, _) = Actor::spawn(None, LateOwner, bounces).await.unwrap();
    let view = Arc::new(TwoNodes {
        peer: peer.get_cell(),
    });
    let handoff = Handoff::new(1, view.clone(), crate::HandoffConfig::default());
    let b = one_shard(handoff).await;
    let mine = key_owned_by(1);
    assert_eq!(admitted(&b, &mine, 1).await, 1);
    assert!(matches!(
        b.release(mine.clone(), 2).await,
        Ok(PullAnswer::State(_))
    ));
    let limiter = crate::Limiter::new(1, b.clone(), view, crate::LimiterConfig::default());
    let ctx = crate::CheckContext {
        request_id: "r".into(),
        tenant_id: "t".into(),
    };
    let r = limiter.check(&ctx, vec![item(&mine, 1)]).await.remove(0);
    b.stop().await;
    peer.stop(None);
    r
}

#[tokio::test]
async fn a_check_bouncing_during_a_handover_is_answered_once_the_new_owner_has_it() {
    assert!(bounced_check(0).await.is_ok());
    assert!(
        bounced_check(5).await.is_ok(),
        "five bounces (125 ms) are waited out"
    );
    assert_eq!(
        bounced_check(1000).await,
        Err(BucketError::Unavailable),
        "an endless bounce is given up"
    );
}

/// A view whose members are set by the test.
struct SetView(std::sync::Mutex<Vec<u64>>);

impl crate::view::ClusterView for SetView {
    fn active_members(&self) -> Vec<u64> {
        self.0.lock().unwrap().clone()
    }
    fn router_of(&self, _: u64) -> Option<ractor::ActorCell> {
        None
    }
}

#[test]
fn a_just_started_node_asks_the_interim_owner_even_before_its_first_poll() {
    // Node 1 starts knowing nobody; by the time a peer routes a check to it, membership
    // lists it and node 2, but the handoff poll has not run yet.
    let view = Arc::new(SetView(std::sync::Mutex::new(Vec::new())));
    let handoff = Handoff::new(1, view.clone(), crate::HandoffConfig::default());
    *view.0.lock().unwrap() = vec![1, 2];
    let mine = key_owned_by(1);
    assert_eq!(
        handoff.locate(&mine),
        crate::ownership::Locate::Mine { prior: vec![2] },
        "node 2 held the key while node 1 was away"
    );
}

/// A view of a node that may not have joined its cluster yet: nobody active is known.
struct Unjoined {
    joined: std::sync::atomic::AtomicBool,
}

impl crate::view::ClusterView for Unjoined {
    fn active_members(&self) -> Vec<u64> {
        if self.joined.load(std::sync::atomic::Ordering::SeqCst) {
            vec![1]
        } else {
            Vec::new()
        }
    }
    fn router_of(&self, _: u64) -> Option<ractor::ActorCell> {
        None
    }
    fn serves_alone_when_empty(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_node_that_has_not_joined_owns_no_bucket_and_starts_none() {
    // A node restarted after kill -9 takes HTTP before it has joined; with an empty view
    // it used to check locally and start a fresh bucket beside the interim owner's.
    let view = Arc::new(Unjoined {
        joined: std::sync::atomic::AtomicBool::new(false),
    });
    let handoff = Handoff::new(1, view.clone(), crate::HandoffConfig::default());
    assert_eq!(handoff.locate("k"), crate::ownership::Locate::Unowned);
    let b = one_shard(handoff.clone()).await;
    let limiter = crate::Limiter::new(1, b.clone(), view.clone(), Default::default());
    let ctx = crate::CheckContext::default();
    assert_eq!(
        limiter.check(&ctx, vec![item("k", 1)]).await[0],
        Err(BucketError::Unavailable)
    );
    assert_eq!(
        b.check(vec![item("k", 1)]).await[0],
        Err(BucketError::Unavailable),
        "a check routed straight to the shard is refused too"
    );
    assert_eq!(
        limiter
            .acquire_lease(&ctx, "c", "l1", 1, std::time::Duration::from_secs(5))
            .await,
        Err(BucketError::Unavailable)
    );
    assert!(b.is_empty().await, "no bucket was started");
    // Joined, alone in its view: it owns every key and serves it.
    view.joined.store(true, std::sync::atomic::Ordering::SeqCst);
    handoff.refresh(); // what the node's poll loop does every 50 ms
    assert_eq!(
        remaining(&limiter.check(&ctx, vec![item("k", 1)]).await[0]),
        99
    );
    b.stop().await;
}

/// Node 2 after it served some of node 1's buckets while node 1 was stalled: it answers
/// pulls with the states it holds, "unknown" for other keys.
struct ServedMeanwhile;

impl Actor for ServedMeanwhile {
    type Msg = crate::wire::RouterMsg;
    type State = HashMap<String, colony_ratelimit::BucketState>;
    type Arguments = HashMap<String, colony_ratelimit::BucketState>;
    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        held: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(held)
    }
    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        held: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        use crate::wire::{PullReply, RouterMsg, Wire};
        if let RouterMsg::Pull(Wire(Ok(req)), port) = msg {
            let answers = req
                .keys
                .iter()
                .map(|k| {
                    held.remove(k)
                        .map_or(PullAnswer::Unknown, PullAnswer::State)
                })
                .collect();
            let _ = port.send(Wire(Ok(PullReply { answers })));
        }
        Ok(())
    }
}

/// One shard with `handoff`.
async fn one_shard(handoff: Handoff) -> Buckets {
    Buckets::start(BucketsConfig {
        shards: 1,
        handoff: Some(handoff),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Node 2's router, holding `key` after it admitted `hits` of it.
async fn served_meanwhile(key: &str, hits: u64) -> ActorRef<crate::wire::RouterMsg> {
    let mut slot = None;
    let it = item(key, hits);
    colony_ratelimit::check(&mut slot, it.algorithm, &it.limit, hits, now_ms()).unwrap();
    let held: HashMap<_, _> = [(key.to_string(), slot.unwrap())].into();
    Actor::spawn(None, ServedMeanwhile, held).await.unwrap().0
}

#[tokio::test]
async fn after_a_stall_a_bucket_continues_from_whichever_copy_admitted_more() {
    let (served, untouched) = (key_owned_by(1), {
        let first = key_owned_by(1);
        (0..1000)
            .map(|i| format!("u{i}"))
            .find(|k| colony_placement::owner(k.as_bytes(), &[1, 2]) == Some(1) && *k != first)
            .unwrap()
    });
    // While node 1 was paused, node 2 took `served` over and admitted 30 of it.
    let peer = served_meanwhile(&served, 30).await;
    let view = Arc::new(TwoNodes {
        peer: peer.get_cell(),
    });
    // No handoff window: node 1 has long been the owner (it asks nobody at first use).
    let config = crate::HandoffConfig {
        window: Duration::ZERO,
        ..Default::default()
    };
    let handoff = Handoff::new(1, view, config);
    let b = one_shard(handoff).await;
    assert_eq!(admitted(&b, &served, 5).await, 5);
    assert_eq!(admitted(&b, &untouched, 5).await, 5);
    b.mark_stale();
    assert_eq!(
        remaining(&b.check(vec![item(&served, 1)]).await[0]),
        69,
        "node 2's copy (30 admitted) wins over the stale one (5)"
    );
    assert_eq!(
        remaining(&b.check(vec![item(&untouched, 1)]).await[0]),
        94,
        "nobody served it meanwhile: the node's own copy continues"
    );
    b.stop().await;
    peer.stop(None);
}

/// Node 2 is a member but, until `up` is set, has no session (a peer whose session closed
/// when this node renewed its identity after a stall); `peer` is its router.
struct SessionLater {
    peer: std::sync::Mutex<ractor::ActorCell>,
    up: std::sync::atomic::AtomicBool,
}

impl crate::view::ClusterView for SessionLater {
    fn active_members(&self) -> Vec<u64> {
        vec![1, 2]
    }
    fn router_of(&self, node: u64) -> Option<ractor::ActorCell> {
        (node == 2 && self.up.load(std::sync::atomic::Ordering::SeqCst))
            .then(|| self.peer.lock().unwrap().clone())
    }
    fn is_alive(&self, node: u64) -> bool {
        node == 2
    }
}

/// Node 1 owns `served` (5 admitted), then is stalled while node 2 serves it (30
/// admitted) and comes back with node 2 unreachable. Returns the buckets, the handoff and
/// the view (node 2 still unreachable).
async fn stalled_with_peer_unreachable(
    served: &str,
    window: Duration,
) -> (Buckets, Handoff, Arc<SessionLater>) {
    let (empty, _) = Actor::spawn(None, ServedMeanwhile, HashMap::new())
        .await
        .unwrap();
    let view = Arc::new(SessionLater {
        peer: std::sync::Mutex::new(empty.get_cell()),
        up: true.into(),
    });
    let config = crate::HandoffConfig {
        window,
        pull_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let handoff = Handoff::new(1, view.clone(), config);
    let b = one_shard(handoff.clone()).await;
    // Node 2 holds nothing when node 1 first uses the key.
    assert_eq!(admitted(&b, served, 5).await, 5);
    // Node 1 stalls; node 2 serves the key meanwhile; node 1 resumes without a session.
    view.up.store(false, std::sync::atomic::Ordering::SeqCst);
    *view.peer.lock().unwrap() = served_meanwhile(served, 30).await.get_cell();
    b.mark_stale();
    handoff.record_stall();
    (b, handoff, view)
}

#[tokio::test]
async fn after_a_stall_a_bucket_is_not_started_while_a_member_that_may_hold_it_is_unreachable() {
    // Chaos finding 9 (smoke seed 7): node 1 resumed from SIGSTOP, renewed its identity,
    // its sessions closed under its pulls, and it started node 2's live buckets afresh.
    let served = key_owned_by(1);
    let (b, _handoff, view) = stalled_with_peer_unreachable(&served, Duration::from_secs(30)).await;
    for _ in 0..2 {
        let r = b.check(vec![item(&served, 1)]).await;
        assert!(
            matches!(r[0], Err(BucketError::Unavailable)),
            "not started while node 2 cannot be asked: {r:?}"
        );
    }
    view.up.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        remaining(&b.check(vec![item(&served, 1)]).await[0]),
        69,
        "once asked, node 2's copy (30 admitted) wins over the stale one (5)"
    );
    b.stop().await;
}

#[tokio::test]
async fn after_the_handoff_window_an_unreachable_member_no_longer_blocks_a_key() {
    // Past the window nobody else can hold live state: the node's own copy continues
    // rather than the key staying unavailable for as long as node 2 is unreachable.
    let served = key_owned_by(1);
    let window = Duration::from_millis(300);
    let (b, handoff, _view) = stalled_with_peer_unreachable(&served, window).await;
    let r = b.check(vec![item(&served, 1)]).await;
    assert!(matches!(r[0], Err(BucketError::Unavailable)), "{r:?}");
    while handoff.unsettled() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        remaining(&b.check(vec![item(&served, 1)]).await[0]),
        94,
        "the stale copy (5 admitted) continues"
    );
    b.stop().await;
}

/// 18 members, every one answering pulls through `peer`.
struct ManyNodes {
    peer: ractor::ActorCell,
}

impl crate::view::ClusterView for ManyNodes {
    fn active_members(&self) -> Vec<u64> {
        (1..=18).collect()
    }
    fn router_of(&self, node: u64) -> Option<ractor::ActorCell> {
        (2..=18).contains(&node).then(|| self.peer.clone())
    }
}

#[tokio::test]
async fn a_node_new_to_a_large_view_asks_every_member_and_then_starts_the_bucket() {
    // Review finding: with a fixed cap of 16 asked nodes, a node just joined to an
    // 18-member view always left live members unasked and answered every new key
    // `Unavailable` for the whole handoff window.
    let (peer, _) = Actor::spawn(None, ServedMeanwhile, HashMap::new())
        .await
        .unwrap();
    let view = Arc::new(ManyNodes {
        peer: peer.get_cell(),
    });
    let handoff = Handoff::new(1, view, crate::HandoffConfig::default());
    let b = one_shard(handoff).await;
    let members: Vec<u64> = (1..=18).collect();
    let mine = (0..10_000)
        .map(|i| format!("k{i}"))
        .find(|k| colony_placement::owner(k.as_bytes(), &members) == Some(1))
        .unwrap();
    assert_eq!(
        admitted(&b, &mine, 3).await,
        3,
        "nobody holds it: started here"
    );
    b.stop().await;
    peer.stop(None);
}

/// Three members seen from node 1: node 2 (the live holder) whose session comes up only
/// when `up` is set, and node 3 (a replica holder) with its session up.
struct LiveHolderLater {
    live: ractor::ActorCell,
    replica: ractor::ActorCell,
    up: std::sync::atomic::AtomicBool,
}

impl crate::view::ClusterView for LiveHolderLater {
    fn active_members(&self) -> Vec<u64> {
        vec![1, 2, 3]
    }
    fn router_of(&self, node: u64) -> Option<ractor::ActorCell> {
        match node {
            2 if self.up.load(std::sync::atomic::Ordering::SeqCst) => Some(self.live.clone()),
            3 => Some(self.replica.clone()),
            _ => None,
        }
    }
    fn is_alive(&self, node: u64) -> bool {
        node == 2 || node == 3
    }
}

#[tokio::test]
async fn a_pull_answered_by_a_replica_holder_still_asks_the_live_holder_ranked_before_it() {
    // Review finding: members with a session are asked first, so a node restarting while
    // node 2 served a key took node 3's replica (behind by what node 2 admitted since its
    // last replication) as soon as node 3 answered, and the key was live on two nodes.
    let key = "k".to_string();
    let live = served_meanwhile(&key, 30).await;
    let replica = served_meanwhile(&key, 10).await;
    let view = Arc::new(LiveHolderLater {
        live: live.get_cell(),
        replica: replica.get_cell(),
        up: false.into(),
    });
    let handoff = Handoff::new(1, view.clone(), crate::HandoffConfig::default());
    let later = view.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        later.up.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // Preference (rendezvous) order: node 2, then node 3.
    match handoff.pull(vec![2, 3], key).await {
        crate::types::PullOutcome::Found(s) => {
            assert_eq!(
                s.remaining_at(now_ms()),
                70,
                "the live copy (30 admitted) wins over the replica (10)"
            );
        }
        other => panic!("expected the state, got {other:?}"),
    }
    live.stop(None);
    replica.stop(None);
}

#[tokio::test]
async fn a_live_member_whose_session_never_comes_up_does_not_hold_a_found_state_back() {
    // Attack review: once node 3 had answered, the pull kept waiting for node 2's session
    // until its whole deadline (2 x pull_timeout), for every such key.
    let key = "k".to_string();
    let live = served_meanwhile(&key, 30).await;
    let replica = served_meanwhile(&key, 10).await;
    let view = Arc::new(LiveHolderLater {
        live: live.get_cell(),
        replica: replica.get_cell(),
        up: false.into(),
    });
    let config = crate::HandoffConfig {
        pull_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let handoff = Handoff::new(1, view, config);
    let started = std::time::Instant::now();
    match handoff.pull(vec![2, 3], key).await {
        crate::types::PullOutcome::Found(s) => {
            // Node 3's copy (10 admitted; a token comes back every 600 ms meanwhile).
            let left = s.remaining_at(now_ms());
            assert!((90..=96).contains(&left), "{left} left");
        }
        other => panic!("expected the state, got {other:?}"),
    }
    // The extra ask waits half a pull timeout (2.5 s), not the 10 s deadline.
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    live.stop(None);
    replica.stop(None);
}

/// Replicas received, by holder: (node, key, state).
type Received = Arc<std::sync::Mutex<Vec<(u64, String, colony_ratelimit::BucketState)>>>;

/// A member that records the replicas sent to it, and holds nothing live (it answers
/// pulls "unknown").
struct ReplicaHolder;

impl Actor for ReplicaHolder {
    type Msg = crate::wire::RouterMsg;
    type State = (u64, Received);
    type Arguments = (u64, Received);
    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }
    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        (node, received): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        use crate::wire::{PullReply, RouterMsg, Wire};
        match msg {
            RouterMsg::Replicate(Wire(Ok(batch))) => {
                let mut r = received.lock().unwrap();
                r.extend(batch.buckets.into_iter().map(|b| (*node, b.key, b.state)));
            }
            RouterMsg::Pull(Wire(Ok(req)), port) => {
                let answers = req.keys.iter().map(|_| PullAnswer::Unknown).collect();
                let _ = port.send(Wire(Ok(PullReply { answers })));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Five members; node 1 is this one, the others record the replicas they get.
struct FiveNodes {
    holders: HashMap<u64, ractor::ActorCell>,
}

impl crate::view::ClusterView for FiveNodes {
    fn active_members(&self) -> Vec<u64> {
        vec![1, 2, 3, 4, 5]
    }
    fn router_of(&self, node: u64) -> Option<ractor::ActorCell> {
        self.holders.get(&node).cloned()
    }
}

/// Which nodes got a replica of a bucket owned by node 1 after 5 hits, with `replicas`.
async fn replica_holders_after_a_round(replicas: usize) -> (Vec<u64>, Vec<u64>) {
    let received: Received = Arc::default();
    let mut holders = HashMap::new();
    for node in 2..=5 {
        let (a, _) = Actor::spawn(None, ReplicaHolder, (node, received.clone()))
            .await
            .unwrap();
        holders.insert(node, a.get_cell());
    }
    let cells: Vec<ractor::ActorCell> = holders.values().cloned().collect();
    let config = crate::HandoffConfig {
        replicas,
        ..Default::default()
    };
    let handoff = Handoff::new(1, Arc::new(FiveNodes { holders }), config);
    let b = one_shard(handoff.clone()).await;
    let members = [1, 2, 3, 4, 5];
    let mine = (0..10_000)
        .map(|i| format!("k{i}"))
        .find(|k| colony_placement::owner(k.as_bytes(), &members) == Some(1))
        .unwrap();
    assert_eq!(admitted(&b, &mine, 5).await, 5);
    handoff.replicate(&b).await;
    // Replicas are cast: wait until the expected number arrived (or give up after 5 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while received.lock().unwrap().len() < replicas && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = received.lock().unwrap().clone();
    let mut nodes: Vec<u64> = got.iter().map(|(n, _, _)| *n).collect();
    nodes.sort_unstable();
    let mut expected = colony_placement::ranked(mine.as_bytes(), &members)[1..=replicas].to_vec();
    expected.sort_unstable();
    if nodes == expected {
        for (node, key, state) in &got {
            assert_eq!(key, &mine, "node {node} got another key");
            // The state as sent: 5 of 100 admitted (a token bucket refills one per 600 ms).
            let left = state
                .peek(state.algorithm(), state.limit(), now_ms())
                .map(|d| d.remaining);
            assert!(matches!(left, Ok(95..=96)), "node {node} got {left:?} left");
        }
    }
    b.stop().await;
    for c in cells {
        c.stop(None);
    }
    (nodes, expected)
}

#[tokio::test]
async fn each_bucket_is_replicated_to_the_next_two_members_so_owner_and_successor_may_crash_together(
) {
    // Chaos finding 11: with one replica, on the successor, a minority crash of a bucket's
    // owner and its successor left no copy, and the next owner started it afresh.
    let (got, expected) = replica_holders_after_a_round(2).await;
    assert_eq!(
        got, expected,
        "the two members after the owner keep a replica"
    );
    // `ratelimit.replicas = 1`: the successor only.
    let (got, expected) = replica_holders_after_a_round(1).await;
    assert_eq!(got, expected);
}

/// A check of tenant `tenant`'s bucket `key`, keyed as the API keys it.
fn tenant_item(tenant: &str, key: &str, limit: Limit, hits: u64) -> CheckItem {
    CheckItem {
        key: crate::tenant_bucket_key(tenant, "n", key),
        algorithm: Algorithm::TokenBucket,
        limit,
        hits,
    }
}

fn too_many(r: &Result<Decision, BucketError>) -> bool {
    matches!(r, Err(BucketError::TooManyBuckets { .. }))
}

#[tokio::test]
async fn a_tenant_at_its_bucket_cap_gets_no_new_bucket_while_others_still_do() {
    // Four shards: the tenant's buckets are spread over them, and the cap is per node.
    let b = Buckets::start(BucketsConfig {
        shards: 4,
        max_buckets_per_tenant: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let minute = Limit::new(100, 60_000);
    for k in ["k0", "k1", "k2"] {
        let r = b.check(vec![tenant_item("a", k, minute, 1)]).await;
        assert_eq!(remaining(&r[0]), 99, "{k}");
    }
    assert_eq!(b.live_buckets_of("a"), 3);
    // The 4th bucket of tenant a is refused, naming the tenant and the setting...
    let r = b.check(vec![tenant_item("a", "k3", minute, 1)]).await;
    assert_eq!(
        r[0],
        Err(BucketError::TooManyBuckets {
            tenant: "a".into(),
            live: 3,
            max: 3
        })
    );
    let text = r[0].as_ref().unwrap_err().to_string();
    assert!(
        text.contains("tenant a has 3 live buckets") && text.contains("max_buckets_per_tenant"),
        "{text}"
    );
    // ...in a batch too, where only the new bucket fails; nothing of it was kept.
    let r = b
        .check(vec![
            tenant_item("a", "k0", minute, 1),
            tenant_item("a", "k4", minute, 1),
            tenant_item("a", "k1", minute, 0),
        ])
        .await;
    assert_eq!(remaining(&r[0]), 98, "an existing bucket keeps working");
    assert!(too_many(&r[1]), "{:?}", r[1]);
    assert_eq!(remaining(&r[2]), 99, "a peek of an existing bucket");
    assert_eq!(
        remaining(&b.check(vec![tenant_item("a", "k5", minute, 0)]).await[0]),
        100,
        "a peek creates nothing, so it is answered even at the cap"
    );
    assert_eq!(b.live_buckets_of("a"), 3);
    assert_eq!(b.len().await, 3);

    // Tenant b is not held back by tenant a.
    for k in ["k0", "k1", "k2"] {
        let r = b.check(vec![tenant_item("b", k, minute, 1)]).await;
        assert_eq!(remaining(&r[0]), 99, "b/{k}");
    }
    assert!(too_many(
        &b.check(vec![tenant_item("b", "k3", minute, 1)]).await[0]
    ));
    // Keys that are not tenant-scoped (tier buckets) are not counted or refused.
    for k in ["tier/1:a/60s", "tier/1:a/3600s", "plain"] {
        assert!(b.check(vec![item(k, 1)]).await[0].is_ok(), "{k}");
    }
    assert_eq!((b.live_buckets_of("a"), b.live_buckets_of("b")), (3, 3));

    // A bucket handed over by its previous owner is an existing bucket: taken in even past
    // the cap (refusing it would forget what it admitted), and counted.
    let mut slot = None;
    colony_ratelimit::check(&mut slot, Algorithm::TokenBucket, &minute, 10, now_ms()).unwrap();
    let handed = crate::tenant_bucket_key("a", "n", "handed");
    assert_eq!(b.install(vec![(handed.clone(), slot.unwrap())]).await, 1);
    assert_eq!(b.live_buckets_of("a"), 4);
    let r = b
        .check(vec![CheckItem {
            key: handed,
            algorithm: Algorithm::TokenBucket,
            limit: minute,
            hits: 1,
        }])
        .await;
    assert_eq!(remaining(&r[0]), 89);
    assert!(too_many(
        &b.check(vec![tenant_item("a", "k3", minute, 1)]).await[0]
    ));
    b.stop().await;
}

#[tokio::test]
async fn a_bucket_that_comes_to_rest_frees_its_tenants_slot() {
    let b = Buckets::start(BucketsConfig {
        shards: 2,
        max_buckets_per_tenant: 2,
        sweep_every: Duration::from_millis(20),
        ..Default::default()
    })
    .await
    .unwrap();
    // One hit per 100 ms: a bucket hit once is back at rest 100 ms later.
    let short = Limit::new(1, 100);
    for k in ["k0", "k1"] {
        assert!(b.check(vec![tenant_item("a", k, short, 1)]).await[0].is_ok());
    }
    assert!(too_many(
        &b.check(vec![tenant_item("a", "k2", short, 1)]).await[0]
    ));
    let mut admitted = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = b
            .check(vec![tenant_item("a", "k2", short, 1)])
            .await
            .remove(0);
        if !too_many(&r) {
            admitted = Some(r);
            break;
        }
    }
    let r = admitted.expect("a slot was freed once the buckets came to rest and were swept");
    assert_eq!(remaining(&r), 0, "the new bucket was created and charged");
    assert!(b.live_buckets_of("a") <= 2);
    b.stop().await;
}

#[tokio::test]
async fn a_restarted_shard_gives_its_tenants_slots_back() {
    let b = Buckets::start(BucketsConfig {
        shards: 1,
        max_buckets_per_tenant: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let minute = Limit::new(100, 60_000);
    for k in ["k0", "k1"] {
        assert!(b.check(vec![tenant_item("a", k, minute, 1)]).await[0].is_ok());
    }
    assert_eq!(b.live_buckets_of("a"), 2);
    b.inject_panic(Some(0));
    // The restarted shard starts empty, and its old buckets leave the count with it.
    let mut freed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if b.restarts() == 1 && b.live_buckets_of("a") == 0 {
            freed = true;
            break;
        }
    }
    assert!(freed, "live {} after restart", b.live_buckets_of("a"));
    let mut served = false;
    for _ in 0..100 {
        if b.check(vec![tenant_item("a", "k2", minute, 1)]).await[0].is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served);
    b.stop().await;
}

#[test]
fn the_tenant_is_read_back_from_tenant_scoped_keys_only() {
    use crate::{tenant_bucket_key, tenant_of_key};
    for (t, n, k) in [("acme", "n", "k"), ("a/1:b", "c", "d"), ("é", "ü", "/")] {
        assert_eq!(tenant_of_key(&tenant_bucket_key(t, n, k)), Some(t));
    }
    for k in [
        "",
        "k",
        "tier/4:acme/60s",
        "lease/4:acme",
        ":a/",
        "x:a/",
        "9:a/",
        "1:é/",
    ] {
        assert_eq!(tenant_of_key(k), None, "{k:?}");
    }
}
