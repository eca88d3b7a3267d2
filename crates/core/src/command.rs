//! The commands replicated through Raft, and what applying one returns.
//!
//! Stored logs must stay readable forever, so:
//! - every proposal carries `format` (the command format version, [`COMMAND_FORMAT`]),
//!   and [`Proposal`] is a [`Migrate`] format of [`crate::versioned`]: a future format
//!   names today's as its `Previous` and migrates it;
//! - variants of [`Command`] are never renamed or removed, only added;
//! - new fields are `Option` or `#[serde(default)]`;
//! - the encoding is rmp-serde with named fields ([`Proposal::encode`]).

use crate::apikey::ApiKey;
use crate::credential::StoredCredential;
use crate::evaluation::{CheckpointItem, EvaluationRecord};
use crate::pricing::Price;
use crate::tenant::{Tenant, TenantStatus, TierOverrides};
use crate::tier::Tier;
use crate::versioned::{self, FormatError, Migrate, NoPrevious};
use serde::{Deserialize, Serialize};

/// The command format this binary writes. Readers accept this and every older one.
pub const COMMAND_FORMAT: u16 = 1;

/// Who proposed a command, when and in which request. The proposer stamps the time so
/// every replica applies (and hashes) the same value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalMeta {
    /// Proposal time (ms since the Unix epoch).
    pub at_ms: u64,
    /// Who asked, e.g. `admin` or `node:12`.
    pub principal: String,
    /// The HTTP request id, for the audit log.
    pub request_id: String,
}

/// One replicated command with its metadata: the Raft log's application data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Command format version ([`COMMAND_FORMAT`] when written by this binary).
    pub format: u16,
    /// Who, when, which request.
    pub meta: ProposalMeta,
    /// What to do.
    pub command: Command,
}

impl Proposal {
    /// A proposal in the current format.
    pub fn new(meta: ProposalMeta, command: Command) -> Self {
        Self {
            format: COMMAND_FORMAT,
            meta,
            command,
        }
    }

    /// Encodes as an rmp-serde map with named fields.
    pub fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        versioned::encode(self)
    }

    /// Decodes a proposal of this or any older format.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        versioned::decode::<Self>(bytes).map_err(|e| match e {
            FormatError::Malformed(e) => DecodeError::Malformed(e),
            FormatError::TooNew { found, .. } => DecodeError::TooNew { format: found },
        })
    }
}

/// Format 1, the first: `format`, `meta` and `command` as today.
impl Migrate for Proposal {
    const VERSION: u16 = COMMAND_FORMAT;
    type Previous = NoPrevious;

    fn migrate(previous: NoPrevious) -> Self {
        match previous {}
    }

    fn version(&self) -> u16 {
        self.format
    }
}

/// Why stored bytes could not be read as a proposal.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not a proposal at all.
    #[error("malformed proposal: {0}")]
    Malformed(rmp_serde::decode::Error),
    /// Written by a newer binary.
    #[error("proposal format {format} is newer than this binary understands ({COMMAND_FORMAT})")]
    TooNew {
        /// The format found.
        format: u16,
    },
}

/// Changes to a tenant; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TenantPatch {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// New overrides (replaces all overrides).
    #[serde(default)]
    pub overrides: Option<TierOverrides>,
    /// New status.
    #[serde(default)]
    pub status: Option<TenantStatus>,
}

