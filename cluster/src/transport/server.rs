//! The internal listener's router: Raft RPCs, forwarded writes, read index.

use super::faults::Faults;
use super::request_auth::RequestAuth;
use super::wire::{
    self, paths, LeaderHint, ReadIndexReply, WriteReply, AUTH_HEADER, CONTENT_TYPE, TO_HEADER,
};
use crate::raft::quorum::{self, Guarded};
use crate::raft::{NodeId, NodeInfo, Raft, TypeConfig};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use colony_core::command::Proposal;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A refused internal request: status and a short reason.
type Rejection = (StatusCode, String);

/// Largest internal body (snapshot chunks and log batches).
const MAX_BODY: usize = wire::MAX_BODY_BYTES;

/// How long a forwarded write may take on the leader before it answers `Unavailable`.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the internal handlers need.
#[derive(Clone)]
pub struct InternalState {
    /// The local Raft.
    pub raft: Raft,
    /// This node's id.
    pub self_id: NodeId,
    /// Checks each request's HMAC and refuses replays; `None` when the listener is mutual
    /// TLS and the peer's node certificate authenticated it.
    pub auth: Option<Arc<RequestAuth>>,
    /// Fault switches.
    pub faults: Faults,
    /// Set while this node gives up leadership (drain): writes and read-index requests
    /// are refused as "not leader" so the followers stop hearing from it and elect.
    pub stepping_down: Arc<AtomicBool>,
}

impl std::fmt::Debug for InternalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalState")
            .field("self_id", &self.self_id)
            .finish_non_exhaustive()
    }
}

/// The router of the internal listener.
pub fn router(state: InternalState) -> Router {
    Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(paths::WRITE, post(write))
        .route(paths::READ_INDEX, post(read_index))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

impl InternalState {
    /// Authenticates and decodes a request; an error is the status and text to answer.
    fn open<T: DeserializeOwned>(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(NodeId, T), Rejection> {
        if let Some(auth) = &self.auth {
            let presented = headers
                .get(AUTH_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            auth.verify(presented, path, &self.self_id.to_string(), body, now_ms)
                .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
        }
        // Absent from older nodes (a rolling upgrade): then the caller checks the reply's
        // sender instead.
        if let Some(to) = headers.get(TO_HEADER) {
            let to = to.to_str().ok().and_then(|t| t.parse::<NodeId>().ok());
            if to != Some(self.self_id) {
                return Err((
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "this is node {}, not the node the request is for",
                        self.self_id
                    ),
                ));
            }
        }
        let env = wire::decode::<T>(body)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("undecodable body: {e}")))?;
        if self.faults.blocks_in(env.from) {
            // Looks like a dead peer to the caller (503 counts as unreachable).
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "blocked by fault injection".into(),
            ));
        }
        Ok((env.from, env.body))
    }

    fn reply<T: Serialize>(&self, body: &T) -> Response {
        match wire::encode(self.self_id, body) {
            Ok(bytes) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], bytes).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an internal reply");
                (StatusCode::INTERNAL_SERVER_ERROR, "encode failed").into_response()
            }
        }
    }
}

async fn append(State(s): State<InternalState>, headers: HeaderMap, body: Bytes) -> Response {
    match s.open::<AppendEntriesRequest<TypeConfig>>(paths::APPEND, &headers, &body) {
        Ok((_, req)) => s.reply(&s.raft.append_entries(req).await),
        Err(r) => r.into_response(),
    }
}

async fn vote(State(s): State<InternalState>, headers: HeaderMap, body: Bytes) -> Response {
    match s.open::<VoteRequest<NodeId>>(paths::VOTE, &headers, &body) {
        Ok((_, req)) => s.reply(&s.raft.vote(req).await),
        Err(r) => r.into_response(),
    }
}

async fn snapshot(State(s): State<InternalState>, headers: HeaderMap, body: Bytes) -> Response {
    match s.open::<InstallSnapshotRequest<TypeConfig>>(paths::SNAPSHOT, &headers, &body) {
        Ok((_, req)) => s.reply(&s.raft.install_snapshot(req).await),
        Err(r) => r.into_response(),
    }
}

fn hint(id: Option<NodeId>, node: Option<NodeInfo>) -> Option<LeaderHint> {
    id.map(|id| LeaderHint { id, node })
}

async fn write(State(s): State<InternalState>, headers: HeaderMap, body: Bytes) -> Response {
    let (from, proposal) = match s.open::<Proposal>(paths::WRITE, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    tracing::debug!(from, request_id = %proposal.meta.request_id, "forwarded write");
    if s.stepping_down.load(Ordering::SeqCst) {
        return s.reply(&WriteReply::NotLeader(None));
    }
    let write = tokio::time::timeout(WRITE_TIMEOUT, s.raft.client_write(proposal));
    let committed = match quorum::guard(&s.raft, write).await {
        Guarded::Done(committed) => committed,
        // Not proposed: the forwarder waits for the leader the others elect meanwhile.
        Guarded::Refused(_) => return s.reply(&WriteReply::NotLeader(None)),
        Guarded::GaveUp(since) => {
            return s.reply(&WriteReply::Unavailable(quorum::explain_proposed(since)))
        }
    };
    let reply = match committed {
        Err(_) => WriteReply::Unavailable("the leader did not commit the write in time".into()),
        Ok(Ok(resp)) => WriteReply::Applied {
            result: resp.data,
            index: Some(resp.log_id.index),
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            WriteReply::NotLeader(hint(f.leader_id, f.leader_node))
        }
        Ok(Err(e)) => WriteReply::Unavailable(e.to_string()),
    };
    s.reply(&reply)
}

async fn read_index(State(s): State<InternalState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = s.open::<()>(paths::READ_INDEX, &headers, &body) {
        return r.into_response();
    }
    if s.stepping_down.load(Ordering::SeqCst) {
        return s.reply(&ReadIndexReply::NotLeader(None));
    }
    let confirm = tokio::time::timeout(WRITE_TIMEOUT, s.raft.ensure_linearizable());
    let confirmed = match quorum::guard(&s.raft, confirm).await {
        Guarded::Done(confirmed) => confirmed,
        // Reads have no side effects: the forwarder asks the next leader.
        Guarded::Refused(_) | Guarded::GaveUp(_) => {
            return s.reply(&ReadIndexReply::NotLeader(None))
        }
    };
    let reply = match confirmed {
        Err(_) => ReadIndexReply::Unavailable(
            "the leader could not confirm its leadership in time".into(),
        ),
        Ok(Ok(log_id)) => ReadIndexReply::Index(log_id.map(|l| l.index)),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
            ReadIndexReply::NotLeader(hint(f.leader_id, f.leader_node))
        }
        Ok(Err(e)) => ReadIndexReply::Unavailable(e.to_string()),
    };
    s.reply(&reply)
}
