//! The bucket supervisor and the [`Buckets`] handle.
//!
//! A fixed number of shards (each an actor) hold the buckets; a key's shard is a stable hash
//! of the key. The supervisor restarts a failed (panicked) shard with the shared backoff
//! policy ([`Backoff::BUCKET_SHARD`]) and records it on its [`Component`]; the handle bounds in-flight batches per shard (overload answers
//! [`BucketError::Overloaded`], never an unbounded queue) and times every call out.

use crate::bucket_shard::{
    BucketShard, ItemResult, ShardArgs, ShardItem, ShardMsg, SharedShard, TenantCounts,
};
use crate::handoff::{BucketStore, Handoff};
use crate::leases::Leases;
use crate::types::{BucketError, CheckItem, KeyedStates, PullAnswer};
use colony_ratelimit::{BucketState, Decision};
use colony_supervision::{Backoff, Component, ComponentKind, Gauges, Restarts};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Settings of the bucket runtime.
#[derive(Debug, Clone)]
pub struct BucketsConfig {
    /// Number of shard actors.
    pub shards: usize,
    /// Batches in flight per shard before new ones are refused.
    pub max_in_flight_per_shard: usize,
    /// Timeout of one shard call.
    pub call_timeout: Duration,
    /// How often shards forget buckets at rest.
    pub sweep_every: Duration,
    /// Ownership and bucket movement between nodes; `None` for a node on its own.
    pub handoff: Option<Handoff>,
    /// Most live buckets one tenant may have on this node (`ratelimit.max_buckets_per_tenant`):
    /// past it, a check that would create a new bucket of the tenant is refused with
    /// [`BucketError::TooManyBuckets`]; its existing buckets keep working, and a bucket that
    /// comes to rest and is swept (or leaves the node) frees its slot. Counted over the
    /// tenant-scoped keys of [`tenant_bucket_key`] only (tier buckets are not counted).
    pub max_buckets_per_tenant: usize,
}

impl Default for BucketsConfig {
    fn default() -> Self {
        Self {
            shards: 16,
            max_in_flight_per_shard: 1024,
            call_timeout: Duration::from_secs(2),
            sweep_every: Duration::from_secs(10),
            handoff: None,
            max_buckets_per_tenant: DEFAULT_MAX_BUCKETS_PER_TENANT,
        }
    }
}

/// Default of [`BucketsConfig::max_buckets_per_tenant`].
pub const DEFAULT_MAX_BUCKETS_PER_TENANT: usize = 100_000;

/// The shards, shared between the supervisor (which replaces failed ones) and handles.
/// A running shard: its actor and its state (for the fast path).
#[derive(Clone)]
struct ShardSlot {
    actor: ActorRef<ShardMsg>,
    state: SharedShard,
}

impl std::fmt::Debug for ShardSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSlot")
            .field("actor", &self.actor.get_id())
            .finish_non_exhaustive()
    }
}

type ShardTable = Arc<RwLock<Vec<Option<ShardSlot>>>>;

/// Messages of the supervisor (local only).
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Start shard `i` again (after its backoff).
    Respawn(usize),
}

impl ractor::Message for SupervisorMsg {}

/// Startup arguments of the supervisor.
#[derive(Debug)]
pub struct SupervisorArgs {
    table: ShardTable,
    component: Component,
    sweep_every: Duration,
    handoff: Option<Handoff>,
    tenants: Arc<TenantCounts>,
}

/// Supervisor state.
#[derive(Debug)]
pub struct SupervisorState {
    table: ShardTable,
    index_of: HashMap<ActorId, usize>,
    failures: Restarts<usize>,
    component: Component,
    sweep_every: Duration,
    handoff: Option<Handoff>,
    tenants: Arc<TenantCounts>,
}

/// The bucket supervisor actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketSupervisor;

impl BucketSupervisor {
    async fn spawn_shard(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
        i: usize,
    ) -> Result<(), ActorProcessingErr> {
        // Fresh state: a shard that panicked may have left its buckets half-updated.
        // A failed shard's buckets leave the tenant counts when its old state is dropped.
        let state = SharedShard::new(i, st.handoff.clone(), st.tenants.clone());
        let args = ShardArgs {
            sweep_every: st.sweep_every,
            state: state.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, BucketShard, args, myself.get_cell()).await?;
        st.index_of.insert(actor.get_id(), i);
        let mut table = st.table.write().unwrap_or_else(|p| p.into_inner());
        table[i] = Some(ShardSlot { actor, state });
        Ok(())
    }
}

