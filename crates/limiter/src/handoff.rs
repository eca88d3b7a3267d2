//! Moving bucket state between nodes: handoff on ownership changes and asynchronous
//! replication to each bucket's successor.
//!
//! # Guarantees
//! - **Exactly one live copy.** A bucket's live state only moves by *release* (the holder
//!   removes it and keeps a tombstone naming the new owner and the state it gave away) and
//!   *install* (the new owner takes it, unless it already holds the key). A node that has
//!   just become a key's owner (its view changed less than `window` ago) asks the key's
//!   previous owners for it before starting afresh ([`crate::ownership::Locate::Mine`]);
//!   a holder whose view changed pushes every bucket it no longer owns to its new owner.
//!   Checks that still reach an old holder are answered "moved to N" and forwarded. So a
//!   graceful change (a node joins, a node drains) admits nothing twice.
//! - **Bounded loss on a crash.** Every `replication_interval` each owner sends the
//!   buckets that changed to their `replicas` successors (the next nodes in rendezvous
//!   order: the first owns the key if the owner dies, the second if both die). They keep
//!   them as replicas, and whichever becomes the owner continues from its replica. So
//!   over-admission after `kill -9` of an owner, or of an owner and up to `replicas - 1`
//!   of its successors together, is at most what that owner admitted for the key since
//!   its last replication that landed: one interval plus the send time (100 ms by
//!   default), and never more than one bucket's capacity.
//!
//! Views may briefly differ between nodes; a check may then take an extra hop ("moved"),
//! and one that keeps bouncing is answered as unavailable rather than guessed.

use crate::leases::Leases;
use crate::ownership::{Locate, ViewHistory};
use crate::types::{KeyedStates, PullAnswer, PullOutcome};
use crate::view::ClusterView;
use crate::wire::{BucketBatch, HandoffAck, PullReply, PullRequest, RouterMsg, Wire, WireBucket};
use colony_core::clock::now_ms;
use colony_ratelimit::BucketState;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Settings of handoff and replication.
#[derive(Debug, Clone)]
pub struct HandoffConfig {
    /// How long after a view change a new owner asks previous owners for a bucket's state.
    pub window: Duration,
    /// Timeout of one pull (asking a previous owner for a bucket).
    pub pull_timeout: Duration,
    /// Timeout of one push of buckets to their new owner.
    pub push_timeout: Duration,
    /// How often changed buckets are sent to their successors.
    pub replication_interval: Duration,
    /// How many successors keep a replica of each bucket (at least 1): the owner and up to
    /// `replicas - 1` of them may crash together and the bucket still continues.
    pub replicas: usize,
    /// How often the member view is polled for changes.
    pub poll_every: Duration,
    /// How long a released bucket's tombstone keeps answering "moved".
    pub tombstone_ttl: Duration,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            pull_timeout: Duration::from_millis(500),
            push_timeout: Duration::from_secs(2),
            replication_interval: Duration::from_millis(100),
            replicas: 2,
            poll_every: Duration::from_millis(50),
            tombstone_ttl: Duration::from_secs(30),
        }
    }
}

/// Nodes a pull asks beyond its candidates (the nodes "moved" answers point at).
const MAX_HOPS: usize = 6;

/// A gap this long between two polls of the view (normally `poll_every` apart) means the
/// node was stalled: about as long as the others take to suspect it.
const STALL: Duration = Duration::from_secs(1);

/// The node's bucket store as the handoff drives it; [`crate::Buckets`] implements it.
pub trait BucketStore: Send + Sync + 'static {
    /// Releases every bucket this node no longer owns, keeping tombstones: (new owner,
    /// key, state).
    fn evict(&self) -> impl std::future::Future<Output = Vec<(u64, String, BucketState)>> + Send;
    /// The buckets that changed since the last call (every live one when `all`).
    fn take_dirty(&self, all: bool) -> impl std::future::Future<Output = KeyedStates> + Send;
    /// After a stall: every copy is checked with the other members before it is used.
    fn mark_stale(&self);
    /// The node's concurrency leases.
    fn leases(&self) -> &Leases;
}

