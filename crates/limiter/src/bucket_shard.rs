//! One bucket shard: the rate-limit buckets whose keys hash to it. Every bucket sees its
//! hits one at a time, in order, under the shard's lock.
//!
//! The shard is an actor that owns the lifecycle of its buckets (creation, pulls from a
//! previous owner, handoff, replication, sweeping) and is restarted by its supervisor when
//! it panics. Its state sits behind a mutex shared with the [`crate::Buckets`] handle, so
//! the common case, a check whose buckets are all live here, is answered by the caller in
//! place under the lock (no mailbox, no reply channel, no task switch); everything else
//! goes through the actor. A caller never waits for the lock: when the actor holds it
//! (e.g. collecting every bucket for a resync), the check is sent to the actor instead.
//!
//! Besides its live buckets a shard keeps, for its keys: replicas sent by other owners
//! (continued from when this node becomes the owner after a crash), tombstones of buckets
//! it released to a new owner (answering "moved"), the keys changed since the last
//! replication round, and stale copies: the live buckets of a node that was stalled
//! (paused, frozen), which other nodes may have served meanwhile. A stale copy is checked
//! again only after the other members were asked for a newer state, and the copy that
//! admitted more wins. A check of a key this node has just become the owner of waits while
//! the previous owner is asked for the state (see [`crate::handoff`]); checks of other keys
//! go on meanwhile.
//!
//! Live buckets per tenant: every shard of a node counts its live and stale buckets by
//! tenant in one [`TenantCounts`] (the tenant is read from the key, see
//! [`crate::types::tenant_of_key`]). A check that would create a brand-new bucket for a
//! tenant already at `max_buckets_per_tenant` is refused ([`BucketError::TooManyBuckets`]);
//! a bucket that continues a state from elsewhere (handed over, pulled, a replica or a stale
//! copy) is an existing bucket and always taken in, even past the maximum (refusing it
//! would lose the hits it admitted). A bucket frees its slot when it is swept at rest,
//! handed to another owner, or its shard is replaced after a panic. The count is touched
//! only when a bucket is created or removed, never by a check of a live bucket.

use crate::handoff::Handoff;
use crate::ownership::Locate;
use crate::types::{tenant_of_key, BucketError, KeyedStates, PullAnswer, PullOutcome};
use colony_core::clock::now_ms;
use colony_ratelimit::{Algorithm, BucketState, Decision, Limit};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// One bucket check as the shard sees it.
#[derive(Debug, Clone)]
pub struct ShardItem {
    /// Full bucket key (already scoped to the tenant).
    pub key: String,
    /// Algorithm of the bucket.
    pub algorithm: Algorithm,
    /// Its limit.
    pub limit: Limit,
    /// Hits to take (0 peeks).
    pub hits: u64,
}

/// Outcome of one item.
pub type ItemResult = Result<Decision, BucketError>;

/// Messages of a shard (local only: never serialized, so never advertised to peers).
#[allow(missing_debug_implementations)] // carries reply ports and a permit
pub enum ShardMsg {
    /// Check a batch; the permit bounds in-flight batches per shard and is released when
    /// the batch is answered or dropped.
    Check(
        Vec<ShardItem>,
        OwnedSemaphorePermit,
        RpcReplyPort<Vec<ItemResult>>,
    ),
    /// The answer of a pull started by this shard.
    Pulled(String, PullOutcome),
    /// A new owner (`to`) asks for a key's state.
    Release(String, u64, RpcReplyPort<PullAnswer>),
    /// States handed over by an old owner; answers how many were installed.
    Install(KeyedStates, RpcReplyPort<usize>),
    /// Release every live bucket this node no longer owns; answers them with their new
    /// owners, for pushing.
    Evict(RpcReplyPort<Vec<(u64, String, BucketState)>>),
    /// The buckets changed since the last call (every live bucket when `true`).
    TakeDirty(bool, RpcReplyPort<KeyedStates>),
    /// Replicas sent by their owners.
    StoreReplicas(KeyedStates),
    /// Forget buckets, replicas and tombstones at rest: keeps memory bounded.
    Sweep,
    /// How many live buckets the shard holds.
    Len(RpcReplyPort<usize>),
    /// Test-only fault injection: panic in the handler (the supervisor restarts the shard).
    InjectPanic,
}

