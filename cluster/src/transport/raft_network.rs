//! The Raft network: RPCs to peers over the internal HTTP transport.
//!
//! A peer that cannot be reached (refused, timed out, blocked by fault injection, 503)
//! yields `Unreachable`, so openraft backs off instead of retrying in a storm.

use crate::raft::{NodeId, NodeInfo, TypeConfig};
use crate::transport::client::PeerClient;
use crate::transport::wire::paths;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Creates [`HttpPeer`]s for openraft.
#[derive(Debug, Clone)]
pub struct HttpNetwork {
    client: PeerClient,
}

impl HttpNetwork {
    /// A network using `client` for every RPC.
    pub fn new(client: PeerClient) -> Self {
        Self { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpPeer;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        HttpPeer {
            target,
            addr: node.raft_addr.clone(),
            client: self.client.clone(),
        }
    }
}

/// One peer's Raft endpoint.
#[derive(Debug, Clone)]
pub struct HttpPeer {
    target: NodeId,
    addr: String,
    client: PeerClient,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeInfo, E>>;

impl HttpPeer {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.addr.is_empty() {
            let e = std::io::Error::other(format!("node {} has no raft address", self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
        let reply: Result<Resp, E> = self
            .client
            .call(self.target, &self.addr, path, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                e if e.is_unreachable() => RPCError::Unreachable(Unreachable::new(&e)),
                e => RPCError::Network(NetworkError::new(&e)),
            })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for HttpPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.rpc(paths::APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.rpc(paths::SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.rpc(paths::VOTE, &rpc, &option).await
    }
}