/// A state machine command. Never rename or remove a variant: stored logs name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// First command of a new cluster: the admin token's hash and the starting tiers.
    InitCluster {
        /// Hex sha256 of the admin token.
        admin_token_hash: String,
        /// Tiers to create.
        tiers: Vec<Tier>,
    },
    /// Create a tier; fails if the name exists.
    CreateTier {
        /// The tier.
        tier: Tier,
    },
    /// Replace a tier's settings; fails if it does not exist.
    UpdateTier {
        /// The tier with its new settings.
        tier: Tier,
    },
    /// Delete a tier; fails while a tenant uses it.
    DeleteTier {
        /// Tier name.
        name: String,
    },
    /// Create a tenant with its first API key.
    CreateTenant {
        /// The tenant.
        tenant: Tenant,
        /// Its first key.
        key: ApiKey,
    },
    /// Change a tenant.
    UpdateTenant {
        /// Tenant id.
        id: String,
        /// What to change.
        patch: TenantPatch,
    },
    /// Delete a tenant and all its keys.
    DeleteTenant {
        /// Tenant id.
        id: String,
    },
    /// Add an API key to a tenant.
    IssueKey {
        /// The key.
        key: ApiKey,
    },
    /// Add a new key and let an old one expire after a grace period.
    RotateKey {
        /// The key being replaced.
        old_key_id: String,
        /// How long the old key stays valid, from the proposal time.
        grace_ms: u64,
        /// The replacement.
        new_key: ApiKey,
    },
    /// Revoke a key at once.
    RevokeKey {
        /// Owning tenant.
        tenant: String,
        /// Key id.
        key_id: String,
    },
    /// Set or replace a model's price.
    SetPrice {
        /// The price (keyed by its model).
        price: Price,
    },
    /// Remove a model's price.
    DeletePrice {
        /// Model name.
        model: String,
    },
    /// Accept an evaluation, assigned to `record.owner` at `record.epoch`.
    SubmitEvaluation {
        /// The new record (status queued, nothing done).
        record: EvaluationRecord,
        /// The validated spec, as submitted; stored once, apart from the record that
        /// every checkpoint rewrites.
        spec: serde_json::Value,
        /// Refused if the tenant already has this many evaluations queued or running.
        /// Set only once every Raft member applies it (feature
        /// `raft-evaluation-limits-v1`): an older binary would ignore it and accept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_live: Option<u32>,
        /// Refused if the tenant already stores this many evaluations (of any status);
        /// set like `max_live`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_stored: Option<u32>,
    },
    /// Record case results of an evaluation. Rejected unless `epoch` is the current
    /// assignment's; results of items already recorded are ignored (exactly once). An
    /// empty checkpoint still re-checks the tenant's budget.
    CheckpointEvaluation {
        /// Evaluation id.
        id: String,
        /// The assignment epoch the results were produced under.
        epoch: u64,
        /// The results.
        items: Vec<CheckpointItem>,
    },
    /// Assign an evaluation to another node: its epoch becomes `epoch + 1`. Rejected
    /// unless `epoch` is current (two reassignments cannot both win).
    ReassignEvaluation {
        /// Evaluation id.
        id: String,
        /// The epoch being replaced.
        epoch: u64,
        /// The new owner.
        owner: u64,
    },
    /// Cancel an evaluation (no-op once it has ended).
    CancelEvaluation {
        /// Owning tenant (a tenant can only cancel its own).
        tenant: String,
        /// Evaluation id.
        id: String,
    },
    /// End an evaluation with an error, by its owner at its epoch.
    FailEvaluation {
        /// Evaluation id.
        id: String,
        /// The owner's epoch.
        epoch: u64,
        /// What went wrong.
        error: String,
    },
    /// Create or replace a tenant's provider credential (its value sealed by the
    /// proposer; see [`crate::credential`]).
    PutCredential {
        /// The credential.
        credential: StoredCredential,
    },
    /// Delete a tenant's provider credential.
    DeleteCredential {
        /// Owning tenant.
        tenant: String,
        /// Credential name.
        name: String,
    },
    /// Delete an evaluation that has ended: its record, spec and every result (its usage
    /// stays, as billing history). Proposed only once every Raft member speaks
    /// `raft-evaluation-limits-v1`.
    DeleteEvaluation {
        /// Owning tenant (a tenant can only delete its own).
        tenant: String,
        /// Evaluation id.
        id: String,
    },
}

/// What a successfully applied command returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutput {
    /// The cluster was initialised.
    Initialized,
    /// A tier after the change.
    Tier(Tier),
    /// A tenant after the change.
    Tenant(Tenant),
    /// A key after the change (no secret).
    Key(ApiKey),
    /// A rotation: the old key (with its new expiry) and the new key.
    Rotated {
        /// The old key.
        old: ApiKey,
        /// The new key.
        new: ApiKey,
    },
    /// Something was deleted.
    Deleted,
    /// A price after the change.
    Price(Price),
    /// An evaluation after the change.
    Evaluation(Box<EvaluationRecord>),
    /// A credential after the change (its value sealed).
    Credential(StoredCredential),
}

/// Why a command was rejected at apply time. Rejected commands change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ApplyError {
    /// A referenced object does not exist.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// Kind of object, e.g. `tenant`.
        kind: String,
        /// Its id.
        id: String,
    },
    /// An object with that id exists already.
    #[error("{kind} {id:?} already exists")]
    AlreadyExists {
        /// Kind of object.
        kind: String,
        /// Its id.
        id: String,
    },
    /// The change conflicts with other state.
    #[error("{0}")]
    Conflict(String),
    /// The proposal cannot be read by this binary (format too new).
    #[error("{0}")]
    Unsupported(String),
}

/// The state machine's answer to one proposal.
pub type CommandResult = Result<CommandOutput, ApplyError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_round_trips_and_rejects_newer_formats() {
        let p = Proposal::new(
            ProposalMeta {
                at_ms: 5,
                principal: "admin".into(),
                request_id: "r".into(),
            },
            Command::DeleteTier {
                name: "free".into(),
            },
        );
        let bytes = p.encode().unwrap();
        assert_eq!(Proposal::decode(&bytes).unwrap(), p);
        let mut newer = p.clone();
        newer.format = COMMAND_FORMAT + 1;
        assert!(matches!(
            Proposal::decode(&newer.encode().unwrap()),
            Err(DecodeError::TooNew { .. })
        ));
        assert!(matches!(
            Proposal::decode(b"\x01\x02"),
            Err(DecodeError::Malformed(_))
        ));
    }
}
