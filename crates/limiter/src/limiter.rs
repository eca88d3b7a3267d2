//! Routing of rate-limit checks to the node that owns each bucket.
//!
//! A bucket's owner is `colony_placement::owner(key, active members)`, computed locally by
//! every node from its own membership view (the [`crate::handoff::Handoff`]'s snapshot when
//! the node is in a cluster). While the views agree (membership stable), every hit of a
//! bucket lands on one node's shard, so counts are exact cluster-wide. An owner that has
//! handed the bucket to another node answers "moved to N" and the item is sent there (a
//! few hops at most). A remote call that fails (timeout, session gone, no Router known for
//! the owner) is retried once after recomputing the owner from the current view; when the
//! new owner is this node, the item is checked locally.

use crate::buckets::Buckets;
use crate::leases::{LeaseOp, LeaseOutcome};
use crate::types::{BucketError, CheckItem};
use crate::view::ClusterView;
use crate::wire::{CheckBatch, LeaseRequest, RouterMsg, Wire, WireItem};
use colony_ratelimit::Decision;
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Request context that travels with routed items into the owner's tracing span.
#[derive(Debug, Clone, Default)]
pub struct CheckContext {
    /// Request id of the HTTP request.
    pub request_id: String,
    /// Tenant of the caller.
    pub tenant_id: String,
}

/// Settings of the routing layer.
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// Timeout of one remote call to an owner's Router.
    pub remote_timeout: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            remote_timeout: Duration::from_secs(1),
        }
    }
}

/// Checks buckets wherever they live: locally through [`Buckets`] for buckets this node
/// owns, through the owner's Router otherwise. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    node_id: u64,
    buckets: Buckets,
    view: Arc<dyn ClusterView>,
    config: LimiterConfig,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("node_id", &self.node_id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One owner's group after its check: owner, the items (for a retry), outcome.
type GroupOutcome = (
    u64,
    Vec<Pending>,
    Result<Vec<Result<Decision, BucketError>>, RemoteError>,
);

/// Why a remote group failed as a whole (the items are retried or marked unavailable).
#[derive(Debug, thiserror::Error)]
enum RemoteError {
    #[error("no session to node {0}")]
    NoRoute(u64),
    #[error("node {0} did not answer in time")]
    Timeout(u64),
    #[error("node {0} answered with an error: {1}")]
    Peer(u64, String),
    #[error("node {0} answered {1} results for {2} items")]
    Mismatch(u64, usize, usize),
}

type Outcome = Result<Decision, BucketError>;

/// Sends of one item to distinct owners: the first, one retry after a failure, and
/// "moved" hops.
const MAX_HOPS: u8 = 4;

/// Times one item may bounce straight back ("moved" to the node that just sent it on):
/// during a handover the two nodes briefly disagree, so each bounce waits
/// [`BOUNCE_PAUSE`] for the handed-over state or the view change to land.
const MAX_BOUNCES: u8 = 20;

/// Pause before resending items that bounced (see [`MAX_BOUNCES`]).
const BOUNCE_PAUSE: Duration = Duration::from_millis(25);

/// An item still to be checked, and where it has been.
struct Pending {
    pos: usize,
    item: CheckItem,
    /// The node it was sent on to ("moved"), if any; else its owner in our view.
    to: Option<u64>,
    /// The node that answered "moved" last.
    from: Option<u64>,
    hops: u8,
    bounces: u8,
}

/// A concurrency lease granted by `owner`: released there, whoever owns the key by then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Lease key (one per tenant).
    pub key: String,
    /// Id of the lease.
    pub lease_id: String,
    /// Node that granted it.
    pub owner: u64,
}

impl Limiter {
    /// A limiter for node `node_id`.
    pub fn new(
        node_id: u64,
        buckets: Buckets,
        view: Arc<dyn ClusterView>,
        config: LimiterConfig,
    ) -> Self {
        Self {
            node_id,
            buckets,
            view,
            config,
        }
    }

    /// A limiter that checks everything locally (single node, tests).
    pub fn local(buckets: Buckets) -> Self {
        struct Alone;
        impl ClusterView for Alone {
            fn active_members(&self) -> Vec<u64> {
                Vec::new()
            }
            fn router_of(&self, _: u64) -> Option<ActorCell> {
                None
            }
        }
        Self::new(0, buckets, Arc::new(Alone), LimiterConfig::default())
    }

    /// The local bucket runtime.
    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    /// The node that owns `key` in the current view (this node when no view is known).
    pub fn owner_of(&self, key: &str, members: &[u64]) -> u64 {
        colony_placement::owner(key.as_bytes(), members).unwrap_or(self.node_id)
    }

    /// The active members, by this node's newest view (who owns buckets and is
    /// chosen to run new work).
    pub fn owners_view(&self) -> Vec<u64> {
        self.members().as_ref().clone()
    }

    /// The members that own buckets, by this node's newest view.
    fn members(&self) -> Arc<Vec<u64>> {
        match self.buckets.handoff() {
            Some(h) => h.members(),
            None => Arc::new(self.view.active_members()),
        }
    }