/// Counters of handoff and replication (metrics).
#[derive(Debug, Default)]
pub struct HandoffCounters {
    /// Buckets pushed to a new owner after a view change.
    pub pushed: AtomicU64,
    /// Buckets received from an old owner (push or pull).
    pub installed: AtomicU64,
    /// Buckets fetched from a previous owner on first use.
    pub pulled: AtomicU64,
    /// Buckets continued from a replica (the owner was gone).
    pub promoted: AtomicU64,
    /// Bucket states sent to successors.
    pub replicated: AtomicU64,
    /// Replication or push sends that failed.
    pub send_failures: AtomicU64,
    /// Checks answered "moved" (forwarded to the new owner).
    pub moved: AtomicU64,
    /// Calls received from peers over the actor transport (any kind).
    pub routed_in: AtomicU64,
}

struct Inner {
    node_id: u64,
    view: Arc<dyn ClusterView>,
    history: RwLock<ViewHistory>,
    members: RwLock<Arc<Vec<u64>>>,
    replicating: AtomicBool,
    resync: AtomicBool,
    /// The view changed since buckets were last pushed to their new owners (set by
    /// whoever refreshes it; cleared by the poll loop, which pushes).
    unpushed: AtomicBool,
    enabled: AtomicBool,
    config: HandoffConfig,
    counters: HandoffCounters,
}

