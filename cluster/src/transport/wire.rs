//! The internal wire format.
//!
//! Every body is `Envelope { v, from, body }` encoded with rmp-serde as a map with named
//! fields, so fields can be added (optional, with defaults) without breaking older peers.
//! The envelope is a [`Migrate`] format of [`colony_core::versioned`] whose newer versions
//! are read as this one ([`Newer::ReadAsCurrent`]): they may only add fields.

use crate::raft::{NodeId, NodeInfo};
use colony_core::command::CommandResult;
use colony_core::versioned::{self, FormatError, Migrate, Newer, NoPrevious};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The envelope version this binary writes.
pub const WIRE_VERSION: u16 = 1;

/// Media type of internal bodies.
pub const CONTENT_TYPE: &str = "application/msgpack";

/// Header carrying the proof that the caller knows the cluster secret.
pub const AUTH_HEADER: &str = "x-colony-cluster-auth";

/// The largest internal request or reply body, either way (snapshots travel in chunks).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Header naming the node a request is for. A node refuses a request meant for another
/// id: a wiped node restarted on a member's old address must not answer (vote, accept
/// entries) as that member.
pub const TO_HEADER: &str = "x-colony-to";

/// Paths of the internal listener.
pub mod paths {
    /// Raft AppendEntries.
    pub const APPEND: &str = "/raft/v1/append";
    /// Raft RequestVote.
    pub const VOTE: &str = "/raft/v1/vote";
    /// Raft InstallSnapshot (one chunk).
    pub const SNAPSHOT: &str = "/raft/v1/snapshot";
    /// A write forwarded to the leader.
    pub const WRITE: &str = "/internal/v1/write";
    /// The leader's read index, for linearizable reads on followers.
    pub const READ_INDEX: &str = "/internal/v1/read-index";
}

/// A versioned, sender-stamped body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Envelope version of the writer.
    pub v: u16,
    /// The sending node.
    pub from: NodeId,
    /// The payload.
    pub body: T,
}

/// Version 1, the first: `v`, `from` and `body`.
impl<T: DeserializeOwned> Migrate for Envelope<T> {
    const VERSION: u16 = WIRE_VERSION;
    const NEWER: Newer = Newer::ReadAsCurrent;
    type Previous = NoPrevious;

    fn migrate(previous: NoPrevious) -> Self {
        match previous {}
    }

    fn version(&self) -> u16 {
        self.v
    }
}

/// Why bytes could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Encoding failed.
    #[error("encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Decoding failed.
    #[error("decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// The envelope's version cannot be read by this binary. Not produced today: newer
    /// envelope versions are read as this one.
    #[error("{0}")]
    Version(FormatError),
}

/// Encodes `body` from `from` in the current envelope version.
pub fn encode<T: Serialize>(from: NodeId, body: &T) -> Result<Vec<u8>, WireError> {
    Ok(versioned::encode(&Envelope {
        v: WIRE_VERSION,
        from,
        body,
    })?)
}

/// Decodes an envelope of any version whose body this binary can read.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Envelope<T>, WireError> {
    versioned::decode(bytes).map_err(|e| match e {
        FormatError::Malformed(e) => WireError::Decode(e),
        e @ FormatError::TooNew { .. } => WireError::Version(e),
    })
}

/// Where the leader is, as far as the answering node knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderHint {
    /// Leader id.
    pub id: NodeId,
    /// Its addresses.
    pub node: Option<NodeInfo>,
}

/// Answer to a forwarded write.
#[allow(clippy::large_enum_variant)] // a short-lived message, never stored
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteReply {
    /// Committed and applied: the state machine's answer, and the log index of the write
    /// (so the forwarding node can wait to apply it: read-your-writes).
    Applied {
        /// The state machine's answer.
        result: CommandResult,
        /// Log index of the write.
        #[serde(default)]
        index: Option<u64>,
    },
    /// The receiver is not the leader.
    NotLeader(Option<LeaderHint>),
    /// The receiver could not commit (e.g. lost quorum).
    Unavailable(String),
}

/// Answer to a read-index request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadIndexReply {
    /// Everything up to this log index is committed; apply up to it, then read.
    Index(Option<u64>),
    /// The receiver is not the leader.
    NotLeader(Option<LeaderHint>),
    /// The leader could not confirm its leadership.
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use colony_core::command::CommandOutput;

    #[test]
    fn envelopes_round_trip_and_tolerate_unknown_fields() {
        let applied = WriteReply::Applied {
            result: Ok(CommandOutput::Deleted),
            index: Some(3),
        };
        let bytes = encode(7, &applied).unwrap();
        let env: Envelope<WriteReply> = decode(&bytes).unwrap();
        assert_eq!((env.v, env.from), (WIRE_VERSION, 7));
        assert_eq!(env.body, applied);

        // A newer peer adds a field to the envelope: older readers ignore it.
        #[derive(Serialize)]
        struct Newer<'a> {
            v: u16,
            from: u64,
            body: &'a WriteReply,
            trace: &'a str,
        }
        let newer = rmp_serde::to_vec_named(&Newer {
            v: 2,
            from: 1,
            body: &env.body,
            trace: "x",
        })
        .unwrap();
        let read: Envelope<WriteReply> = decode(&newer).unwrap();
        assert_eq!(read.v, 2);
    }
}
