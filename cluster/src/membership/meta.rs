//! Node metadata and its dissemination as a versioned foca custom broadcast.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use serde::{Deserialize, Serialize};

use super::identity::NodeIdentity;

/// Dynamic state of a node, gossiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Started, not yet serving (e.g. catching up with Raft).
    Joining,
    /// Serving normally.
    Active,
    /// Handing off work before leaving; peers should stop sending it new work.
    Draining,
}

/// What a node tells the cluster about itself.
///
/// Encoded as a MessagePack map with named fields, so a field added later must be optional
/// (`#[serde(default)]`) for old and new binaries to understand each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// Colony node id; must equal [`super::MembershipConfig::node_id`].
    pub node_id: u64,
    /// Address of the node's HTTP API.
    pub http_addr: String,
    /// Address of the node's Raft endpoint.
    pub raft_addr: String,
    /// Binary version (feature gates turn on only when every member has it).
    pub version: String,
    /// Current lifecycle state.
    pub state: NodeState,
    /// Address of the node's actor transport (ractor_cluster), where peers send routed
    /// rate-limit checks. Empty from binaries that predate it (they cannot be routed to).
    #[serde(default)]
    pub cluster_addr: String,
    /// Cross-node features this binary speaks (see [`crate::features`]); a feature is used
    /// cluster-wide only when every live member lists it. Empty from older binaries.
    #[serde(default)]
    pub features: Vec<String>,
}

/// First byte of every metadata broadcast. Bump only for an incompatible change; adding an
/// optional field does not need it.
const META_FORMAT_V1: u8 = 1;

/// Largest encoded metadata we accept to send. foca piggybacks broadcasts in the space a
/// 1400-byte packet has left after the header and membership updates; a few hundred bytes
/// keep several members' metadata in flight at once.
pub(crate) const MAX_META_BYTES: usize = 512;

/// The broadcast body: one version of one node's metadata.
///
/// The version is `(boot, seq)`: `boot` is the sender's identity boot stamp when it sent
/// this, `seq` a counter within that boot. A restarted process starts `seq` over but has a
/// newer boot, so its metadata still supersedes what its previous life announced.
#[derive(Debug, Serialize, Deserialize)]
struct MetaAnnouncement {
    boot: u64,
    seq: u64,
    meta: NodeMeta,
}

/// Encodes our own metadata for [`foca::Foca::add_broadcast`].
pub(crate) fn encode_announcement(
    boot: u64,
    seq: u64,
    meta: &NodeMeta,
) -> Result<Vec<u8>, MetaError> {
    let body = MetaAnnouncement {
        boot,
        seq,
        meta: meta.clone(),
    };
    let mut out = vec![META_FORMAT_V1];
    rmp_serde::encode::write_named(&mut out, &body)
        .map_err(|e| MetaError::Encode(e.to_string()))?;
    if out.len() > MAX_META_BYTES {
        return Err(MetaError::TooLarge(out.len()));
    }
    Ok(out)
}

fn decode_announcement(data: &[u8]) -> Result<MetaAnnouncement, MetaError> {
    match data.split_first() {
        Some((&META_FORMAT_V1, body)) => {
            rmp_serde::from_slice(body).map_err(|e| MetaError::Decode(e.to_string()))
        }
        Some((other, _)) => Err(MetaError::UnknownFormat(*other)),
        None => Err(MetaError::Decode("empty broadcast".to_owned())),
    }
}

/// Metadata could not be encoded or a received broadcast could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MetaError {
    #[error("cannot encode node metadata: {0}")]
    Encode(String),
    #[error("encoded node metadata is {0} bytes, more than the {MAX_META_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("cannot decode node metadata broadcast: {0}")]
    Decode(String),
    #[error("unknown node metadata format {0}")]
    UnknownFormat(u8),
}

/// What identifies one metadata broadcast in foca's dissemination backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaKey {
    node_id: u64,
    boot: u64,
    seq: u64,
}

impl foca::Invalidates for MetaKey {
    // A newer version of the same node's metadata makes an older one not worth sending.
    fn invalidates(&self, other: &Self) -> bool {
        self.node_id == other.node_id && (self.boot, self.seq) > (other.boot, other.seq)
    }
}

/// The newest metadata we know for one node.
#[derive(Debug, Clone)]
pub(crate) struct MetaRecord {
    pub(crate) boot: u64,
    pub(crate) seq: u64,
    pub(crate) meta: NodeMeta,
    /// When this version arrived; lets housekeeping forget nodes gone for a long time.
    pub(crate) received_at: Instant,
}

/// Highest-version metadata per node id, shared between foca's broadcast handler (which
/// foca owns and gives no access to) and the agent loop that builds the member view.
pub(crate) type MetaBook = Arc<Mutex<HashMap<u64, MetaRecord>>>;

/// Locks the book; a panic elsewhere while holding the lock leaves plain data behind, so
/// poisoning is ignored rather than propagated.
pub(crate) fn lock_book(book: &MetaBook) -> std::sync::MutexGuard<'_, HashMap<u64, MetaRecord>> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

