//! The key schema of the state machine's sled trees and the codecs between stored
//! key/value pairs and [`State`]: where each record lives, how values are encoded, and how
//! a scan of the `sm` tree is read back. Kept apart from the store so the on-disk layout is
//! in one place (the snapshot format copies these pairs as they are).
//!
//! Tree `sm` (values rmp-serde with named fields):
//! - `r/admin`: the admin token hash; `r/tier/<name>`, `r/tenant/<id>`, `r/key/<key id>`,
//!   `r/price/<model>`, `r/eval/<id>`, `r/evspec/<id>`, `r/usage/<tenant>/<day>/<model>` (value: key and
//!   totals): the records of [`State`];
//! - `r/evres/<evaluation id>/<item index as 4-byte big-endian>`: case results (JSON
//!   values), persisted and snapshotted but not held in [`State`];
//! - `a/<seq as 8-byte big-endian>`: [`AuditEntry`](colony_core::audit::AuditEntry), so key
//!   order is chain order;
//! - `m/applied` (`Option<LogId>`), `m/membership`
//!   ([`StoredMembership`](openraft::StoredMembership)), `m/audit_head`
//!   ([`AuditHead`](colony_state::AuditHead)).
//!
//! Tree `snapshot`: see [`super::snapshot`].

use super::error::StoreError;
use colony_state::{Change, State};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(super) const SM_TREE: &str = "sm";
pub(super) const SNAPSHOT_TREE: &str = "snapshot";

const KEY_ADMIN: &[u8] = b"r/admin";
const PREFIX_TIER: &[u8] = b"r/tier/";
const PREFIX_TENANT: &[u8] = b"r/tenant/";
const PREFIX_KEY: &[u8] = b"r/key/";
const PREFIX_PRICE: &[u8] = b"r/price/";
const PREFIX_EVAL: &[u8] = b"r/eval/";
const PREFIX_EVAL_RESULT: &[u8] = b"r/evres/";
const PREFIX_EVAL_SPEC: &[u8] = b"r/evspec/";
const PREFIX_USAGE: &[u8] = b"r/usage/";
const PREFIX_CREDENTIAL: &[u8] = b"r/cred/";
pub(super) const PREFIX_RECORD: &[u8] = b"r/";
const PREFIX_AUDIT: &[u8] = b"a/";
pub(super) const KEY_APPLIED: &[u8] = b"m/applied";
pub(super) const KEY_MEMBERSHIP: &[u8] = b"m/membership";
pub(super) const KEY_AUDIT_HEAD: &[u8] = b"m/audit_head";

/// The key of audit entry `seq`.
pub(super) fn audit_key(seq: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(PREFIX_AUDIT);
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number in an audit key, if it is one.
pub(super) fn audit_seq(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(PREFIX_AUDIT)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// A printable form of a key, for errors.
pub(super) fn show_key(key: &[u8]) -> String {
    match audit_seq(key) {
        Some(seq) => format!("a/{seq}"),
        None => String::from_utf8_lossy(key).into_owned(),
    }
}

pub(super) fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|source| StoreError::Encode {
        what: what.to_string(),
        source,
    })
}

pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|source| StoreError::Decode {
        key: show_key(key),
        source,
    })
}

pub(super) fn get_decoded<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        None => Ok(None),
        Some(bytes) => decode(key, &bytes).map(Some),
    }
}

/// The sled key and new value (`None` = delete) of a record change.
pub(super) fn change_kv(change: &Change) -> Result<(Vec<u8>, Option<Vec<u8>>), StoreError> {
    fn key(prefix: &[u8], id: &str) -> Vec<u8> {
        [prefix, id.as_bytes()].concat()
    }
    Ok(match change {
        Change::AdminTokenHash(h) => (KEY_ADMIN.to_vec(), Some(encode("admin token hash", h)?)),
        Change::Tier(name, t) => (
            key(PREFIX_TIER, name),
            t.as_ref().map(|t| encode("tier", t)).transpose()?,
        ),
        Change::Tenant(id, t) => (
            key(PREFIX_TENANT, id),
            t.as_ref().map(|t| encode("tenant", t)).transpose()?,
        ),
        Change::Key(id, k) => (
            key(PREFIX_KEY, id),
            k.as_ref().map(|k| encode("api key", k)).transpose()?,
        ),
        Change::Price(model, p) => (
            key(PREFIX_PRICE, model),
            p.as_ref().map(|p| encode("price", p)).transpose()?,
        ),
        Change::Evaluation(id, e) => (
            key(PREFIX_EVAL, id),
            e.as_ref().map(|e| encode("evaluation", e)).transpose()?,
        ),
        Change::EvalSpec(id, v) => (
            key(PREFIX_EVAL_SPEC, id),
            v.as_ref()
                .map(|v| encode("evaluation spec", v))
                .transpose()?,
        ),
        Change::EvalResult(id, index, r) => (
            eval_result_key(id, *index),
            r.as_ref().map(|r| encode("case result", r)).transpose()?,
        ),
        Change::Usage(k, u) => (
            key(PREFIX_USAGE, &format!("{}/{}/{}", k.tenant, k.day, k.model)),
            u.as_ref().map(|u| encode("usage", &(k, u))).transpose()?,
        ),
        // Tenant ids and credential names contain no '/'; the value carries both anyway.
        Change::Credential(tenant, name, c) => (
            key(PREFIX_CREDENTIAL, &format!("{tenant}/{name}")),
            c.as_ref().map(|c| encode("credential", c)).transpose()?,
        ),
    })
}

