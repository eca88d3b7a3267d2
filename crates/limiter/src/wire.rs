//! The node-to-node protocol on the actor transport: the [`RouterMsg`] enum and the
//! versioned MessagePack payloads its variants carry.
//!
//! Every other actor message type is local-only (no `BytesConvertable`), so ractor_cluster
//! advertises exactly one actor per node to its peers: the [`crate::router::Router`]. Its
//! message enum is the wire protocol between nodes, so its variant set is frozen: a variant
//! travels by name, and a peer that does not know a name drops the message (the caller then
//! times out). Payloads change by adding `#[serde(default)]` fields inside [`Wire`], never by
//! changing a variant's shape.
//!
//! The frozen set (all added before the first release): `CheckBuckets` (bucket checks),
//! `Lease` (concurrency leases), and the bucket movement of [`crate::handoff`]: `Pull` (a
//! new owner asks for a bucket), `Handoff` (an old owner pushes buckets) and `Replicate`
//! (an owner sends changed buckets to their successor; no answer).

use crate::leases::{LeaseOp, LeaseOutcome};
use crate::types::{BucketError, CheckItem, PullAnswer};
use colony_core::versioned::{self, FormatError, Migrate, NoPrevious};
use colony_ratelimit::{Algorithm, BucketState, Decision, Limit, LimitError};
use ractor::{BytesConvertable, RpcReplyPort};
use ractor_cluster_derive::RactorClusterMessage;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version of the [`Wire`] envelope. Bump only for a change old peers cannot read; adding
/// a `#[serde(default)]` field does not need it. The envelope is a [`Migrate`] format of
/// [`colony_core::versioned`]: a newer version is refused.
pub const WIRE_VERSION: u16 = 1;

/// A payload on the actor transport: MessagePack with named fields inside a versioned
/// envelope.
///
/// ractor's `BytesConvertable::from_bytes` cannot fail, so a decode error is carried as
/// `Err(reason)` to the handler, which answers it explicitly, instead of a panic (which
/// would drop the message and leave the caller waiting for its timeout).
#[derive(Debug)]
pub struct Wire<T>(pub Result<T, String>);

/// The envelope as encoded.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u16,
    body: T,
}

/// Version 1, the first: `v` and `body`.
impl<T: DeserializeOwned> Migrate for Envelope<T> {
    const VERSION: u16 = WIRE_VERSION;
    type Previous = NoPrevious;

    fn migrate(previous: NoPrevious) -> Self {
        match previous {}
    }

    fn version(&self) -> u16 {
        self.v
    }
}

impl<T: Serialize + DeserializeOwned> BytesConvertable for Wire<T> {
    fn into_bytes(self) -> Vec<u8> {
        match self.0 {
            // An encode failure (never expected for these plain structs) becomes an empty
            // payload, which the receiver decodes to `Err`.
            Ok(body) => versioned::encode(&Envelope {
                v: WIRE_VERSION,
                body,
            })
            .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        match versioned::decode::<Envelope<T>>(&bytes) {
            Ok(env) => Wire(Ok(env.body)),
            Err(FormatError::TooNew { found, .. }) => {
                Wire(Err(format!("unsupported wire version {found}")))
            }
            Err(FormatError::Malformed(e)) => Wire(Err(format!("undecodable payload: {e}"))),
        }
    }
}

/// One bucket check as it travels to the bucket's owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireItem {
    /// Full bucket key (already scoped to the tenant).
    pub key: String,
    /// Algorithm of the bucket.
    pub algorithm: Algorithm,
    /// Its limit.
    pub limit: Limit,
    /// Hits to take (0 peeks).
    pub hits: u64,
}

impl From<CheckItem> for WireItem {
    fn from(it: CheckItem) -> Self {
        Self {
            key: it.key,
            algorithm: it.algorithm,
            limit: it.limit,
            hits: it.hits,
        }
    }
}

impl From<WireItem> for CheckItem {
    fn from(it: WireItem) -> Self {
        Self {
            key: it.key,
            algorithm: it.algorithm,
            limit: it.limit,
            hits: it.hits,
        }
    }
}