/// When set, foca may attach custom broadcasts only to messages for this gossip address.
///
/// Used with [`foca::Foca::broadcast`], which picks recipients among the members this
/// filter admits: setting it to a newcomer for the duration of that call sends our pending
/// metadata straight to the newcomer instead of to random members. Without that, a node
/// joining after a metadata broadcast has used up its transmissions would wait for the
/// periodic refresh to learn it.
pub(crate) type BroadcastTarget = Arc<Mutex<Option<std::net::SocketAddr>>>;

/// foca's custom-broadcast hook for metadata: keeps the highest version per node and tells
/// foca to keep disseminating only versions that were new to us.
pub(crate) struct MetaHandler {
    book: MetaBook,
    target: BroadcastTarget,
}

impl MetaHandler {
    pub(crate) fn new(book: MetaBook, target: BroadcastTarget) -> Self {
        Self { book, target }
    }
}

impl foca::BroadcastHandler<NodeIdentity> for MetaHandler {
    type Key = MetaKey;
    type Error = MetaError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&NodeIdentity>,
    ) -> Result<Option<MetaKey>, MetaError> {
        let MetaAnnouncement { boot, seq, meta } = decode_announcement(data)?;
        let key = MetaKey {
            node_id: meta.node_id,
            boot,
            seq,
        };
        let mut book = lock_book(&self.book);
        if let Some(known) = book.get(&meta.node_id) {
            if (known.boot, known.seq) >= (boot, seq) {
                // Stale or already known: returning None stops foca re-sending it, which is
                // what makes the epidemic die out.
                return Ok(None);
            }
        }
        tracing::debug!(
            node_id = meta.node_id,
            boot,
            seq,
            state = ?meta.state,
            from = ?sender,
            "node metadata version learned"
        );
        book.insert(
            meta.node_id,
            MetaRecord {
                boot,
                seq,
                meta,
                received_at: Instant::now(),
            },
        );
        Ok(Some(key))
    }

    fn should_add_broadcast_data(&self, member: &NodeIdentity) -> bool {
        match *self.target.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(addr) => member.addr == addr,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::{BroadcastHandler, Invalidates};

    fn meta(state: NodeState) -> NodeMeta {
        NodeMeta {
            node_id: 3,
            http_addr: "127.0.0.1:8080".into(),
            raft_addr: "127.0.0.1:9090".into(),
            version: "0.1.0".into(),
            state,
            cluster_addr: "127.0.0.1:7947".into(),
            features: Vec::new(),
        }
    }

    #[test]
    fn keeps_only_newer_versions() {
        let book = MetaBook::default();
        let mut handler = MetaHandler::new(book.clone(), BroadcastTarget::default());
        let v1 = encode_announcement(10, 1, &meta(NodeState::Joining)).unwrap();
        let v2 = encode_announcement(10, 2, &meta(NodeState::Active)).unwrap();
        let restarted = encode_announcement(11, 0, &meta(NodeState::Joining)).unwrap();

        assert!(handler.receive_item(&v1, None).unwrap().is_some());
        assert!(handler.receive_item(&v2, None).unwrap().is_some());
        // Duplicate and stale versions are not new information.
        assert!(handler.receive_item(&v2, None).unwrap().is_none());
        assert!(handler.receive_item(&v1, None).unwrap().is_none());
        assert_eq!(lock_book(&book)[&3].meta.state, NodeState::Active);
        // A newer boot wins even though its seq restarted.
        assert!(handler.receive_item(&restarted, None).unwrap().is_some());
        assert_eq!(lock_book(&book)[&3].boot, 11);
    }

    #[test]
    fn metadata_from_peers_without_cluster_addr_still_decodes() {
        // What a binary from before the actor transport sends: no `cluster_addr` field.
        #[derive(Serialize)]
        struct OldMeta {
            node_id: u64,
            http_addr: String,
            raft_addr: String,
            version: String,
            state: NodeState,
        }
        let old = OldMeta {
            node_id: 3,
            http_addr: "127.0.0.1:8080".into(),
            raft_addr: "127.0.0.1:9090".into(),
            version: "0.1.0".into(),
            state: NodeState::Active,
        };
        let bytes = rmp_serde::to_vec_named(&old).unwrap();
        let decoded: NodeMeta = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(decoded.cluster_addr, "");
        assert_eq!(decoded.state, NodeState::Active);
    }

    #[test]
    fn rejects_garbage_and_unknown_formats() {
        let mut handler = MetaHandler::new(MetaBook::default(), BroadcastTarget::default());
        assert!(handler.receive_item(&[], None).is_err());
        assert!(handler.receive_item(&[9, 1, 2], None).is_err());
        assert!(handler.receive_item(&[META_FORMAT_V1, 0xc1], None).is_err());
    }

    #[test]
    fn newer_key_invalidates_older_of_same_node_only() {
        let old = MetaKey {
            node_id: 1,
            boot: 5,
            seq: 1,
        };
        let new = MetaKey { seq: 2, ..old };
        let other = MetaKey { node_id: 2, ..new };
        assert!(new.invalidates(&old));
        assert!(!old.invalidates(&new));
        assert!(!other.invalidates(&old));
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let mut big = meta(NodeState::Active);
        big.version = "x".repeat(MAX_META_BYTES);
        assert!(matches!(
            encode_announcement(1, 1, &big),
            Err(MetaError::TooLarge(_))
        ));
    }
}
