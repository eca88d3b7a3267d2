//! Verification of the audit hash chain.

use colony_core::audit::{parse_hash, AuditEntry, GENESIS_HASH};
use serde::{Deserialize, Serialize};

/// The last entry of the chain as the state machine knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// Sequence number of the last entry (0 when empty).
    pub seq: u64,
    /// Hash of the last entry ([`GENESIS_HASH`] when empty).
    pub hash: [u8; 32],
}

impl Default for AuditHead {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH,
        }
    }
}

/// Outcome of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Whether every entry checked out and the chain ends at the expected head.
    pub ok: bool,
    /// How many entries were read.
    pub entries_checked: u64,
    /// Hex hash of the last good entry.
    pub head_hash: String,
    /// The first entry that does not check out, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<BadEntry>,
}

/// An entry that broke the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadEntry {
    /// Its sequence number (or the expected one, when entries are missing).
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// Recomputes the chain over `entries` (in sequence order) and compares its end with
/// `expected`, the head the state machine recorded, so truncation is detected too.
pub fn verify_chain(
    entries: impl IntoIterator<Item = AuditEntry>,
    expected: AuditHead,
) -> ChainReport {
    let mut prev = GENESIS_HASH;
    let mut next_seq = 1;
    let mut checked = 0;
    let bad = |seq: u64, reason: String, checked: u64, prev: &[u8; 32]| ChainReport {
        ok: false,
        entries_checked: checked,
        head_hash: hex::encode(prev),
        first_bad: Some(BadEntry { seq, reason }),
    };
    for entry in entries {
        checked += 1;
        if entry.seq != next_seq {
            return bad(
                next_seq,
                format!("expected entry {next_seq}, found {}", entry.seq),
                checked,
                &prev,
            );
        }
        if parse_hash(&entry.prev_hash) != Some(prev) {
            return bad(
                entry.seq,
                "prev_hash does not match the previous entry's hash".into(),
                checked,
                &prev,
            );
        }
        let computed = entry.compute_hash(&prev);
        if parse_hash(&entry.hash) != Some(computed) {
            return bad(
                entry.seq,
                "hash does not match the entry's contents".into(),
                checked,
                &prev,
            );
        }
        prev = computed;
        next_seq += 1;
    }
    let end = AuditHead {
        seq: next_seq - 1,
        hash: prev,
    };
    if end != expected {
        return bad(
            end.seq + 1,
            format!(
                "chain ends at entry {} but the state machine's head is entry {} ({})",
                end.seq,
                expected.seq,
                hex::encode(expected.hash)
            ),
            checked,
            &prev,
        );
    }
    ChainReport {
        ok: true,
        entries_checked: checked,
        head_hash: hex::encode(prev),
        first_bad: None,
    }
}
