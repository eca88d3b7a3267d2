//! One bucket shard: the rate-limit buckets whose keys hash to it, checked one batch at a
//! time, so every bucket sees its hits in order without locks.

use colony_ratelimit::{Algorithm, BucketState, Decision, Limit, LimitError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::HashMap;
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

/// Messages of a shard (local only: never serialized, so never advertised to peers).
#[allow(missing_debug_implementations)] // carries a reply port and a permit
pub enum ShardMsg {
    /// Check a batch; the permit bounds in-flight batches per shard and is released when the
    /// message is dropped (handled or discarded).
    Check(
        Vec<ShardItem>,
        OwnedSemaphorePermit,
        RpcReplyPort<Vec<Result<Decision, LimitError>>>,
    ),
    /// Forget buckets at rest (dropping them changes no decision): keeps memory bounded.
    Sweep,
    /// How many buckets the shard holds.
    Len(RpcReplyPort<usize>),
    /// Test-only fault injection: panic in the handler (the supervisor restarts the shard).
    InjectPanic,
}

// What `#[derive(RactorMessage)]` would emit; written out to avoid depending on
// ractor_cluster here. Without a `BytesConvertable` impl the type stays local-only.
impl ractor::Message for ShardMsg {}

/// Startup arguments of a shard.
#[derive(Debug, Clone)]
pub struct ShardArgs {
    /// Shard index (for logs).
    pub index: usize,
    /// How often to sweep buckets at rest.
    pub sweep_every: Duration,
}

/// A shard's buckets.
#[derive(Debug, Default)]
pub struct ShardState {
    index: usize,
    buckets: HashMap<String, BucketState>,
}

/// The shard actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketShard;

/// Milliseconds since the Unix epoch; the owner's clock decides for its buckets.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Actor for BucketShard {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        args: ShardArgs,
    ) -> Result<ShardState, ActorProcessingErr> {
        // The interval task ends when the actor stops (sending then fails).
        myself.send_interval(args.sweep_every, || ShardMsg::Sweep);
        Ok(ShardState {
            index: args.index,
            buckets: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ShardMsg>,
        msg: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Check(items, _permit, reply) => {
                let now = now_ms();
                let out = items
                    .into_iter()
                    .map(|it| check_one(&mut state.buckets, it, now))
                    .collect();
                // The caller may have timed out and gone; nothing to do then.
                let _ = reply.send(out);
            }
            ShardMsg::Sweep => {
                let now = now_ms();
                let before = state.buckets.len();
                state.buckets.retain(|_, b| !b.is_at_rest(now));
                let swept = before - state.buckets.len();
                if swept > 0 {
                    tracing::debug!(
                        shard = state.index,
                        swept,
                        left = state.buckets.len(),
                        "swept buckets at rest"
                    );
                }
            }
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

fn check_one(
    buckets: &mut HashMap<String, BucketState>,
    it: ShardItem,
    now: u64,
) -> Result<Decision, LimitError> {
    match buckets.get_mut(&it.key) {
        Some(b) => b.check(it.algorithm, &it.limit, it.hits, now),
        None => {
            let mut slot = None;
            let d = colony_ratelimit::check(&mut slot, it.algorithm, &it.limit, it.hits, now)?;
            if let Some(b) = slot {
                buckets.insert(it.key, b);
            }
            Ok(d)
        }
    }
}