/// Handle to this node's ownership view and bucket movement; cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("node_id", &self.inner.node_id)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Handoff {
    /// A handle for node `node_id` over `view`; takes the view's current members at once.
    pub fn new(node_id: u64, view: Arc<dyn ClusterView>, config: HandoffConfig) -> Self {
        let this = Self {
            inner: Arc::new(Inner {
                node_id,
                view,
                history: RwLock::new(ViewHistory::new(node_id)),
                members: RwLock::new(Arc::new(Vec::new())),
                replicating: AtomicBool::new(false),
                resync: AtomicBool::new(false),
                unpushed: AtomicBool::new(false),
                enabled: AtomicBool::new(true),
                config,
                counters: HandoffCounters::default(),
            }),
        };
        this.refresh();
        this
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The settings.
    pub fn config(&self) -> &HandoffConfig {
        &self.inner.config
    }

    /// The counters.
    pub fn counters(&self) -> &HandoffCounters {
        &self.inner.counters
    }

    /// The owners of buckets in this node's newest view (sorted), as routing uses it.
    pub fn members(&self) -> Arc<Vec<u64>> {
        read(&self.inner.members)
    }

    /// Whether buckets are replicated now (this node owns buckets and has a successor,
    /// and every member speaks handoff).
    pub fn replicating(&self) -> bool {
        self.inner.replicating.load(Ordering::Relaxed) && self.enabled()
    }

    /// Whether the feature gate is on: every live member speaks bucket handoff. While a
    /// member does not (a rolling upgrade from an older binary), buckets are neither
    /// handed over nor replicated, and a new owner starts them afresh.
    pub fn enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Records that this node resumed from a stall just now (the run loop calls it when
    /// its polls were far apart; the buckets are marked stale with it).
    pub fn record_stall(&self) {
        self.inner
            .history
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .record_stall(Instant::now());
    }

    /// Whether the node is within the handoff window of a view change, its join or a stall
    /// (see [`crate::ownership::ViewHistory::unsettled`]).
    pub fn unsettled(&self) -> bool {
        self.inner
            .history
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .unsettled(Instant::now(), self.inner.config.window)
    }

    /// Where `key` lives by this node's newest view, with previous owners to ask.
    pub fn locate(&self, key: &str) -> Locate {
        {
            let h = self.inner.history.read().unwrap_or_else(|p| p.into_inner());
            if !h.current().is_empty() {
                return h.locate(key, Instant::now(), self.inner.config.window);
            }
        }
        // No view yet: the node has just started and peers route to it before the poll
        // ran. An empty view would make it the owner of everything with nobody to ask
        // (a fresh bucket beside the interim owner's); read the view now instead.
        self.refresh();
        let h = self.inner.history.read().unwrap_or_else(|p| p.into_inner());
        if h.current().is_empty() && !self.inner.view.serves_alone_when_empty() {
            // Still no view and not joined: an interim owner may hold the key.
            return Locate::Unowned;
        }
        h.locate(key, Instant::now(), self.inner.config.window)
    }

    /// The owner of `key` by this node's newest view.
    pub fn owner(&self, key: &str) -> u64 {
        let h = self.inner.history.read().unwrap_or_else(|p| p.into_inner());
        h.owner(key)
    }

    /// Whether `node` can be called now (this node, or a peer with a session up).
    pub fn is_reachable(&self, node: u64) -> bool {
        node == self.inner.node_id || self.inner.view.router_of(node).is_some()
    }

    /// Whether `node` is alive in membership (it may hold state even while the session to
    /// it is still being set up, e.g. just after this node restarted).
    pub fn is_alive(&self, node: u64) -> bool {
        node == self.inner.node_id || self.inner.view.is_alive(node)
    }

    /// Reads the member view; records and returns it when it changed.
    pub fn refresh(&self) -> Option<Arc<Vec<u64>>> {
        self.inner
            .enabled
            .store(self.inner.view.handoff_enabled(), Ordering::Relaxed);
        let mut members = self.inner.view.active_members();
        members.sort_unstable();
        members.dedup();
        let changed = {
            let mut h = self
                .inner
                .history
                .write()
                .unwrap_or_else(|p| p.into_inner());
            h.record(members.clone(), Instant::now())
        };
        if !changed {
            return None;
        }
        self.inner.unpushed.store(true, Ordering::SeqCst);
        let me = self.inner.node_id;
        let replicating = members.contains(&me) && members.len() > 1;
        self.inner.replicating.store(replicating, Ordering::Relaxed);
        // Replica holders may have changed: send every bucket once to its (new) ones.
        self.inner.resync.store(true, Ordering::Relaxed);
        let members = Arc::new(members);
        *self
            .inner
            .members
            .write()
            .unwrap_or_else(|p| p.into_inner()) = members.clone();
        Some(members)
    }

    fn router(&self, node: u64) -> Option<ActorRef<RouterMsg>> {
        self.inner.view.router_of(node).map(ActorRef::from)
    }

    /// Asks `candidates` (then whoever they point at) for `key`'s live state.
    pub async fn pull(&self, candidates: Vec<u64>, key: String) -> PullOutcome {
        // One deadline (twice the pull timeout) for the whole pull (hops, retries, waiting
        // for a session of a node that just started): the
        // checks parked on it must be answered before their callers time out.
        let deadline = Instant::now() + self.inner.config.pull_timeout * 2;
        // The caller's order is the preference (rendezvous order after a join): a node
        // holding only a replica (a copy that may be behind) ranks after the live holder.
        let rank_of = |n: u64| {
            candidates
                .iter()
                .position(|c| *c == n)
                .unwrap_or(usize::MAX)
        };
        // Members with a session first: one whose session is not up yet (it restarted
        // with this node) waits for it and could use up the deadline of the others.
        let (mut queue, later): (Vec<u64>, Vec<u64>) = candidates
            .iter()
            .copied()
            .partition(|n| self.router(*n).is_some());
        queue.extend(later);
        // A state found so far, and the rank of the best-ranked node that gave one.
        let mut found: Option<(BucketState, usize)> = None;
        // Once a state is found, members ranked before its giver get a short deadline of
        // their own: one alive in gossip whose session never comes up must not hold every
        // such pull for the whole deadline (attack review).
        let mut extra_deadline = deadline;
        // Every candidate (all other members after a join or stall), plus a few hops.
        let max_asked = queue.len() + MAX_HOPS;
        let mut i = 0;
        // A live member that could not be asked may hold the state (chaos finding: smoke
        // seed 7, a node resumed from SIGSTOP renewed its identity, its sessions closed
        // under its pulls, and it started its buckets afresh beside the live copies).
        let mut unreached = false;
        // Bounded: every member plus a few hops of "moved", and a few "busy" answers each.
        while i < queue.len() && i < max_asked {
            let node = queue[i];
            i += 1;
            if found.as_ref().is_some_and(|(_, r)| rank_of(node) >= *r) {
                // Ranks after a node that answered (in the caller's preference): not the
                // live holder the extra asks are for.
                continue;
            }
            let mut answered = false;
            for _ in 0..5 {
                match self.release_at(node, &key, extra_deadline).await {
                    Some(PullAnswer::State(s)) => {
                        self.inner.counters.pulled.fetch_add(1, Ordering::Relaxed);
                        // A holder asked first because its session was up may hold only
                        // a replica: the members ranked before it (the live holder among
                        // them) are still asked, and the copy that admitted most is kept.
                        let rank = rank_of(node);
                        let (s, rank) = match found.take() {
                            Some((f, r)) => (s.more_admitted(f, now_ms()), r.min(rank)),
                            None => (s, rank),
                        };
                        if rank == 0 {
                            return PullOutcome::Found(s);
                        }
                        if found.is_none() {
                            extra_deadline =
                                deadline.min(Instant::now() + self.inner.config.pull_timeout / 2);
                        }
                        found = Some((s, rank));
                        answered = true;
                        break;
                    }
                    Some(PullAnswer::Moved(to)) => {
                        if to != self.inner.node_id && !queue.contains(&to) {
                            queue.push(to);
                        }
                        answered = true;
                        break;
                    }
                    Some(PullAnswer::Busy) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Some(PullAnswer::Unknown) => {
                        answered = true;
                        break;
                    }
                    None => break,
                }
            }
            if !answered && self.is_alive(node) {
                unreached = true;
            }
        }
        if let Some((s, _)) = found {
            return PullOutcome::Found(s);
        }
        // Live members left unasked (over the bound) may hold it as well.
        if queue[i.min(queue.len())..]
            .iter()
            .any(|n| self.is_alive(*n))
        {
            unreached = true;
        }
        if unreached {
            PullOutcome::Unreachable
        } else {
            PullOutcome::NotHeld
        }
    }

    async fn release_at(&self, node: u64, key: &str, deadline: Instant) -> Option<PullAnswer> {
        // A live node whose session is not up yet (this node just started): wait for it,
        // within the pull's deadline, rather than start the bucket afresh.
        let router = loop {
            if let Some(r) = self.router(node) {
                break r;
            }
            if Instant::now() >= deadline || !self.is_alive(node) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let req = PullRequest {
            from_node: self.inner.node_id,
            keys: vec![key.to_string()],
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match router
            .call(|port| RouterMsg::Pull(Wire(Ok(req)), port), Some(left))
            .await
        {
            Ok(CallResult::Success(Wire(Ok(PullReply { mut answers })))) => answers.pop(),
            other => {
                tracing::info!(node, key, ok = other.is_ok(), "pull of a bucket failed");
                None
            }
        }
    }

    /// Sends `buckets` (and `leases`, with a push) to `node`: installed as live state
    /// (`push`) or kept as replicas.
    async fn send(
        &self,
        node: u64,
        buckets: Vec<(String, BucketState)>,
        leases: Vec<(String, String, u64)>,
        push: bool,
    ) -> bool {
        let Some(router) = self.router(node) else {
            return false;
        };
        let batch = BucketBatch {
            from_node: self.inner.node_id,
            buckets: buckets
                .into_iter()
                .map(|(key, state)| WireBucket { key, state })
                .collect(),
            leases,
        };
        if !push {
            return router.cast(RouterMsg::Replicate(Wire(Ok(batch)))).is_ok();
        }
        matches!(
            router
                .call(
                    |port| RouterMsg::Handoff(Wire(Ok(batch)), port),
                    Some(self.inner.config.push_timeout),
                )
                .await,
            Ok(CallResult::Success(Wire(Ok(HandoffAck { .. }))))
        )
    }

    /// Releases every bucket this node no longer owns and pushes each to its new owner.
    /// A failed push loses nothing: the new owner pulls it from the tombstone.
    pub async fn push_moved<S: BucketStore>(&self, buckets: &S) -> usize {
        if !self.enabled() {
            return 0;
        }
        let moved = buckets.evict().await;
        let n = moved.len();
        type Batch = (Vec<(String, BucketState)>, Vec<(String, String, u64)>);
        let mut by_node: HashMap<u64, Batch> = HashMap::new();
        for (to, key, state) in moved {
            by_node.entry(to).or_default().0.push((key, state));
        }
        // Concurrency leases of keys this node no longer owns go along, so the new owner
        // counts the requests already in flight.
        let me = self.inner.node_id;
        let leases = buckets
            .leases()
            .with(|t| t.take_where(now_ms(), |k| self.owner(k) != me));
        for (key, id, left) in leases {
            let to = self.owner(&key);
            by_node.entry(to).or_default().1.push((key, id, left));
        }
        let sends = by_node.into_iter().map(|(node, (list, leases))| {
            let this = self.clone();
            async move {
                let count = list.len() as u64;
                let ok = this.send(node, list, leases, true).await;
                (node, count, ok)
            }
        });
        for (node, count, ok) in futures_join_all(sends).await {
            self.count_send(ok, &self.inner.counters.pushed, count);
            if !ok {
                tracing::warn!(
                    node,
                    buckets = count,
                    "pushing buckets to their new owner failed; it will pull them"
                );
            }
        }
        n
    }

    /// Sends the buckets that changed since the last round (all of them after a view
    /// change) to their replica holders.
    pub async fn replicate<S: BucketStore>(&self, buckets: &S) {
        if !self.replicating() {
            // Keep the change sets from growing while there is nobody to send them to.
            let _ = buckets.take_dirty(false).await;
            return;
        }
        let all = self.inner.resync.swap(false, Ordering::Relaxed);
        let changed = buckets.take_dirty(all).await;
        if changed.is_empty() {
            return;
        }
        let mut by_node: HashMap<u64, Vec<(String, BucketState)>> = HashMap::new();
        {
            let h = self.inner.history.read().unwrap_or_else(|p| p.into_inner());
            let count = self.inner.config.replicas.max(1);
            for (key, state) in changed {
                for node in h.replica_holders(&key, count) {
                    by_node
                        .entry(node)
                        .or_default()
                        .push((key.clone(), state.clone()));
                }
            }
        }
        // Concurrently: a holder that does not answer must not delay the others' copies.
        let sends = by_node.into_iter().map(|(node, list)| {
            let this = self.clone();
            async move {
                let count = list.len() as u64;
                (count, this.send(node, list, Vec::new(), false).await)
            }
        });
        for (count, ok) in futures_join_all(sends).await {
            self.count_send(ok, &self.inner.counters.replicated, count);
        }
    }

    /// Counts `count` buckets sent on `sent`, or one failed send.
    fn count_send(&self, ok: bool, sent: &AtomicU64, count: u64) {
        if ok {
            sent.fetch_add(count, Ordering::Relaxed);
        } else {
            self.inner
                .counters
                .send_failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs until `stop`: polls the view, hands off on changes, replicates on schedule.
    pub async fn run<S: BucketStore>(
        self,
        buckets: S,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(self.inner.config.poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_replication = Instant::now();
        let mut last_tick = Instant::now();
        loop {
            tokio::select! {
                _ = poll.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let gap = last_tick.elapsed();
            last_tick = Instant::now();
            if gap >= STALL {
                // SIGSTOP, a frozen VM: the others may have declared this node down and
                // served its buckets meanwhile. Its copies are checked again only after
                // asking them.
                tracing::warn!(
                    stalled_ms = gap.as_millis() as u64,
                    "this node was stalled; its rate-limit buckets are reconciled with the other members before use"
                );
                self.record_stall();
                buckets.mark_stale();
            }
            // Also when another caller (a check, the drain) refreshed the view first.
            self.refresh();
            if self.inner.unpushed.swap(false, Ordering::SeqCst) {
                let n = self.push_moved(&buckets).await;
                let members = self.members();
                tracing::info!(members = ?members, handed_off = n, "bucket owners changed");
            }
            if last_replication.elapsed() >= self.inner.config.replication_interval {
                last_replication = Instant::now();
                self.replicate(&buckets).await;
            }
        }
    }

    /// Drain: waits (up to `within`) until this node's view no longer counts it as an
    /// owner, then pushes every bucket to its new owner. Returns how many moved (none
    /// when no other node owns buckets: there is nobody to hand them to).
    pub async fn drain<S: BucketStore>(&self, buckets: &S, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            self.refresh();
            if !self.members().contains(&self.inner.node_id) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.members().is_empty() {
            return 0;
        }
        self.push_moved(buckets).await
    }
}

impl Handoff {
    /// Waits until no call from a peer arrived for `quiet` (peers have stopped routing
    /// here), or for at most `max`.
    pub async fn wait_quiet(&self, quiet: Duration, max: Duration) {
        let deadline = Instant::now() + max;
        let mut last = self.inner.counters.routed_in.load(Ordering::Relaxed);
        while Instant::now() < deadline {
            tokio::time::sleep(quiet).await;
            let now = self.inner.counters.routed_in.load(Ordering::Relaxed);
            if now == last {
                return;
            }
            last = now;
        }
    }
}

/// Awaits every future concurrently (a tiny `join_all`, to avoid a dependency).
async fn futures_join_all<F, T>(futs: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for f in futs {
        set.spawn(f);
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            out.push(v);
        }
    }
    out
}
