//! Joining: bootstrap a new cluster or join an existing one, initialise it, go active.

use crate::bootstrap::ensure_cluster_initialised;
use crate::config::Config;
use crate::error::RunError;
use anyhow::Context;
use colony_cluster::membership::{MemberStatus, Membership, NodeState};
use colony_cluster::RaftNode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Bootstraps or joins, initialises a new cluster, then marks this node active, unless
/// `stop` is cancelled first (a drain: a joiner may wait for a leader for ever).
///
/// Only the waiting is cut short: the initialisation, once begun, runs to its end (it is
/// one bounded Raft write), so a stop never leaves an admin-token file the cluster
/// rejects. A stopped node never goes active, so a drain that awaits this task can mark
/// the node draining without a late "active" undoing it.
pub async fn join_until_stopped(
    raft: RaftNode,
    membership: Membership,
    config: Config,
    env_token: Option<String>,
    stop: CancellationToken,
) -> Result<(), RunError> {
    tokio::select! {
        r = wait_for_cluster(&raft, &membership, &config) => r?,
        () = stop.cancelled() => return Ok(()),
    }
    ensure_cluster_initialised(&raft, &config.data_dir, env_token).await?;
    if stop.is_cancelled() {
        tracing::info!("the node stops before going active");
        return Ok(());
    }
    membership.set_state(NodeState::Active);
    tracing::info!("this node is an active member");
    Ok(())
}

/// How long a bootstrap-eligible node with seeds listens for an existing cluster first.
const BOOTSTRAP_PROBE: Duration = Duration::from_secs(3);

/// Bootstraps a new cluster or waits to be let into an existing one, until a Raft leader
/// is known and gossip lists it.
async fn wait_for_cluster(
    raft: &RaftNode,
    membership: &Membership,
    config: &Config,
) -> Result<(), RunError> {
    let initialized = raft.is_initialized().await.context("reading raft state")?;
    if !initialized {
        let no_seeds = config.cluster.seeds.is_empty();
        let mut bootstrap = no_seeds || config.cluster.bootstrap;
        if bootstrap && !no_seeds {
            // Guard against a second cluster when this node lost its data: if any seed is
            // already an active member of a cluster, join it instead.
            let deadline = tokio::time::Instant::now() + BOOTSTRAP_PROBE;
            while tokio::time::Instant::now() < deadline {
                let active = membership.members().iter().any(|m| {
                    !m.is_self
                        && m.meta
                            .as_ref()
                            .is_some_and(|x| x.state == NodeState::Active)
                });
                if active {
                    tracing::warn!("cluster.bootstrap is set but an existing cluster answered; joining it instead");
                    bootstrap = false;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if bootstrap {
            raft.bootstrap_if_new()
                .await
                .context("bootstrapping a new cluster")?;
            tracing::info!(
                node_id = raft.node_id(),
                "bootstrapped a new cluster with this node as its only voter"
            );
        } else {
            tracing::info!(seeds = ?config.cluster.seeds, "joining through the seeds; the leader adds this node");
        }
    }
    // Joiners wait as long as it takes (the leader adds them once gossip shows them).
    let leader = loop {
        match raft.wait_for_leader(Duration::from_secs(10)).await {
            Ok(l) => break l,
            Err(_) => tracing::info!("still waiting for a raft leader"),
        }
    };
    tracing::info!(node_id = raft.node_id(), leader, "raft is up");
    if leader != raft.node_id() {
        wait_for_gossip_peer(membership, leader).await;
    }
    Ok(())
}

/// How long a joining node waits for gossip to list the Raft leader before going active.
const GOSSIP_PEER_WAIT: Duration = Duration::from_secs(10);

/// Waits (up to [`GOSSIP_PEER_WAIT`]) until gossip lists `leader` alive. Raft can reach a
/// restarted node before gossip does; active with a view of itself alone, it would own
/// every bucket with nobody to ask for the state an interim owner holds.
async fn wait_for_gossip_peer(membership: &Membership, leader: u64) {
    let deadline = tokio::time::Instant::now() + GOSSIP_PEER_WAIT;
    while tokio::time::Instant::now() < deadline {
        let seen = membership
            .members()
            .iter()
            .any(|m| m.node_id == leader && m.status == MemberStatus::Alive);
        if seen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(
        leader,
        "gossip does not list the raft leader yet; going active anyway"
    );
}
