//! The Router: the one actor per node that peers can reach over the actor transport. It
//! answers the messages of [`crate::wire`]: routed checks and leases, pulls, handoffs and
//! replicas, each against this node's [`Buckets`].

use crate::buckets::Buckets;
use crate::types::{CheckItem, PullAnswer};
use crate::wire::{CheckReply, HandoffAck, LeaseReply, PullReply, RouterMsg, Wire, WireOutcome};
use colony_core::clock::now_ms;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Process-group scope the Router joins; ractor_cluster mirrors it on every peer.
pub const ROUTER_SCOPE: &str = "colony";

/// Process-group name of the Router within [`ROUTER_SCOPE`].
pub const ROUTER_GROUP: &str = "router";

/// Most routed batches a Router works on at once; beyond it, batches are answered
/// `Overloaded` at once. Frames arrive through unbounded mailboxes, so this is the only
/// back-pressure across the link.
pub const MAX_ROUTED_IN_FLIGHT: usize = 4096;

/// Startup arguments of the Router.
#[derive(Debug, Clone)]
pub struct RouterArgs {
    /// The local bucket runtime that answers routed checks.
    pub buckets: Buckets,
    /// This node's id (for logs).
    pub node_id: u64,
}

/// Router state.
#[derive(Debug)]
pub struct RouterState {
    buckets: Buckets,
    node_id: u64,
    in_flight: Arc<Semaphore>,
}

/// The Router actor. Spawn one per node with [`Router::start`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Router;

impl Router {
    /// Spawns the Router and joins it to its process group, which advertises it to peers.
    pub async fn start(args: RouterArgs) -> Result<ActorRef<RouterMsg>, ActorProcessingErr> {
        let (router, _) = Actor::spawn(None, Router, args).await?;
        Ok(router)
    }
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMsg>,
        args: RouterArgs,
    ) -> Result<RouterState, ActorProcessingErr> {
        ractor::pg::join_scoped(
            ROUTER_SCOPE.to_string(),
            ROUTER_GROUP.to_string(),
            vec![myself.get_cell()],
        );
        Ok(RouterState {
            buckets: args.buckets,
            node_id: args.node_id,
            in_flight: Arc::new(Semaphore::new(MAX_ROUTED_IN_FLIGHT)),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        st: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(h) = st.buckets.handoff() {
            h.counters()
                .routed_in
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match msg {
            RouterMsg::Replicate(Wire(batch)) => match batch {
                Ok(b) => st
                    .buckets
                    .store_replicas(b.buckets.into_iter().map(|w| (w.key, w.state)).collect()),
                Err(reason) => tracing::warn!(%reason, "replicas could not be decoded"),
            },
            RouterMsg::Handoff(Wire(batch), reply) => {
                let buckets = st.buckets.clone();
                tokio::spawn(async move {
                    let answer = match batch {
                        Ok(b) => {
                            if !b.leases.is_empty() {
                                let now = now_ms();
                                buckets.leases().with(|t| t.merge(now, b.leases));
                            }
                            let n = b.buckets.len();
                            let installed = buckets
                                .install(b.buckets.into_iter().map(|w| (w.key, w.state)).collect())
                                .await;
                            if let Some(h) = buckets.handoff() {
                                h.counters().installed.fetch_add(
                                    installed as u64,
                                    std::sync::atomic::Ordering::Relaxed,
                                );
                            }
                            tracing::info!(
                                from = b.from_node,
                                buckets = n,
                                installed,
                                "buckets handed over to this node"
                            );
                            Ok(HandoffAck {
                                installed: installed as u64,
                            })
                        }
                        Err(reason) => Err(reason),
                    };
                    let _ = reply.send(Wire(answer));
                });
            }
            RouterMsg::Pull(Wire(req), reply) => {
                let buckets = st.buckets.clone();
                tokio::spawn(async move {
                    let answer = match req {
                        Ok(r) => {
                            let mut answers = Vec::with_capacity(r.keys.len());
                            for key in r.keys {
                                answers.push(
                                    buckets
                                        .release(key, r.from_node)
                                        .await
                                        .unwrap_or(PullAnswer::Busy),
                                );
                            }
                            Ok(PullReply { answers })
                        }
                        Err(reason) => Err(reason),
                    };
                    let _ = reply.send(Wire(answer));
                });
            }
            RouterMsg::Lease(Wire(req), reply) => {
                let answer = match req {
                    Ok(r) => {
                        let outcome = st.buckets.leases().apply(&r.key, &r.lease_id, r.op);
                        tracing::debug!(
                            request_id = %r.request_id,
                            tenant = %r.tenant_id,
                            from = r.from_node,
                            ?outcome,
                            "routed lease answered"
                        );
                        Ok(LeaseReply { outcome })
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "routed lease could not be decoded");
                        Err(reason)
                    }
                };
                // A mutex step: answered inline, no need to spawn.
                let _ = reply.send(Wire(answer));
            }
            RouterMsg::CheckBuckets(Wire(batch), reply) => {
                let batch = match batch {
                    Ok(b) => b,
                    Err(reason) => {
                        // A peer speaking another payload shape: say so rather than letting
                        // the caller wait for its timeout.
                        tracing::warn!(%reason, "routed check could not be decoded");
                        let _ = reply.send(Wire(Err(reason)));
                        return Ok(());
                    }
                };
                let Ok(permit) = st.in_flight.clone().try_acquire_owned() else {
                    let results = vec![WireOutcome::Overloaded; batch.items.len()];
                    let _ = reply.send(Wire(Ok(CheckReply { results })));
                    return Ok(());
                };
                let span = tracing::info_span!(
                    "routed_check",
                    request_id = %batch.request_id,
                    tenant = %batch.tenant_id,
                    from = batch.from_node,
                    node = st.node_id,
                    items = batch.items.len(),
                );
                let buckets = st.buckets.clone();
                // The work runs outside the Router's handler so one slow batch never holds
                // up the batches queued behind it; the reply port travels with it.
                tokio::spawn(
                    async move {
                        let items = batch.items.into_iter().map(CheckItem::from).collect();
                        let results = buckets
                            .check(items)
                            .await
                            .into_iter()
                            .map(WireOutcome::from)
                            .collect();
                        tracing::debug!("routed check answered");
                        let _ = reply.send(Wire(Ok(CheckReply { results })));
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
        Ok(())
    }
}