    /// Checks every item at its owner; results come back in the order of `items`.
    pub async fn check(&self, ctx: &CheckContext, items: Vec<CheckItem>) -> Vec<Outcome> {
        let mut results: Vec<Outcome> = vec![Err(BucketError::Unavailable); items.len()];
        let mut pending: Vec<Pending> = Vec::with_capacity(items.len());
        for (pos, item) in items.into_iter().enumerate() {
            // Invalid limits are answered here: no point sending them anywhere.
            match item.limit.validate(item.algorithm) {
                Ok(()) => pending.push(Pending {
                    pos,
                    item,
                    to: None,
                    from: None,
                    hops: 0,
                    bounces: 0,
                }),
                Err(e) => results[pos] = Err(BucketError::Limit(e)),
            }
        }
        let mut retried = false;
        let mut failed = false;
        let mut bounced = false;
        // Every item leaves `pending` after at most MAX_HOPS + MAX_BOUNCES sends.
        while !pending.is_empty() {
            if failed {
                // Gives a restarting session or a gossip update a moment to land.
                tokio::time::sleep(Duration::from_millis(50)).await;
            } else if bounced {
                tokio::time::sleep(BOUNCE_PAUSE).await;
            }
            failed = false;
            bounced = false;
            // Recomputed every round: a failed owner may have left the view meanwhile.
            let members = self.members();
            if members.is_empty() && !self.view.serves_alone_when_empty() {
                // Not joined yet: no owner is known, and checking here could start a
                // bucket that an interim owner already holds. The rest stay unavailable.
                break;
            }
            let mut groups: HashMap<u64, Vec<Pending>> = HashMap::new();
            for p in pending.drain(..) {
                let owner = p.to.unwrap_or_else(|| self.owner_of(&p.item.key, &members));
                groups.entry(owner).or_default().push(p);
            }
            let mut outcomes = Vec::with_capacity(groups.len());
            if groups.len() == 1 {
                // One owner (every single-item check): run inline, no task to spawn.
                for (owner, group) in groups {
                    outcomes.push(self.check_group(owner, ctx, group).await);
                }
            } else {
                let mut tasks = tokio::task::JoinSet::new();
                for (owner, group) in groups {
                    let this = self.clone();
                    let ctx = ctx.clone();
                    tasks.spawn(async move { this.check_group(owner, &ctx, group).await });
                }
                while let Some(done) = tasks.join_next().await {
                    if let Ok(o) = done {
                        outcomes.push(o);
                    }
                }
            }
            for (owner, group, outcome) in outcomes {
                match outcome {
                    Ok(outs) => {
                        for (mut p, o) in group.into_iter().zip(outs) {
                            match o {
                                Err(BucketError::Moved(to)) if to != owner => {
                                    let bounce = p.from == Some(to);
                                    if bounce && p.bounces < MAX_BOUNCES {
                                        p.bounces += 1;
                                        bounced = true;
                                    } else if !bounce && p.hops + 1 < MAX_HOPS {
                                        p.hops += 1;
                                    } else {
                                        tracing::info!(key = %p.item.key, owner, to, hops = p.hops, bounces = p.bounces, "check moved too often; answered unavailable");
                                        results[p.pos] = Err(BucketError::Unavailable);
                                        continue;
                                    }
                                    p.to = Some(to);
                                    p.from = Some(owner);
                                    pending.push(p);
                                }
                                Err(BucketError::Moved(_)) => {
                                    results[p.pos] = Err(BucketError::Unavailable);
                                }
                                o => results[p.pos] = o,
                            }
                        }
                    }
                    Err(e) if !retried => {
                        tracing::info!(owner, error = %e, items = group.len(), "routed check failed; retrying once");
                        failed = true;
                        pending.extend(group.into_iter().filter(|p| p.hops + 1 < MAX_HOPS).map(
                            |mut p| {
                                p.hops += 1;
                                p.to = None;
                                p.from = None;
                                p
                            },
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(owner, error = %e, items = group.len(), "routed check failed twice");
                    }
                }
            }
            retried |= failed;
        }
        results
    }

    /// Checks one owner's share of a batch, locally or at the owner; hands the items back
    /// so a failed group can be retried.
    async fn check_group(
        &self,
        owner: u64,
        ctx: &CheckContext,
        group: Vec<Pending>,
    ) -> GroupOutcome {
        let items: Vec<CheckItem> = group.iter().map(|p| p.item.clone()).collect();
        let outcome = if owner == self.node_id {
            Ok(self.buckets.check(items).await)
        } else {
            self.remote(owner, ctx, items).await
        };
        (owner, group, outcome)
    }

    /// Acquires concurrency lease `lease_id` under `key` at the key's owner: `Ok(Some)`
    /// when granted, `Ok(None)` with the owner's answer when `limit` leases are live.
    ///
    /// A failed call is retried once after recomputing the owner. When the first call was
    /// applied but its answer lost, a retry at the same owner renews the same lease id
    /// (no second slot); at another owner the first lease expires after `ttl`.
    pub async fn acquire_lease(
        &self,
        ctx: &CheckContext,
        key: &str,
        lease_id: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<Result<LeaseGrant, LeaseOutcome>, BucketError> {
        let op = LeaseOp::Acquire {
            limit,
            ttl_ms: ttl.as_millis() as u64,
        };
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let members = self.members();
            if members.is_empty() && !self.view.serves_alone_when_empty() {
                return Err(BucketError::Unavailable);
            }
            let owner = self.owner_of(key, &members);
            match self.lease_at(owner, ctx, key, lease_id, op).await {
                Ok(LeaseOutcome::Granted { .. }) => {
                    return Ok(Ok(LeaseGrant {
                        key: key.to_string(),
                        lease_id: lease_id.to_string(),
                        owner,
                    }))
                }
                Ok(other) => return Ok(Err(other)),
                Err(e) => tracing::info!(owner, error = %e, attempt, "lease acquire failed"),
            }
        }
        Err(BucketError::Unavailable)
    }

    /// Releases a lease at the node that granted it and, when the key has moved since
    /// (the lease was handed over with it), at its owner now. Best effort: a node that
    /// cannot be reached lets the lease expire after its TTL.
    pub async fn release_lease(&self, ctx: &CheckContext, grant: &LeaseGrant) {
        let now_owner = self.owner_of(&grant.key, &self.members());
        if now_owner != grant.owner {
            if let Err(e) = self
                .lease_at(
                    now_owner,
                    ctx,
                    &grant.key,
                    &grant.lease_id,
                    LeaseOp::Release,
                )
                .await
            {
                tracing::info!(owner = now_owner, error = %e, "lease release at the new owner failed; it expires after its TTL");
            }
        }
        if let Err(e) = self
            .lease_at(
                grant.owner,
                ctx,
                &grant.key,
                &grant.lease_id,
                LeaseOp::Release,
            )
            .await
        {
            tracing::info!(owner = grant.owner, error = %e, "lease release failed; it expires after its TTL");
        }
    }

    /// One lease operation at `owner` (this node: directly), with a timeout.
    async fn lease_at(
        &self,
        owner: u64,
        ctx: &CheckContext,
        key: &str,
        lease_id: &str,
        op: LeaseOp,
    ) -> Result<LeaseOutcome, RemoteError> {
        if owner == self.node_id {
            return Ok(self.buckets.leases().apply(key, lease_id, op));
        }
        let cell = self
            .view
            .router_of(owner)
            .ok_or(RemoteError::NoRoute(owner))?;
        let router: ActorRef<RouterMsg> = cell.into();
        let req = LeaseRequest {
            request_id: ctx.request_id.clone(),
            tenant_id: ctx.tenant_id.clone(),
            from_node: self.node_id,
            key: key.to_string(),
            lease_id: lease_id.to_string(),
            op,
        };
        let answer = router
            .call(
                |port| RouterMsg::Lease(Wire(Ok(req)), port),
                Some(self.config.remote_timeout),
            )
            .await;
        match answer {
            Ok(CallResult::Success(Wire(Ok(reply)))) => Ok(reply.outcome),
            Ok(CallResult::Success(Wire(Err(reason)))) => Err(RemoteError::Peer(owner, reason)),
            Ok(CallResult::Timeout) | Ok(CallResult::SenderError) | Err(_) => {
                Err(RemoteError::Timeout(owner))
            }
        }
    }

    /// One batch to one remote owner, with a timeout.
    async fn remote(
        &self,
        owner: u64,
        ctx: &CheckContext,
        items: Vec<CheckItem>,
    ) -> Result<Vec<Outcome>, RemoteError> {
        let cell = self
            .view
            .router_of(owner)
            .ok_or(RemoteError::NoRoute(owner))?;
        let router: ActorRef<RouterMsg> = cell.into();
        let n = items.len();
        let batch = CheckBatch {
            request_id: ctx.request_id.clone(),
            tenant_id: ctx.tenant_id.clone(),
            from_node: self.node_id,
            items: items.into_iter().map(WireItem::from).collect(),
        };
        let answer = router
            .call(
                |port| RouterMsg::CheckBuckets(Wire(Ok(batch)), port),
                Some(self.config.remote_timeout),
            )
            .await;
        match answer {
            Ok(CallResult::Success(Wire(Ok(reply)))) => {
                if reply.results.len() != n {
                    return Err(RemoteError::Mismatch(owner, reply.results.len(), n));
                }
                Ok(reply.results.into_iter().map(Outcome::from).collect())
            }
            Ok(CallResult::Success(Wire(Err(reason)))) => Err(RemoteError::Peer(owner, reason)),
            // A timeout surfaces as Timeout or as a closed channel (the peer's reply task
            // races ours), and a lost session as a closed channel: all are "no answer".
            Ok(CallResult::Timeout) | Ok(CallResult::SenderError) | Err(_) => {
                Err(RemoteError::Timeout(owner))
            }
        }
    }
}