impl Actor for BucketSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let n = args.table.read().unwrap_or_else(|p| p.into_inner()).len();
        let mut st = SupervisorState {
            table: args.table,
            index_of: HashMap::new(),
            failures: Restarts::new(Backoff::BUCKET_SHARD),
            component: args.component,
            sweep_every: args.sweep_every,
            handoff: args.handoff,
            tenants: args.tenants,
        };
        for i in 0..n {
            Self::spawn_shard(&myself, &mut st, i).await?;
        }
        Ok(st)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Respawn(i) => {
                Self::spawn_shard(&myself, st, i).await?;
                tracing::info!(shard = i, "bucket shard restarted");
            }
        }
        Ok(())
    }

    // Overridden: ractor's default stops the supervisor when any child stops.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        let Some(i) = st.index_of.remove(&cell.get_id()) else {
            return Ok(());
        };
        {
            let mut table = st.table.write().unwrap_or_else(|p| p.into_inner());
            table[i] = None;
        }
        let (n, backoff) = st.failures.failed(i);
        // A shard's handlers return no errors: a shard that failed panicked.
        st.component.failed(format!("shard {i}: {reason}"), true);
        st.component.restarted();
        tracing::warn!(shard = i, %reason, restart = n, ?backoff, "bucket shard stopped; restarting");
        myself.send_after(backoff, move || SupervisorMsg::Respawn(i));
        Ok(())
    }
}

/// Handle to the bucket runtime: cheap to clone.
#[derive(Clone)]
pub struct Buckets {
    table: ShardTable,
    pub(crate) permits: Arc<Vec<Arc<Semaphore>>>,
    component: Component,
    supervisor: ActorRef<SupervisorMsg>,
    config: BucketsConfig,
    leases: Leases,
    tenants: Arc<TenantCounts>,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the bucket actors: {0}")]
pub struct StartError(String);

impl Buckets {
    /// Starts the supervisor and its shards.
    pub async fn start(config: BucketsConfig) -> Result<Self, StartError> {
        let shards = config.shards.max(1);
        let table: ShardTable = Arc::new(RwLock::new(vec![None; shards]));
        let component = Component::new("buckets", ComponentKind::Supervisor);
        let tenants = Arc::new(TenantCounts::new(config.max_buckets_per_tenant));
        let args = SupervisorArgs {
            table: table.clone(),
            component: component.clone(),
            sweep_every: config.sweep_every,
            handoff: config.handoff.clone(),
            tenants: tenants.clone(),
        };
        let (supervisor, _) = Actor::spawn(None, BucketSupervisor, args)
            .await
            .map_err(|e| StartError(e.to_string()))?;
        let per_shard = config.max_in_flight_per_shard.max(1);
        let permits: Arc<Vec<Arc<Semaphore>>> = Arc::new(
            (0..shards)
                .map(|_| Arc::new(Semaphore::new(per_shard)))
                .collect(),
        );
        component.set_gauges({
            let (table, permits, tenants) = (table.clone(), permits.clone(), tenants.clone());
            move || Gauges {
                queue_depth: Some(
                    permits
                        .iter()
                        .map(|p| per_shard.saturating_sub(p.available_permits()) as u64)
                        .sum(),
                ),
                buckets: Some(tenants.total() as u64),
                children: Some(
                    table
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .filter(|s| s.is_some())
                        .count() as u64,
                ),
                ..Gauges::default()
            }
        });
        Ok(Self {
            table,
            permits,
            component,
            supervisor,
            config,
            leases: Leases::default(),
            tenants,
        })
    }

    /// Live buckets of `tenant` on this node (its live and stale copies in every shard).
    pub fn live_buckets_of(&self, tenant: &str) -> usize {
        self.tenants.live(tenant)
    }

    /// The concurrency lease table of this node (leases of the tenants it owns). It lives
    /// with the buckets because both are "limiter state this node owns", reached locally
    /// and through the Router alike.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The shard of a key: a stable hash, so the same key always lands on the same shard.
    pub fn shard_of(&self, key: &str) -> usize {
        (colony_placement::key_digest(key.as_bytes()) % self.permits.len() as u64) as usize
    }

