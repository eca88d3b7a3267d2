//! The network between Raft peers.
//!
//! For now a cluster has one Raft node, so there is no transport: [`SingleNodeNetwork`]
//! answers every RPC with [`Unreachable`], which makes openraft back off instead of
//! retrying in a tight loop should it ever try to reach a peer.

use crate::raft::types::{NodeId, NodeInfo, TypeConfig};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

/// The Raft network of a single-node cluster: it has no peers to talk to, so every RPC
/// fails with [`Unreachable`]. The multi-node HTTP transport replaces it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleNodeNetwork;

/// A "connection" to a peer made by [`SingleNodeNetwork`]; every RPC on it fails with
/// [`Unreachable`].
#[derive(Debug, Clone, Copy)]
pub struct NoTransportClient {
    /// The peer openraft asked for, named in the error.
    target: NodeId,
}

impl NoTransportClient {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<NodeId, NodeInfo, E> {
        let err = std::io::Error::other(format!(
            "no transport to peer {}: multi-node Raft transport not configured",
            self.target
        ));
        RPCError::Unreachable(Unreachable::new(&err))
    }
}

impl RaftNetworkFactory<TypeConfig> for SingleNodeNetwork {
    type Network = NoTransportClient;

    async fn new_client(&mut self, target: NodeId, _node: &NodeInfo) -> Self::Network {
        NoTransportClient { target }
    }
}

impl RaftNetwork<TypeConfig> for NoTransportClient {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        Err(self.unreachable())
    }
}