/// A batch of checks for buckets the receiving node owns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckBatch {
    /// Request id of the HTTP request the items came from (for the owner's logs).
    pub request_id: String,
    /// Tenant the buckets belong to (for the owner's logs; the keys are already scoped).
    pub tenant_id: String,
    /// Colony node id of the sender.
    pub from_node: u64,
    /// The checks, answered in this order.
    pub items: Vec<WireItem>,
}

/// What happened to one item, as the owner reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireOutcome {
    /// Checked.
    Decision(Decision),
    /// The limit is invalid for the algorithm.
    Invalid(LimitError),
    /// The owner's shard is overloaded.
    Overloaded,
    /// The owner's shard did not answer in time.
    Unavailable,
    /// The bucket is owned by this other node now: send the item there.
    Moved(u64),
    /// The check would create a new bucket for a tenant that has the most live buckets on
    /// the owner already. Added after the first release: a peer that does not know it
    /// cannot decode the reply, and answers the items unavailable.
    TooManyBuckets {
        /// The tenant.
        tenant: String,
        /// Its live buckets on the owner.
        live: u64,
        /// The owner's `ratelimit.max_buckets_per_tenant`.
        max: u64,
    },
}

impl From<Result<Decision, BucketError>> for WireOutcome {
    fn from(r: Result<Decision, BucketError>) -> Self {
        match r {
            Ok(d) => Self::Decision(d),
            Err(BucketError::Limit(e)) => Self::Invalid(e),
            Err(BucketError::Overloaded) => Self::Overloaded,
            Err(BucketError::Unavailable) => Self::Unavailable,
            Err(BucketError::Moved(n)) => Self::Moved(n),
            Err(BucketError::TooManyBuckets { tenant, live, max }) => {
                Self::TooManyBuckets { tenant, live, max }
            }
        }
    }
}

impl From<WireOutcome> for Result<Decision, BucketError> {
    fn from(o: WireOutcome) -> Self {
        match o {
            WireOutcome::Decision(d) => Ok(d),
            WireOutcome::Invalid(e) => Err(BucketError::Limit(e)),
            WireOutcome::Overloaded => Err(BucketError::Overloaded),
            WireOutcome::Unavailable => Err(BucketError::Unavailable),
            WireOutcome::Moved(n) => Err(BucketError::Moved(n)),
            WireOutcome::TooManyBuckets { tenant, live, max } => {
                Err(BucketError::TooManyBuckets { tenant, live, max })
            }
        }
    }
}

/// The owner's answer to a [`CheckBatch`]: one outcome per item, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReply {
    /// Outcomes, in the order of the batch's items.
    pub results: Vec<WireOutcome>,
}

/// A lease operation for a key the receiving node owns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Request id of the HTTP request (for the owner's logs).
    pub request_id: String,
    /// Tenant of the lease (for the owner's logs; the key is already scoped).
    pub tenant_id: String,
    /// Colony node id of the sender.
    pub from_node: u64,
    /// Lease key (one per tenant).
    pub key: String,
    /// Id of the lease, unique per request.
    pub lease_id: String,
    /// Acquire or release.
    pub op: LeaseOp,
}

/// The owner's answer to a [`LeaseRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseReply {
    /// What happened.
    pub outcome: LeaseOutcome,
}

/// One bucket's state on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireBucket {
    /// Full bucket key.
    pub key: String,
    /// Its state.
    pub state: BucketState,
}

/// Buckets sent to another node: handed over (`Handoff`) or as replicas (`Replicate`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketBatch {
    /// Colony node id of the sender.
    pub from_node: u64,
    /// The buckets.
    pub buckets: Vec<WireBucket>,
    /// Concurrency leases handed over with a handoff (never with replicas): key, lease id,
    /// milliseconds left. Added after the first payloads: absent means none.
    #[serde(default)]
    pub leases: Vec<(String, String, u64)>,
}