    fn slot(&self, i: usize) -> Option<ShardSlot> {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(i)
            .cloned()
            .flatten()
    }

    fn shard(&self, i: usize) -> Option<ActorRef<ShardMsg>> {
        self.slot(i).map(|s| s.actor)
    }

    /// Checks every item; results come back in the order of `items`. Items are split by
    /// shard and the shards are asked in parallel.
    pub async fn check(&self, items: Vec<CheckItem>) -> Vec<Result<Decision, BucketError>> {
        let mut results: Vec<Result<Decision, BucketError>> =
            vec![Err(BucketError::Unavailable); items.len()];
        let mut groups: HashMap<usize, (Vec<usize>, Vec<ShardItem>)> = HashMap::new();
        for (pos, it) in items.into_iter().enumerate() {
            if let Err(e) = it.limit.validate(it.algorithm) {
                results[pos] = Err(BucketError::Limit(e));
                continue;
            }
            let g = groups.entry(self.shard_of(&it.key)).or_default();
            g.0.push(pos);
            g.1.push(ShardItem {
                key: it.key,
                algorithm: it.algorithm,
                limit: it.limit,
                hits: it.hits,
            });
        }
        let mut outcomes = Vec::with_capacity(groups.len());
        if groups.len() == 1 {
            // One shard (every single-item check): no task to spawn, which measurably
            // matters on the hot path.
            for (shard, (positions, batch)) in groups {
                outcomes.push((positions, self.check_shard(shard, batch).await));
            }
        } else {
            let mut tasks = tokio::task::JoinSet::new();
            for (shard, (positions, batch)) in groups {
                let this = self.clone();
                tasks.spawn(async move { (positions, this.check_shard(shard, batch).await) });
            }
            while let Some(done) = tasks.join_next().await {
                if let Ok(o) = done {
                    outcomes.push(o);
                }
            }
        }
        for (positions, outcome) in outcomes {
            match outcome {
                Ok(decisions) => {
                    for (pos, d) in positions.into_iter().zip(decisions) {
                        results[pos] = d;
                    }
                }
                Err(e) => {
                    for pos in positions {
                        results[pos] = Err(e.clone());
                    }
                }
            }
        }
        results
    }

    /// One batch to one shard; retried once if the shard was restarting or timed out.
    async fn check_shard(
        &self,
        i: usize,
        batch: Vec<ShardItem>,
    ) -> Result<Vec<ItemResult>, BucketError> {
        for attempt in 0..2 {
            let slot = self.slot(i);
            if let Some(done) = slot.as_ref().and_then(|s| s.state.try_check_live(&batch)) {
                return Ok(done);
            }
            let permit = self.permits[i]
                .clone()
                .try_acquire_owned()
                .map_err(|_| BucketError::Overloaded)?;
            if let Some(shard) = slot.map(|s| s.actor) {
                let items = batch.clone();
                match shard
                    .call(
                        |reply| ShardMsg::Check(items, permit, reply),
                        Some(self.config.call_timeout),
                    )
                    .await
                {
                    Ok(CallResult::Success(out)) => return Ok(out),
                    // A timeout can surface as Timeout or as a closed channel: same handling.
                    Ok(CallResult::Timeout) | Ok(CallResult::SenderError) | Err(_) => {}
                }
            } else {
                drop(permit);
            }
            if attempt == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Err(BucketError::Unavailable)
    }

    /// Ownership and bucket movement, when this node is part of a cluster.
    pub fn handoff(&self) -> Option<&Handoff> {
        self.config.handoff.as_ref()
    }

    fn every_shard(&self) -> impl Iterator<Item = ActorRef<ShardMsg>> + '_ {
        (0..self.permits.len()).filter_map(|i| self.shard(i))
    }

    fn by_shard(&self, entries: KeyedStates) -> HashMap<usize, KeyedStates> {
        let mut groups: HashMap<usize, KeyedStates> = HashMap::new();
        for (key, state) in entries {
            groups
                .entry(self.shard_of(&key))
                .or_default()
                .push((key, state));
        }
        groups
    }