// What `#[derive(RactorMessage)]` would emit; written out to avoid depending on
// ractor_cluster here. Without a `BytesConvertable` impl the type stays local-only.
impl ractor::Message for ShardMsg {}

/// Startup arguments of a shard.
#[derive(Clone)]
pub struct ShardArgs {
    /// How often to sweep buckets at rest.
    pub sweep_every: Duration,
    /// The shard's state, shared with the handle's fast path.
    pub state: SharedShard,
}

impl std::fmt::Debug for ShardArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardArgs")
            .field("sweep_every", &self.sweep_every)
            .finish_non_exhaustive()
    }
}

/// Live buckets per tenant on one node, shared by all its shards (see the module docs).
#[derive(Debug)]
pub struct TenantCounts {
    max: usize,
    /// Tenants with at least one live bucket (a tenant at 0 is removed).
    counts: Mutex<HashMap<Box<str>, usize>>,
}

impl TenantCounts {
    /// Counts allowing at most `max` live buckets per tenant.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The most live buckets per tenant.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Live buckets of `tenant`.
    pub fn live(&self, tenant: &str) -> usize {
        self.lock().get(tenant).copied().unwrap_or(0)
    }

    /// Buckets counted across all tenants (live and stale copies).
    pub fn total(&self) -> usize {
        self.lock().values().sum()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, usize>> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new bucket of `tenant` if it has fewer than `max`; else its count.
    fn try_add(&self, tenant: &str) -> Result<(), usize> {
        let mut counts = self.lock();
        let n = counts.get(tenant).copied().unwrap_or(0);
        if n >= self.max {
            return Err(n);
        }
        counts.insert(tenant.into(), n + 1);
        Ok(())
    }

    /// Counts a bucket of `tenant` that may not be refused (it continues a state).
    fn add(&self, tenant: &str) {
        let mut counts = self.lock();
        let n = counts.get(tenant).copied().unwrap_or(0);
        counts.insert(tenant.into(), n.saturating_add(1));
    }

    /// Uncounts `n` buckets of each tenant.
    fn remove<'a>(&self, gone: impl IntoIterator<Item = (&'a str, usize)>) {
        let mut counts = self.lock();
        for (tenant, n) in gone {
            if let Some(c) = counts.get_mut(tenant) {
                *c = c.saturating_sub(n);
                if *c == 0 {
                    counts.remove(tenant);
                }
            }
        }
    }
}

/// Bucket states by key whose tenant-scoped keys are counted in a [`TenantCounts`]: every
/// insertion of a new key counts it, every removal (including dropping the map) uncounts
/// it, so the counts cannot drift from the maps whichever path adds or drops a bucket.
struct CountedMap {
    map: HashMap<String, BucketState>,
    tenants: Arc<TenantCounts>,
}