/// The receiver's answer to a `Handoff`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandoffAck {
    /// Buckets installed (the others were live here already).
    pub installed: u64,
}

/// A new owner asks for buckets' live state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullRequest {
    /// Colony node id of the new owner.
    pub from_node: u64,
    /// The bucket keys.
    pub keys: Vec<String>,
}

/// The holder's answers to a [`PullRequest`], in the order of its keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullReply {
    /// One answer per key.
    pub answers: Vec<PullAnswer>,
}

/// Messages of the Router: the node-to-node protocol. Frozen variant set (see the module
/// docs).
#[derive(RactorClusterMessage)]
pub enum RouterMsg {
    /// Check buckets this node owns.
    #[rpc]
    CheckBuckets(Wire<CheckBatch>, RpcReplyPort<Wire<CheckReply>>),
    /// Acquire or release a concurrency lease this node owns.
    #[rpc]
    Lease(Wire<LeaseRequest>, RpcReplyPort<Wire<LeaseReply>>),
    /// Release buckets to the asking new owner.
    #[rpc]
    Pull(Wire<PullRequest>, RpcReplyPort<Wire<PullReply>>),
    /// Take over buckets from their old owner.
    #[rpc]
    Handoff(Wire<BucketBatch>, RpcReplyPort<Wire<HandoffAck>>),
    /// Keep replicas of buckets whose successor this node is.
    Replicate(Wire<BucketBatch>),
}

impl std::fmt::Debug for RouterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouterMsg::CheckBuckets(..) => f.write_str("CheckBuckets"),
            RouterMsg::Lease(..) => f.write_str("Lease"),
            RouterMsg::Pull(..) => f.write_str("Pull"),
            RouterMsg::Handoff(..) => f.write_str("Handoff"),
            RouterMsg::Replicate(..) => f.write_str("Replicate"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trips_and_never_panics_on_garbage() {
        let batch = CheckBatch {
            request_id: "r1".into(),
            tenant_id: "t".into(),
            from_node: 7,
            items: vec![WireItem {
                key: "k".into(),
                algorithm: Algorithm::TokenBucket,
                limit: Limit {
                    limit: 10,
                    duration_ms: 1000,
                    burst: None,
                },
                hits: 1,
            }],
        };
        let bytes = Wire(Ok(batch)).into_bytes();
        let back = Wire::<CheckBatch>::from_bytes(bytes).0;
        let back = back.as_ref().map(|b| (b.from_node, b.items.len()));
        assert_eq!(back, Ok((7, 1)));
        assert!(Wire::<CheckBatch>::from_bytes(vec![0xc1, 0xff]).0.is_err());
        assert!(Wire::<CheckBatch>::from_bytes(Vec::new()).0.is_err());
        // Another payload type under the same variant is an error, not a panic.
        let other = Wire(Ok(CheckReply { results: vec![] })).into_bytes();
        assert!(Wire::<CheckBatch>::from_bytes(other).0.is_err());
    }

    #[test]
    fn a_refused_new_bucket_travels_back_to_the_caller() {
        let refused = BucketError::TooManyBuckets {
            tenant: "acme".into(),
            live: 3,
            max: 3,
        };
        let reply = CheckReply {
            results: vec![WireOutcome::from(Err(refused.clone()))],
        };
        let back = Wire::<CheckReply>::from_bytes(Wire(Ok(reply)).into_bytes()).0;
        let outcome: Result<Result<Decision, BucketError>, String> =
            back.map(|mut r| r.results.remove(0).into());
        assert_eq!(outcome, Ok(Err(refused)));
    }

    #[test]
    fn a_newer_envelope_version_is_reported() {
        let bytes = rmp_serde::to_vec_named(&Envelope {
            v: WIRE_VERSION + 1,
            body: CheckReply { results: vec![] },
        })
        .unwrap_or_default();
        let got = Wire::<CheckReply>::from_bytes(bytes).0;
        assert!(got.is_err_and(|e| e.contains("version")));
    }
}
