//! The internal listener's router: Raft RPCs, forwarded writes, read index.

use super::faults::Faults;
use super::request_auth::RequestAuth;
use super::wire::{
    self, paths, LeaderHint, ReadIndexReply, WriteReply, AUTH_HEADER, CONTENT_TYPE, TO_HEADER,
};
use crate::raft::quorum::{self, Guarded};
use crate::raft::{NodeId, NodeInfo, Raft, TypeConfig};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::Extensions;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use colony_core::command::Proposal;
use colony_tls::listener::PeerInfo;
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
        ext: &Extensions,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(NodeId, T), Rejection> {
        // The addressee first (not secret): a request for another node is a 421 the
        // caller may resend elsewhere, not an authentication failure.
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
        let env = wire::decode::<T>(body)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("undecodable body: {e}")))?;
        if self.faults.blocks_in(env.from) {
            // Looks like a dead peer to the caller (503 counts as unreachable).
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "blocked by fault injection".into(),
            ));
        }
        self.check_peer_certificate(ext, env.from)?;
        Ok((env.from, env.body))
    }

    /// With mutual TLS: the sender must be a Raft member (voter or learner: a node
    /// talks to this listener only once it has been added; until this node has been added
    /// itself, any node certificate) and present a certificate
    /// naming that member's address, so one node's certificate cannot speak for another.
    /// Without TLS the request's HMAC stands for the cluster secret instead.
    fn check_peer_certificate(&self, ext: &Extensions, from: NodeId) -> Result<(), Rejection> {
        if self.auth.is_some() {
            return Ok(());
        }
        let forbidden = |why: String| {
            tracing::warn!(from, %why, "refused an internal request");
            Err((StatusCode::FORBIDDEN, why))
        };
        let Some(cert) = ext
            .get::<ConnectInfo<PeerInfo>>()
            .and_then(|ConnectInfo(p)| p.cert.clone())
        else {
            return forbidden("no client certificate on a mutual TLS listener".into());
        };
        let (addr, joined) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            (
                membership.get_node(&from).map(|n| n.raft_addr.clone()),
                membership.get_node(&self.self_id).is_some(),
            )
        };
        match addr {
            // A node being added knows no member yet: the leader's first appends (which
            // bring the membership) are taken on its node certificate.
            None if !joined => Ok(()),
            None => forbidden(format!("node {from} is not a member of this cluster")),
            Some(addr) if !colony_tls::certs::names_address(&cert, &addr) => forbidden(format!(
                "the certificate presented does not name node {from}'s address {addr}"
            )),
            Some(_) => Ok(()),
        }
    }

    /// The Raft message must be from the node that sent it: the leader in an append or
    /// snapshot, the candidate in a vote (so a member cannot speak in another's name).
    fn check_sender(&self, from: NodeId, claimed: Option<NodeId>) -> Result<(), Rejection> {
        match claimed {
            Some(id) if id != from => Err((
                StatusCode::FORBIDDEN,
                format!("the message speaks for node {id}, but node {from} sent it"),
            )),
            _ => Ok(()),
        }
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

async fn append(
    State(s): State<InternalState>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match s.open::<AppendEntriesRequest<TypeConfig>>(paths::APPEND, &ext, &headers, &body) {
        Ok((from, req)) => match s.check_sender(from, req.vote.leader_id().voted_for()) {
            Ok(()) => s.reply(&s.raft.append_entries(req).await),
            Err(r) => r.into_response(),
        },
        Err(r) => r.into_response(),
    }
}

async fn vote(
    State(s): State<InternalState>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match s.open::<VoteRequest<NodeId>>(paths::VOTE, &ext, &headers, &body) {
        Ok((from, req)) => match s.check_sender(from, req.vote.leader_id().voted_for()) {
            Ok(()) => s.reply(&s.raft.vote(req).await),
            Err(r) => r.into_response(),
        },
        Err(r) => r.into_response(),
    }
}

async fn snapshot(
    State(s): State<InternalState>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match s.open::<InstallSnapshotRequest<TypeConfig>>(paths::SNAPSHOT, &ext, &headers, &body) {
        Ok((from, req)) => match s.check_sender(from, req.vote.leader_id().voted_for()) {
            Ok(()) => s.reply(&s.raft.install_snapshot(req).await),
            Err(r) => r.into_response(),
        },
        Err(r) => r.into_response(),
    }
}

fn hint(id: Option<NodeId>, node: Option<NodeInfo>) -> Option<LeaderHint> {
    id.map(|id| LeaderHint { id, node })
}

async fn write(
    State(s): State<InternalState>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (from, proposal) = match s.open::<Proposal>(paths::WRITE, &ext, &headers, &body) {
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

async fn read_index(
    State(s): State<InternalState>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = s.open::<()>(paths::READ_INDEX, &ext, &headers, &body) {
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