impl CountedMap {
    fn new(tenants: Arc<TenantCounts>) -> Self {
        Self {
            map: HashMap::new(),
            tenants,
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn get(&self, key: &str) -> Option<&BucketState> {
        self.map.get(key)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut BucketState> {
        self.map.get_mut(key)
    }

    fn keys(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }

    fn iter(&self) -> impl Iterator<Item = (&String, &BucketState)> {
        self.map.iter()
    }

    /// Inserts a state that continues an existing bucket: counted, never refused.
    fn insert(&mut self, key: String, state: BucketState) -> Option<BucketState> {
        match self.map.entry(key) {
            Entry::Occupied(mut e) => Some(e.insert(state)),
            Entry::Vacant(e) => {
                if let Some(t) = tenant_of_key(e.key()) {
                    self.tenants.add(t);
                }
                e.insert(state);
                None
            }
        }
    }

    /// Counts a brand-new bucket under `key` (not in the map), unless its tenant has the
    /// most live buckets already; [`CountedMap::insert_reserved`] then inserts it. Checked
    /// and counted in one step, so shards creating buckets of one tenant at once cannot
    /// overshoot the maximum together.
    fn reserve(&self, key: &str) -> Result<(), BucketError> {
        let Some(t) = tenant_of_key(key) else {
            return Ok(());
        };
        self.tenants
            .try_add(t)
            .map_err(|live| BucketError::TooManyBuckets {
                tenant: t.to_string(),
                live: live as u64,
                max: self.tenants.max() as u64,
            })
    }

    /// Inserts a bucket counted by [`CountedMap::reserve`].
    fn insert_reserved(&mut self, key: String, state: BucketState) {
        match self.map.entry(key) {
            Entry::Occupied(mut e) => {
                // Not expected (the key was missing when reserved): counted once already.
                if let Some(t) = tenant_of_key(e.key()) {
                    self.tenants.remove([(t, 1)]);
                }
                e.insert(state);
            }
            Entry::Vacant(e) => {
                e.insert(state);
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<BucketState> {
        let s = self.map.remove(key)?;
        if let Some(t) = tenant_of_key(key) {
            self.tenants.remove([(t, 1)]);
        }
        Some(s)
    }

    fn extend(&mut self, entries: impl IntoIterator<Item = (String, BucketState)>) {
        for (k, s) in entries {
            self.insert(k, s);
        }
    }

    /// Keeps the states for which `keep` is true; one lock of the counts for all removals.
    fn retain(&mut self, mut keep: impl FnMut(&String, &mut BucketState) -> bool) {
        let mut gone: HashMap<String, usize> = HashMap::new();
        self.map.retain(|k, s| {
            let kept = keep(k, s);
            if !kept {
                if let Some(t) = tenant_of_key(k) {
                    match gone.get_mut(t) {
                        Some(n) => *n += 1,
                        None => {
                            gone.insert(t.to_string(), 1);
                        }
                    }
                }
            }
            kept
        });
        if !gone.is_empty() {
            self.tenants
                .remove(gone.iter().map(|(t, n)| (t.as_str(), *n)));
        }
    }

    /// Uncounts every state and hands them all out, leaving the map empty.
    fn take(&mut self) -> HashMap<String, BucketState> {
        self.uncount_all();
        std::mem::take(&mut self.map)
    }

    fn uncount_all(&self) {
        let mut by_tenant: HashMap<&str, usize> = HashMap::new();
        for t in self.map.keys().filter_map(|k| tenant_of_key(k)) {
            *by_tenant.entry(t).or_default() += 1;
        }
        if !by_tenant.is_empty() {
            self.tenants.remove(by_tenant);
        }
    }
}

impl Drop for CountedMap {
    /// A shard's state is dropped when its shard is replaced (after a panic): its buckets
    /// are gone, so they leave the counts.
    fn drop(&mut self) {
        self.uncount_all();
    }
}

/// A shard's state behind its lock: the actor and the handle's fast path share it.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // reply ports and permits inside
pub struct SharedShard(Arc<Mutex<ShardState>>);

impl SharedShard {
    /// Fresh, empty state for shard `index` (a restarted shard starts from this too), whose
    /// live buckets are counted per tenant in `tenants` (shared by the node's shards).
    pub fn new(index: usize, handoff: Option<Handoff>, tenants: Arc<TenantCounts>) -> Self {
        Self(Arc::new(Mutex::new(ShardState {
            index,
            handoff,
            buckets: CountedMap::new(tenants.clone()),
            replicas: HashMap::new(),
            stale: CountedMap::new(tenants),
            moved: HashMap::new(),
            dirty: HashSet::new(),
            waiting: HashMap::new(),
            pending: HashMap::new(),
            next_batch: 0,
        })))
    }

    /// The state, waiting for the lock. A poisoned lock (a panic while held) is taken
    /// over: the supervisor replaces the whole shard anyway when its actor panicked.
    fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node was stalled: every live bucket becomes a stale copy (see the module docs).
    /// Done under the lock, so no check after it is answered from a stale copy unasked.
    pub fn mark_stale(&self) {
        let mut st = self.lock();
        let live = st.buckets.take();
        st.dirty.clear();
        st.stale.extend(live);
    }

    /// Checks `items` in place when every one of their buckets is live here and the lock
    /// is free; `None` sends the batch to the actor (a bucket to create, pull or forward,
    /// or the actor busy with the lock). Never waits.
    pub fn try_check_live(&self, items: &[ShardItem]) -> Option<Vec<ItemResult>> {
        let mut st = match self.0.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => return None,
        };
        if !items.iter().all(|it| st.buckets.contains_key(&it.key)) {
            return None;
        }
        let now = now_ms();
        items.iter().map(|it| st.apply_live(it, now)).collect()
    }
}

/// A released bucket: checks that still arrive here are sent on to `to`.
#[derive(Debug)]
struct Tombstone {
    to: u64,
    /// What was handed over (given again if `to` asks again, e.g. after a lost answer).
    state: Option<BucketState>,
    until_ms: u64,
}

/// A check waiting for its key's state to arrive from a previous owner.
#[derive(Debug)]
struct Parked {
    batch: u64,
    pos: usize,
    item: ShardItem,
}

/// A batch with parked items.
#[allow(missing_debug_implementations)]
struct PendingBatch {
    results: Vec<Option<ItemResult>>,
    missing: usize,
    reply: RpcReplyPort<Vec<ItemResult>>,
    _permit: OwnedSemaphorePermit,
}

/// A shard's buckets.
#[allow(missing_debug_implementations)]
pub struct ShardState {
    index: usize,
    handoff: Option<Handoff>,
    /// Live buckets (counted per tenant).
    buckets: CountedMap,
    /// Copies sent by other owners (not counted: each is counted live on its owner).
    replicas: HashMap<String, BucketState>,
    /// Live buckets from before a stall: may be behind what others served meanwhile
    /// (counted per tenant, like live ones: they hold memory and become live on use).
    stale: CountedMap,
    moved: HashMap<String, Tombstone>,
    dirty: HashSet<String>,
    waiting: HashMap<String, Vec<Parked>>,
    pending: HashMap<u64, PendingBatch>,
    next_batch: u64,
}

/// The shard actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketShard;

/// What to do with one item.
enum Step {
    Done(ItemResult),
    Park(ShardItem),
}

impl ShardState {
    /// Marks `key` changed since the last replication round (when replicating).
    fn mark_dirty(&mut self, key: &str, hits: u64) {
        let replicating = self.handoff.as_ref().is_some_and(Handoff::replicating);
        if replicating && hits > 0 && !self.dirty.contains(key) {
            self.dirty.insert(key.to_string());
        }
    }

    /// Checks `it` on its live bucket; `None` when there is none.
    fn apply_live(&mut self, it: &ShardItem, now: u64) -> Option<ItemResult> {
        let b = self.buckets.get_mut(&it.key)?;
        let r = b
            .check(it.algorithm, &it.limit, it.hits, now)
            .map_err(BucketError::Limit);
        self.mark_dirty(&it.key, it.hits);
        Some(r)
    }

    /// Checks `it` on the live bucket, creating it from `base` (or afresh) when missing.
    /// A bucket created afresh counts against its tenant's live buckets and is refused
    /// (nothing charged, nothing kept) when the tenant has the most already; one continued
    /// from `base` is an existing bucket and is always kept.
    fn apply(&mut self, it: ShardItem, base: Option<BucketState>, now: u64) -> ItemResult {
        if let Some(r) = self.apply_live(&it, now) {
            return r;
        }
        let fresh = base.is_none();
        let mut slot = base;
        let d = colony_ratelimit::check(&mut slot, it.algorithm, &it.limit, it.hits, now)
            .map_err(BucketError::Limit)?;
        // A peek of a missing bucket creates nothing.
        let Some(b) = slot else { return Ok(d) };
        if fresh {
            self.buckets.reserve(&it.key)?;
        }
        self.mark_dirty(&it.key, it.hits);
        if fresh {
            self.buckets.insert_reserved(it.key, b);
        } else {
            self.buckets.insert(it.key, b);
        }
        Ok(d)
    }

    /// Decides an item: check it here, send it on, or wait for its state.
    fn step(&mut self, it: ShardItem, now: u64, myself: &ActorRef<ShardMsg>) -> Step {
        if self.buckets.contains_key(&it.key) {
            return Step::Done(self.apply(it, None, now));
        }
        let Some(h) = self.handoff.clone() else {
            return Step::Done(self.apply(it, None, now));
        };
        if self.waiting.contains_key(&it.key) {
            return Step::Park(it);
        }
        if let Some(t) = self.moved.get(&it.key) {
            if t.until_ms > now && h.is_reachable(t.to) {
                h.counters().moved.fetch_add(1, Ordering::Relaxed);
                return Step::Done(Err(BucketError::Moved(t.to)));
            }
            if t.until_ms > now && h.members().contains(&t.to) {
                // The new owner is an active member but the session to it is not up yet
                // (it has just started): keep the tombstone, the caller retries. (A
                // suspected or dead one is no longer a member: its state is taken back.)
                return Step::Done(Err(BucketError::Unavailable));
            }
            // The new owner is gone (or the tombstone is old): what was handed over is
            // the best known state, unless a replica (sent by the new owner) is newer.
            if let Some(s) = self.moved.remove(&it.key).and_then(|t| t.state) {
                self.replicas.entry(it.key.clone()).or_insert(s);
            }
        }
        match h.locate(&it.key) {
            Locate::Unowned => Step::Done(Err(BucketError::Unavailable)),
            Locate::Elsewhere(owner) => {
                if h.is_reachable(owner) {
                    h.counters().moved.fetch_add(1, Ordering::Relaxed);
                    Step::Done(Err(BucketError::Moved(owner)))
                } else {
                    // Our view is behind the sender's; it retries once views agree.
                    Step::Done(Err(BucketError::Unavailable))
                }
            }
            Locate::Mine { mut prior } => {
                if self.stale.contains_key(&it.key) {
                    // Served elsewhere while this node was stalled? Ask every member.
                    let me = h.node_id();
                    for n in h.members().iter().copied() {
                        if n != me && !prior.contains(&n) {
                            prior.push(n);
                        }
                    }
                }
                let prior: Vec<u64> = if h.enabled() {
                    prior.into_iter().filter(|n| h.is_alive(*n)).collect()
                } else {
                    Vec::new()
                };
                if !prior.is_empty() {
                    self.waiting.insert(it.key.clone(), Vec::new());
                    let key = it.key.clone();
                    let me = myself.clone();
                    tokio::spawn(async move {
                        let state = h.pull(prior, key.clone()).await;
                        // Fails only if the shard stopped: its waiters went with it.
                        let _ = me.cast(ShardMsg::Pulled(key, state));
                    });
                    return Step::Park(it);
                }
                let base = match self.stale.remove(&it.key) {
                    Some(own) => Some(own),
                    None => {
                        let r = self.replicas.remove(&it.key);
                        if r.is_some() {
                            h.counters().promoted.fetch_add(1, Ordering::Relaxed);
                        }
                        r
                    }
                };
                Step::Done(self.apply(it, base, now))
            }
        }
    }

    fn check(
        &mut self,
        items: Vec<ShardItem>,
        permit: OwnedSemaphorePermit,
        reply: RpcReplyPort<Vec<ItemResult>>,
        myself: &ActorRef<ShardMsg>,
    ) {
        let now = now_ms();
        let mut results = Vec::with_capacity(items.len());
        let mut parked = Vec::new();
        for (pos, it) in items.into_iter().enumerate() {
            match self.step(it, now, myself) {
                Step::Done(r) => results.push(Some(r)),
                Step::Park(it) => {
                    results.push(None);
                    parked.push((pos, it));
                }
            }
        }
        if parked.is_empty() {
            // The caller may have timed out and gone; nothing to do then.
            let _ = reply.send(results.into_iter().flatten().collect());
            return;
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        let missing = parked.len();
        for (pos, item) in parked {
            self.waiting
                .entry(item.key.clone())
                .or_default()
                .push(Parked { batch, pos, item });
        }
        self.pending.insert(
            batch,
            PendingBatch {
                results,
                missing,
                reply,
                _permit: permit,
            },
        );
    }

    fn pulled(&mut self, key: String, outcome: PullOutcome) {
        let waiters = self.waiting.remove(&key).unwrap_or_default();
        let state = match outcome {
            PullOutcome::Found(s) => Some(s),
            PullOutcome::NotHeld => None,
            // Someone who may hold it could not be asked: starting it here could put the
            // bucket live in two places. The stale copy and replica stay for the next try.
            // Only within the handoff window of a change, join or stall: after it, nobody
            // else can hold live state, and the key must not stay unavailable.
            PullOutcome::Unreachable
                if !self.buckets.contains_key(&key)
                    && self.handoff.as_ref().is_some_and(|h| h.unsettled()) =>
            {
                for w in waiters {
                    self.answer(w.batch, w.pos, Err(BucketError::Unavailable));
                }
                return;
            }
            PullOutcome::Unreachable => None,
        };
        let mut base = None;
        if !self.buckets.contains_key(&key) {
            self.moved.remove(&key);
            let replica = self.replicas.remove(&key);
            let now = now_ms();
            let state = match (state, self.stale.remove(&key)) {
                (Some(s), Some(own)) => Some(s.more_admitted(own, now)),
                (s, own) => s.or(own),
            };
            base = match (state, replica) {
                (Some(s), _) => Some(s),
                (None, Some(r)) => {
                    if let Some(h) = &self.handoff {
                        h.counters().promoted.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(r)
                }
                (None, None) => None,
            };
        }
        let now = now_ms();
        for w in waiters {
            let (batch, pos) = (w.batch, w.pos);
            let r = self.apply(w.item, base.take(), now);
            self.answer(batch, pos, r);
        }
        // No waiter created it (all peeks): keep what arrived.
        if let Some(b) = base {
            self.buckets.insert(key, b);
        }
    }

    /// Records a parked item's result; answers its batch once the batch is complete.
    fn answer(&mut self, batch: u64, pos: usize, r: ItemResult) {
        let done = match self.pending.get_mut(&batch) {
            Some(p) => {
                if let Some(slot) = p.results.get_mut(pos) {
                    *slot = Some(r);
                }
                p.missing = p.missing.saturating_sub(1);
                p.missing == 0
            }
            None => false,
        };
        if done {
            if let Some(p) = self.pending.remove(&batch) {
                let _ = p.reply.send(p.results.into_iter().flatten().collect());
            }
        }
    }

    fn tombstone(&self, to: u64, state: Option<BucketState>, now: u64) -> Tombstone {
        let ttl = self
            .handoff
            .as_ref()
            .map_or(0, |h| h.config().tombstone_ttl.as_millis() as u64);
        Tombstone {
            to,
            state,
            until_ms: now.saturating_add(ttl),
        }
    }

    fn release(&mut self, key: String, to: u64) -> PullAnswer {
        let now = now_ms();
        if self.waiting.contains_key(&key) {
            return PullAnswer::Busy;
        }
        if let Some(s) = self
            .buckets
            .remove(&key)
            .or_else(|| self.stale.remove(&key))
        {
            self.dirty.remove(&key);
            let t = self.tombstone(to, Some(s.clone()), now);
            self.moved.insert(key, t);
            return PullAnswer::State(s);
        }
        let reachable = |n: u64| self.handoff.as_ref().is_some_and(|h| h.is_reachable(n));
        if let Some(t) = self.moved.get(&key) {
            if t.to == to {
                return t
                    .state
                    .clone()
                    .map_or(PullAnswer::Unknown, PullAnswer::State);
            }
            if t.until_ms > now && reachable(t.to) {
                return PullAnswer::Moved(t.to);
            }
        }
        // Nothing live here: remember who owns it now, so checks that still arrive here
        // (from nodes whose view is behind) are sent on instead of starting a second copy.
        // Hand over the best state known here: what was handed over before, else the
        // replica (a push that failed leaves its state there).
        let state = self
            .moved
            .remove(&key)
            .and_then(|t| t.state)
            .or_else(|| self.replicas.remove(&key));
        let t = self.tombstone(to, state.clone(), now);
        self.moved.insert(key, t);
        state.map_or(PullAnswer::Unknown, PullAnswer::State)
    }

    fn install(&mut self, entries: KeyedStates) -> usize {
        let mut n = 0;
        let replicating = self.handoff.as_ref().is_some_and(Handoff::replicating);
        let now = now_ms();
        for (key, state) in entries {
            if let Some(live) = self.buckets.get_mut(&key) {
                // Already live here. After a pull the copies are the same state; but a
                // node that was paused (declared down, its keys served elsewhere) comes
                // back with its old copy: keep whichever has admitted more, so the hits
                // the other owner admitted meanwhile are not forgotten.
                if live.behind(&state, now) {
                    *live = state;
                }
                continue;
            }
            self.moved.remove(&key);
            self.replicas.remove(&key);
            let state = match self.stale.remove(&key) {
                Some(own) => state.more_admitted(own, now),
                None => state,
            };
            if replicating {
                self.dirty.insert(key.clone());
            }
            self.buckets.insert(key, state);
            n += 1;
        }
        n
    }

    fn evict(&mut self) -> Vec<(u64, String, BucketState)> {
        let Some(h) = self.handoff.clone() else {
            return Vec::new();
        };
        let me = h.node_id();
        // Stale copies of keys owned elsewhere now go to their owner like live buckets
        // (the owner keeps whichever copy admitted more); the others stay stale.
        let gone: Vec<String> = self
            .stale
            .keys()
            .filter(|k| h.owner(k) != me)
            .cloned()
            .collect();
        for k in gone {
            if let Some(own) = self.stale.remove(&k) {
                let keep = match self.buckets.remove(&k) {
                    Some(live) => live.more_admitted(own, now_ms()),
                    None => own,
                };
                self.buckets.insert(k, keep);
            }
        }
        let leaving: Vec<(String, u64)> = self
            .buckets
            .keys()
            .filter_map(|k| {
                let o = h.owner(k);
                (o != me).then(|| (k.clone(), o))
            })
            .collect();
        let now = now_ms();
        let mut out = Vec::with_capacity(leaving.len());
        for (key, to) in leaving {
            if let Some(s) = self.buckets.remove(&key) {
                self.dirty.remove(&key);
                let t = self.tombstone(to, Some(s.clone()), now);
                self.moved.insert(key.clone(), t);
                out.push((to, key, s));
            }
        }
        out
    }

    fn take_dirty(&mut self, all: bool) -> KeyedStates {
        if all {
            self.dirty.clear();
            return self
                .buckets
                .iter()
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect();
        }
        let keys = std::mem::take(&mut self.dirty);
        keys.into_iter()
            .filter_map(|k| self.buckets.get(&k).cloned().map(|s| (k, s)))
            .collect()
    }

    fn sweep(&mut self) {
        let now = now_ms();
        let before = self.buckets.len();
        self.buckets.retain(|_, b| !b.is_at_rest(now));
        self.replicas.retain(|_, b| !b.is_at_rest(now));
        self.stale.retain(|_, b| !b.is_at_rest(now));
        self.moved.retain(|_, t| t.until_ms > now);
        let swept = before - self.buckets.len();
        if swept > 0 {
            tracing::debug!(
                shard = self.index,
                swept,
                left = self.buckets.len(),
                replicas = self.replicas.len(),
                "swept buckets at rest"
            );
        }
    }
}

impl Actor for BucketShard {
    type Msg = ShardMsg;
    type State = SharedShard;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        args: ShardArgs,
    ) -> Result<SharedShard, ActorProcessingErr> {
        // The interval task ends when the actor stops (sending then fails).
        myself.send_interval(args.sweep_every, || ShardMsg::Sweep);
        Ok(args.state)
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardMsg>,
        msg: ShardMsg,
        shared: &mut SharedShard,
    ) -> Result<(), ActorProcessingErr> {
        // Held for the whole (synchronous) handler: nothing below awaits.
        let mut guard = shared.lock();
        let state = &mut *guard;
        match msg {
            ShardMsg::Check(items, permit, reply) => state.check(items, permit, reply, &myself),
            ShardMsg::Pulled(key, outcome) => state.pulled(key, outcome),
            ShardMsg::Release(key, to, reply) => {
                let _ = reply.send(state.release(key, to));
            }
            ShardMsg::Install(entries, reply) => {
                let _ = reply.send(state.install(entries));
            }
            ShardMsg::Evict(reply) => {
                let _ = reply.send(state.evict());
            }
            ShardMsg::TakeDirty(all, reply) => {
                let _ = reply.send(state.take_dirty(all));
            }
            ShardMsg::StoreReplicas(entries) => {
                for (key, s) in entries {
                    if !state.buckets.contains_key(&key) {
                        state.replicas.insert(key, s);
                    }
                }
            }
            ShardMsg::Sweep => state.sweep(),
            ShardMsg::Len(reply) => {
                let _ = reply.send(state.buckets.len());
            }
            ShardMsg::InjectPanic => panic!(
                "injected panic in bucket shard {} (fault injection)",
                state.index
            ),
        }
        Ok(())
    }
}