/// `r/evres/<id>/` then the index big-endian, so an evaluation's results are in order.
pub(super) fn eval_result_key(id: &str, index: u32) -> Vec<u8> {
    let mut k = eval_result_prefix(id);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub(super) fn eval_result_prefix(id: &str) -> Vec<u8> {
    [PREFIX_EVAL_RESULT, id.as_bytes(), b"/"].concat()
}

/// Reads a stored `r/…` record back as the change that creates it. Unknown record kinds
/// (written by a newer binary) give `None`: they are kept on disk and in snapshots but
/// this binary has no place for them in [`State`].
fn record_change(key: &[u8], value: &[u8]) -> Result<Option<Change>, StoreError> {
    let id = |prefix: &[u8]| -> Result<String, StoreError> {
        let rest = &key[prefix.len()..];
        String::from_utf8(rest.to_vec()).map_err(|_| StoreError::BadKey {
            key: show_key(key),
            reason: "the id is not UTF-8".into(),
        })
    };
    Ok(Some(if key == KEY_ADMIN {
        Change::AdminTokenHash(decode(key, value)?)
    } else if key.starts_with(PREFIX_TIER) {
        Change::Tier(id(PREFIX_TIER)?, Some(decode(key, value)?))
    } else if key.starts_with(PREFIX_TENANT) {
        Change::Tenant(id(PREFIX_TENANT)?, Some(decode(key, value)?))
    } else if key.starts_with(PREFIX_KEY) {
        Change::Key(id(PREFIX_KEY)?, Some(decode(key, value)?))
    } else if key.starts_with(PREFIX_PRICE) {
        Change::Price(id(PREFIX_PRICE)?, Some(decode(key, value)?))
    } else if key.starts_with(PREFIX_EVAL) {
        Change::Evaluation(id(PREFIX_EVAL)?, Some(decode(key, value)?))
    } else if key.starts_with(PREFIX_EVAL_SPEC) {
        Change::EvalSpec(id(PREFIX_EVAL_SPEC)?, Some(decode(key, value)?))
    } else if key.starts_with(PREFIX_USAGE) {
        let (k, u) = decode(key, value)?;
        Change::Usage(k, Some(u))
    } else if key.starts_with(PREFIX_CREDENTIAL) {
        let c: colony_core::credential::StoredCredential = decode(key, value)?;
        Change::Credential(c.tenant.clone(), c.name.clone(), Some(c))
    } else if key.starts_with(PREFIX_EVAL_RESULT) {
        // Served from storage, not held in memory.
        return Ok(None);
    } else {
        tracing::warn!(key = %show_key(key), "unknown state machine record kind; keeping it but not loading it");
        return Ok(None);
    }))
}

/// Whether a key of the `sm` tree belongs in a snapshot's pairs (everything but the Raft
/// bookkeeping, which the snapshot carries in typed fields).
pub(super) fn is_snapshot_key(key: &[u8]) -> bool {
    key.starts_with(PREFIX_RECORD) || key.starts_with(PREFIX_AUDIT) || key == KEY_AUDIT_HEAD
}

/// Builds the in-memory state from `(key, value)` pairs of the `sm` tree.
pub(super) fn load_state<'a>(
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<State, StoreError> {
    let mut state = State::default();
    for (key, value) in pairs {
        if key == KEY_AUDIT_HEAD {
            state.audit_head = decode(key, value)?;
        } else if key.starts_with(PREFIX_RECORD) {
            if let Some(change) = record_change(key, value)? {
                state.commit(change);
            }
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_keys_sort_by_seq() {
        assert!(audit_key(2) < audit_key(256));
        assert_eq!(audit_seq(&audit_key(77)), Some(77));
        assert_eq!(show_key(&audit_key(5)), "a/5");
        assert_eq!(audit_seq(b"r/x"), None);
    }
}