    /// Gives `key`'s live state to its new owner `to` (a pull from `to`).
    pub async fn release(&self, key: String, to: u64) -> Result<PullAnswer, BucketError> {
        let shard = self
            .shard(self.shard_of(&key))
            .ok_or(BucketError::Unavailable)?;
        match shard
            .call(
                |port| ShardMsg::Release(key, to, port),
                Some(self.config.call_timeout),
            )
            .await
        {
            Ok(CallResult::Success(a)) => Ok(a),
            _ => Err(BucketError::Unavailable),
        }
    }

    /// Takes over buckets handed over by their old owner; returns how many were new here.
    pub async fn install(&self, entries: KeyedStates) -> usize {
        let mut n = 0;
        for (i, list) in self.by_shard(entries) {
            let Some(shard) = self.shard(i) else { continue };
            if let Ok(CallResult::Success(k)) = shard
                .call(
                    |port| ShardMsg::Install(list, port),
                    Some(self.config.call_timeout),
                )
                .await
            {
                n += k;
            }
        }
        n
    }

    /// Keeps replicas sent by their owners.
    pub fn store_replicas(&self, entries: KeyedStates) {
        for (i, list) in self.by_shard(entries) {
            if let Some(shard) = self.shard(i) {
                let _ = shard.cast(ShardMsg::StoreReplicas(list));
            }
        }
    }

    /// Releases every live bucket this node no longer owns (by the handoff's newest view):
    /// each with its new owner, for pushing.
    pub async fn evict(&self) -> Vec<(u64, String, BucketState)> {
        let mut out = Vec::new();
        for shard in self.every_shard() {
            // Scanning a shard is proportional to its buckets: a generous timeout.
            if let Ok(CallResult::Success(list)) = shard
                .call(ShardMsg::Evict, Some(self.config.call_timeout * 5))
                .await
            {
                out.extend(list);
            }
        }
        out
    }

    /// The live buckets changed since the last call (all of them when `all`).
    pub async fn take_dirty(&self, all: bool) -> KeyedStates {
        let mut out = Vec::new();
        for shard in self.every_shard() {
            if let Ok(CallResult::Success(list)) = shard
                .call(
                    |port| ShardMsg::TakeDirty(all, port),
                    Some(self.config.call_timeout * 5),
                )
                .await
            {
                out.extend(list);
            }
        }
        out
    }

    /// Shard restarts since start (a metric).
    pub fn restarts(&self) -> u64 {
        self.component.restarts()
    }

    /// The supervisor's observable state: restarts, panics, last error, batches in
    /// flight, buckets held and shards alive.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// Buckets held across all shards.
    pub async fn len(&self) -> usize {
        let mut total = 0;
        for i in 0..self.permits.len() {
            if let Some(shard) = self.shard(i) {
                if let Ok(CallResult::Success(n)) = shard
                    .call(ShardMsg::Len, Some(self.config.call_timeout))
                    .await
                {
                    total += n;
                }
            }
        }
        total
    }

    /// Whether no bucket is held.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// After a stall of this node (paused, frozen): every live bucket becomes a stale copy,
    /// checked again only after the other members were asked whether they served it
    /// meanwhile. Takes each shard's lock in turn (briefly: it moves one map).
    pub fn mark_stale(&self) {
        for i in 0..self.permits.len() {
            if let Some(s) = self.slot(i) {
                s.state.mark_stale();
            }
        }
    }

    /// Test-only fault injection: makes shard `i` (or every shard) panic.
    pub fn inject_panic(&self, shard: Option<usize>) {
        let n = self.permits.len();
        for i in (0..n).filter(|i| shard.is_none_or(|s| s == *i)) {
            if let Some(s) = self.shard(i) {
                let _ = s.cast(ShardMsg::InjectPanic);
            }
        }
    }

    /// Stops the supervisor and its shards.
    pub async fn stop(&self) {
        let _ = self
            .supervisor
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
    }
}

impl BucketStore for Buckets {
    fn evict(&self) -> impl std::future::Future<Output = Vec<(u64, String, BucketState)>> + Send {
        Buckets::evict(self)
    }

    fn take_dirty(&self, all: bool) -> impl std::future::Future<Output = KeyedStates> + Send {
        Buckets::take_dirty(self, all)
    }

    fn mark_stale(&self) {
        Buckets::mark_stale(self);
    }

    fn leases(&self) -> &Leases {
        Buckets::leases(self)
    }
}
