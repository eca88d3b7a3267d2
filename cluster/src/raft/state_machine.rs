//! The replicated state machine in sled (openraft storage-v2 [`RaftStateMachine`]), its
//! snapshots, and queries over the audit log.
//!
//! Tree `sm` (values rmp-serde with named fields):
//! - `r/admin`: the admin token hash; `r/tier/<name>`, `r/tenant/<id>`, `r/key/<key id>`,
//!   `r/price/<model>`, `r/eval/<id>`, `r/evspec/<id>`, `r/usage/<tenant>/<day>/<model>` (value: key and
//!   totals): the records of [`State`];
//! - `r/evres/<evaluation id>/<item index as 4-byte big-endian>`: case results (JSON
//!   values), persisted and snapshotted but not held in [`State`];
//! - `a/<seq as 8-byte big-endian>`: [`AuditEntry`], so key order is chain order;
//! - `m/applied` (`Option<LogId>`), `m/membership` ([`StoredMembership`]), `m/audit_head`
//!   ([`AuditHead`](colony_state::AuditHead)).
//!
//! Tree `snapshot`: `meta` ([`SnapshotMeta`]) and `data` (the bytes openraft ships) of the
//! current snapshot, and `counter`, which makes snapshot ids unique.
//!
//! The in-memory [`State`] is what the HTTP layer reads. It changes only while its write
//! lock is held, together with the sled batch that persists the same change, so a reader
//! holding the read lock sees the `sm` tree and the [`State`] agree.

// openraft's `StorageError` is large, but the storage traits return it, so helpers that
// build it return it too rather than boxing it only to unbox it at the trait boundary.
#![allow(clippy::result_large_err)]

use crate::raft::log_store::flush_db;
use crate::raft::types::{NodeId, NodeInfo, TypeConfig};
use colony_core::audit::AuditEntry;
use colony_core::command::{ApplyError, CommandResult};
use colony_state::chain::BadEntry;
use colony_state::{verify_chain, ChainReport, Change, State};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, RwLock};

const SM_TREE: &str = "sm";
const SNAPSHOT_TREE: &str = "snapshot";

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
const PREFIX_RECORD: &[u8] = b"r/";
const PREFIX_AUDIT: &[u8] = b"a/";
const KEY_APPLIED: &[u8] = b"m/applied";
const KEY_MEMBERSHIP: &[u8] = b"m/membership";
const KEY_AUDIT_HEAD: &[u8] = b"m/audit_head";

const SNAP_META: &[u8] = b"meta";
const SNAP_DATA: &[u8] = b"data";
const SNAP_COUNTER: &[u8] = b"counter";

/// Version of [`SnapshotData`]'s layout, so a future layout can be told apart.
const SNAPSHOT_FORMAT: u16 = 1;

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// A stored snapshot: its metadata and bytes.
type StoredSnapshot = (SnapshotMeta<NodeId, NodeInfo>, Vec<u8>);

/// Why the state machine store could not read or write its data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O or corruption).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A value could not be encoded.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The encoder's error.
        source: rmp_serde::encode::Error,
    },
    /// A stored value could not be decoded.
    #[error("cannot decode the value at {key}: {source}")]
    Decode {
        /// The key (printable form) whose value is bad.
        key: String,
        /// The decoder's error.
        source: rmp_serde::decode::Error,
    },
    /// A key that does not belong where it was found.
    #[error("unexpected key {key}: {reason}")]
    BadKey {
        /// The key (printable form).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A received snapshot does not match its metadata or is malformed.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// A blocking storage task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    TaskFailed(String),
    /// A thread panicked while holding the state lock, so the in-memory state may be torn.
    #[error("the state machine lock is poisoned (a thread panicked while holding it)")]
    Poisoned,
}

/// Filters and cursor for [`StateMachineStore::audit_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries concerning this tenant.
    pub tenant: Option<String>,
    /// Only this action; a value ending in `.` or `*` is a prefix (`tenant.*` matches
    /// `tenant.create`, `*` matches everything).
    pub action: Option<String>,
    /// Only entries by this principal.
    pub principal: Option<String>,
    /// Only entries at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Only entries before this time (exclusive).
    pub until_ms: Option<u64>,
    /// Cursor: only entries with a greater sequence number (0 = from the start).
    pub after_seq: u64,
    /// At most this many entries (0 is treated as 1, so a cursor always moves).
    pub limit: usize,
}

/// One page of audit entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditPage {
    /// Matching entries in sequence order.
    pub entries: Vec<AuditEntry>,
    /// When the page is full, the sequence number of its last entry: pass it as
    /// [`AuditQuery::after_seq`] to get the next page. `None` when the scan reached the end.
    pub next_after_seq: Option<u64>,
}

impl AuditQuery {
    fn matches(&self, e: &AuditEntry) -> bool {
        if let Some(t) = &self.tenant {
            if e.tenant.as_deref() != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(p) = &self.principal {
            if &e.principal != p {
                return false;
            }
        }
        if let Some(a) = &self.action {
            let ok = if let Some(prefix) = a.strip_suffix('*') {
                e.action.starts_with(prefix)
            } else if a.ends_with('.') {
                e.action.starts_with(a.as_str())
            } else {
                &e.action == a
            };
            if !ok {
                return false;
            }
        }
        if self.since_ms.is_some_and(|s| e.at_ms < s) {
            return false;
        }
        if self.until_ms.is_some_and(|u| e.at_ms >= u) {
            return false;
        }
        true
    }
}

/// What Raft itself needs from the state machine besides [`State`].
#[derive(Debug, Clone, Default)]
struct RaftApplied {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
}

struct Inner {
    /// The whole database, for fsync.
    db: sled::Db,
    /// State machine records, audit log and Raft bookkeeping.
    sm: sled::Tree,
    /// The current snapshot.
    snapshots: sled::Tree,
    /// The records the HTTP layer reads. Lock order: `state`, then `applied`.
    state: Arc<RwLock<State>>,
    /// Last applied log id and membership, changed with `state` under its write lock.
    applied: Mutex<RaftApplied>,
    /// Serialises writes to the `snapshot` tree (a build racing an install).
    snapshot_lock: Mutex<()>,
}

/// The sled-backed state machine. Cheap to clone: clones share one in-memory [`State`] and
/// the same trees, so openraft's handle, the snapshot builder and the HTTP layer's handle
/// all see the same data.
#[derive(Clone)]
pub struct StateMachineStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state itself can be large; the applied position identifies the store enough.
        // try_lock: printing must never wait for (or deadlock with) an apply in progress.
        let applied = self
            .inner
            .applied
            .try_lock()
            .map(|a| a.last_applied)
            .ok()
            .flatten();
        f.debug_struct("StateMachineStore")
            .field("last_applied", &applied)
            .finish_non_exhaustive()
    }
}

/// What a snapshot holds: the Raft position plus every record and audit entry, as the raw
/// key/value pairs of the `sm` tree (they are already encoded, so copying them is exact).
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    format: u16,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
    /// `r/…` and `a/…` pairs and `m/audit_head`, in key order.
    pairs: Vec<(Bytes, Bytes)>,
}

/// Bytes serialized as a msgpack binary (not an array of integers, which would be up to
/// twice as large).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// The key of audit entry `seq`.
fn audit_key(seq: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(PREFIX_AUDIT);
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number in an audit key, if it is one.
fn audit_seq(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(PREFIX_AUDIT)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// A printable form of a key, for errors.
fn show_key(key: &[u8]) -> String {
    match audit_seq(key) {
        Some(seq) => format!("a/{seq}"),
        None => String::from_utf8_lossy(key).into_owned(),
    }
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|source| StoreError::Encode {
        what: what.to_string(),
        source,
    })
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|source| StoreError::Decode {
        key: show_key(key),
        source,
    })
}

fn get_decoded<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        None => Ok(None),
        Some(bytes) => decode(key, &bytes).map(Some),
    }
}

/// The sled key and new value (`None` = delete) of a record change.
fn change_kv(change: &Change) -> Result<(Vec<u8>, Option<Vec<u8>>), StoreError> {
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
fn eval_result_key(id: &str, index: u32) -> Vec<u8> {
    let mut k = eval_result_prefix(id);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn eval_result_prefix(id: &str) -> Vec<u8> {
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
fn is_snapshot_key(key: &[u8]) -> bool {
    key.starts_with(PREFIX_RECORD) || key.starts_with(PREFIX_AUDIT) || key == KEY_AUDIT_HEAD
}

/// Builds the in-memory state from `(key, value)` pairs of the `sm` tree.
fn load_state<'a>(
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

/// The reply for entries that carry no command. openraft needs one reply per entry, but
/// only replies to `client_write` proposals ever reach a client, so this is never seen.
fn not_a_command() -> CommandResult {
    Err(ApplyError::Unsupported("not a command".into()))
}

fn sm_err(verb: ErrorVerb, e: StoreError) -> StorageError<NodeId> {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)).into()
}

fn snapshot_err(
    meta: Option<&SnapshotMeta<NodeId, NodeInfo>>,
    verb: ErrorVerb,
    e: StoreError,
) -> StorageError<NodeId> {
    let subject = ErrorSubject::Snapshot(meta.map(SnapshotMeta::signature));
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

impl StateMachineStore {
    /// Opens the state machine trees in `db` and loads the in-memory [`State`], the last
    /// applied log id and the membership from them.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let sm = db.open_tree(SM_TREE)?;
        let snapshots = db.open_tree(SNAPSHOT_TREE)?;
        let mut pairs = Vec::new();
        for item in sm.scan_prefix(PREFIX_RECORD) {
            pairs.push(item?);
        }
        if let Some(head) = sm.get(KEY_AUDIT_HEAD)? {
            pairs.push((sled::IVec::from(KEY_AUDIT_HEAD), head));
        }
        let state = load_state(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))?;
        let last_applied = get_decoded::<Option<LogId<NodeId>>>(&sm, KEY_APPLIED)?.flatten();
        let membership = get_decoded(&sm, KEY_MEMBERSHIP)?.unwrap_or_default();
        Ok(Self {
            inner: Arc::new(Inner {
                db: db.clone(),
                sm,
                snapshots,
                state: Arc::new(RwLock::new(state)),
                applied: Mutex::new(RaftApplied {
                    last_applied,
                    membership,
                }),
                snapshot_lock: Mutex::new(()),
            }),
        })
    }

    /// The in-memory state. Hold its read lock only briefly: applying waits for it.
    pub fn state(&self) -> Arc<RwLock<State>> {
        Arc::clone(&self.inner.state)
    }

    /// fsyncs the whole database. Blocking: call it from `spawn_blocking`.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// One page of audit entries matching `q`, in sequence order. Blocking (reads sled):
    /// call it from `spawn_blocking`.
    pub fn audit_page(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let limit = q.limit.max(1);
        let mut page = AuditPage::default();
        let Some(start) = q.after_seq.checked_add(1) else {
            return Ok(page);
        };
        // Entries are immutable once written, so no lock is needed to read them.
        for item in self.inner.sm.range(audit_key(start)..=audit_key(u64::MAX)) {
            let (key, value) = item?;
            let entry: AuditEntry = decode(&key, &value)?;
            if !q.matches(&entry) {
                continue;
            }
            page.entries.push(entry);
            if page.entries.len() == limit {
                page.next_after_seq = page.entries.last().map(|e| e.seq);
                break;
            }
        }
        Ok(page)
    }

    /// Up to `limit` case results of evaluation `id` with item index at or after `from`,
    /// in index order. Blocking (reads sled): call it from `spawn_blocking`.
    pub fn eval_results(
        &self,
        id: &str,
        from: u32,
        limit: usize,
    ) -> Result<Vec<(u32, serde_json::Value)>, StoreError> {
        let prefix = eval_result_prefix(id);
        let mut out = Vec::new();
        let start = eval_result_key(id, from);
        let mut end = prefix.clone();
        end.extend_from_slice(&[0xff; 5]);
        for item in self.inner.sm.range(start..end) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            let Some(idx) = key
                .get(prefix.len()..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
            else {
                continue;
            };
            out.push((idx, decode(&key, &value)?));
        }
        Ok(out)
    }

    /// Recomputes the whole audit hash chain and checks that it ends at the state
    /// machine's head. An entry that cannot be decoded is reported as the first bad entry.
    /// Blocking: call it from `spawn_blocking`.
    pub fn audit_verify(&self) -> Result<ChainReport, StoreError> {
        // Only the entries up to the head taken now are checked, so commands applied
        // during the scan do not look like a chain running past its head.
        let head = self
            .inner
            .state
            .read()
            .map_err(|_| StoreError::Poisoned)?
            .audit_head;
        let mut undecodable: Option<(u64, String)> = None;
        let mut read_error: Option<sled::Error> = None;
        let range = if head.seq == 0 {
            // Nothing to read; an empty range keeps the code below uniform.
            self.inner.sm.range(audit_key(1)..audit_key(1))
        } else {
            self.inner.sm.range(audit_key(1)..=audit_key(head.seq))
        };
        let entries = range.map_while(|item| match item {
            Err(e) => {
                read_error = Some(e);
                None
            }
            Ok((key, value)) => match rmp_serde::from_slice::<AuditEntry>(&value) {
                Ok(entry) => Some(entry),
                Err(e) => {
                    let seq = audit_seq(&key).unwrap_or(0);
                    undecodable = Some((seq, format!("entry cannot be decoded: {e}")));
                    None
                }
            },
        });
        let report = verify_chain(entries, head);
        if let Some(e) = read_error {
            return Err(e.into());
        }
        match undecodable {
            // The chain broke before the bad entry: that is the first problem.
            Some((seq, _)) if report.first_bad.as_ref().is_some_and(|b| b.seq < seq) => Ok(report),
            // Otherwise verify_chain only saw a short chain; the real cause is the bad entry.
            Some((seq, reason)) => Ok(ChainReport {
                ok: false,
                entries_checked: report.entries_checked + 1,
                head_hash: report.head_hash,
                first_bad: Some(BadEntry { seq, reason }),
            }),
            None => Ok(report),
        }
    }

    /// Test helper: rewrites stored audit entry `seq` with `f`, leaving the chain head
    /// alone, to simulate tampering. Panics if the entry does not exist or cannot be read.
    #[cfg(any(test, feature = "testsuite"))]
    pub fn tamper_audit_entry_for_test(&self, seq: u64, f: impl FnOnce(&mut AuditEntry)) {
        let key = audit_key(seq);
        let mut entry: AuditEntry = match get_decoded(&self.inner.sm, &key) {
            Ok(Some(e)) => e,
            Ok(None) => panic!("no audit entry {seq}"),
            Err(e) => panic!("cannot read audit entry {seq}: {e}"),
        };
        f(&mut entry);
        let written =
            encode("audit entry", &entry).and_then(|v| Ok(self.inner.sm.insert(key, v)?));
        if let Err(e) = written {
            panic!("cannot write audit entry {seq}: {e}");
        }
    }

    /// Applies `entries` to the in-memory state and persists the result in one sled batch.
    fn apply_entries(
        &self,
        entries: impl Iterator<Item = Entry<TypeConfig>>,
    ) -> StorageResult<Vec<CommandResult>> {
        let mut state = self
            .inner
            .state
            .write()
            .map_err(|_| sm_err(ErrorVerb::Write, StoreError::Poisoned))?;
        let mut applied = self
            .inner
            .applied
            .lock()
            .map_err(|_| sm_err(ErrorVerb::Write, StoreError::Poisoned))?;
        let mut batch = sled::Batch::default();
        let mut replies = Vec::new();
        let mut last = applied.clone();
        let apply_err = |log_id: LogId<NodeId>, e: StoreError| -> StorageError<NodeId> {
            StorageIOError::apply(log_id, AnyError::new(&e)).into()
        };
        for entry in entries {
            let log_id = entry.log_id;
            match entry.payload {
                EntryPayload::Blank => replies.push(not_a_command()),
                EntryPayload::Normal(proposal) => {
                    let outcome = state.apply(&proposal);
                    for change in &outcome.changes {
                        let (key, value) = change_kv(change).map_err(|e| apply_err(log_id, e))?;
                        match value {
                            Some(v) => batch.insert(key, v),
                            None => batch.remove(key),
                        }
                    }
                    if let Some(audit) = &outcome.audit {
                        let bytes =
                            encode("audit entry", audit).map_err(|e| apply_err(log_id, e))?;
                        batch.insert(&audit_key(audit.seq), bytes);
                    }
                    replies.push(outcome.result);
                }
                EntryPayload::Membership(m) => {
                    last.membership = StoredMembership::new(Some(log_id), m);
                    let bytes =
                        encode("membership", &last.membership).map_err(|e| apply_err(log_id, e))?;
                    batch.insert(KEY_MEMBERSHIP, bytes);
                    replies.push(not_a_command());
                }
            }
            last.last_applied = Some(log_id);
        }
        let Some(last_id) = last.last_applied.filter(|_| !replies.is_empty()) else {
            return Ok(replies);
        };
        let head = encode("audit head", &state.audit_head).map_err(|e| apply_err(last_id, e))?;
        batch.insert(KEY_AUDIT_HEAD, head);
        let applied_bytes =
            encode("applied log id", &last.last_applied).map_err(|e| apply_err(last_id, e))?;
        batch.insert(KEY_APPLIED, applied_bytes);
        // No fsync here: the log entries are already durable, sled recovers a prefix of its
        // writes, and `m/applied` is in the same atomic batch as the changes. After a crash
        // the state machine is some earlier consistent point and openraft re-applies the
        // rest of the committed log.
        self.inner
            .sm
            .apply_batch(batch)
            .map_err(|e| apply_err(last_id, e.into()))?;
        *applied = last;
        Ok(replies)
    }

    /// Captures a consistent copy of the state machine, stores it as the current snapshot
    /// (unless a newer one is stored already) and returns it. Does not fsync.
    fn capture_snapshot(&self) -> Result<StoredSnapshot, StoreError> {
        let data = {
            // The read lock keeps `apply` out, so the pairs and the applied id agree.
            let _state = self.inner.state.read().map_err(|_| StoreError::Poisoned)?;
            let applied = self
                .inner
                .applied
                .lock()
                .map_err(|_| StoreError::Poisoned)?
                .clone();
            let mut pairs = Vec::new();
            for item in self.inner.sm.iter() {
                let (k, v) = item?;
                if is_snapshot_key(&k) {
                    pairs.push((Bytes(k.to_vec()), Bytes(v.to_vec())));
                }
            }
            SnapshotData {
                format: SNAPSHOT_FORMAT,
                last_applied: applied.last_applied,
                membership: applied.membership,
                pairs,
            }
        };
        let bytes = encode("snapshot", &data)?;

        let _guard = self
            .inner
            .snapshot_lock
            .lock()
            .map_err(|_| StoreError::Poisoned)?;
        let counter = get_decoded::<u64>(&self.inner.snapshots, SNAP_COUNTER)?.unwrap_or(0) + 1;
        let snapshot_id = match &data.last_applied {
            Some(id) => format!("{}-{}-{counter}", id.leader_id.term, id.index),
            None => format!("none-{counter}"),
        };
        let meta = SnapshotMeta {
            last_log_id: data.last_applied,
            last_membership: data.membership,
            snapshot_id,
        };
        let current: Option<SnapshotMeta<NodeId, NodeInfo>> =
            get_decoded(&self.inner.snapshots, SNAP_META)?;
        let mut batch = sled::Batch::default();
        batch.insert(SNAP_COUNTER, encode("snapshot counter", &counter)?);
        // An installed snapshot can be newer than what this builder saw; keep the newer one.
        if current.is_none_or(|c| c.last_log_id <= meta.last_log_id) {
            batch.insert(SNAP_META, encode("snapshot meta", &meta)?);
            batch.insert(SNAP_DATA, bytes.as_slice());
        }
        self.inner.snapshots.apply_batch(batch)?;
        Ok((meta, bytes))
    }

    /// Replaces the state machine with a received snapshot and stores it as current.
    /// Does not fsync.
    fn install(
        &self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let data: SnapshotData = rmp_serde::from_slice(&bytes)
            .map_err(|e| StoreError::InvalidSnapshot(format!("cannot decode: {e}")))?;
        if data.format > SNAPSHOT_FORMAT {
            return Err(StoreError::InvalidSnapshot(format!(
                "format {} is newer than this binary understands ({SNAPSHOT_FORMAT})",
                data.format
            )));
        }
        if data.last_applied != meta.last_log_id || data.membership != meta.last_membership {
            return Err(StoreError::InvalidSnapshot(format!(
                "contents are at {:?} but the metadata says {:?}",
                data.last_applied, meta.last_log_id
            )));
        }
        let mut new_pairs = BTreeMap::new();
        for (Bytes(k), Bytes(v)) in data.pairs {
            if !is_snapshot_key(&k) {
                return Err(StoreError::BadKey {
                    key: show_key(&k),
                    reason: "not allowed in a snapshot".into(),
                });
            }
            new_pairs.insert(k, v);
        }
        // Decode everything before touching the store, so a bad snapshot changes nothing.
        let new_state = load_state(new_pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
        let new_applied = RaftApplied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };

        {
            let mut state = self.inner.state.write().map_err(|_| StoreError::Poisoned)?;
            let mut applied = self
                .inner
                .applied
                .lock()
                .map_err(|_| StoreError::Poisoned)?;
            // One batch: a crash leaves the old state machine or the new one, never a mix.
            let mut batch = sled::Batch::default();
            for item in self.inner.sm.iter().keys() {
                let key = item?;
                if !new_pairs.contains_key(key.as_ref()) {
                    batch.remove(key);
                }
            }
            for (k, v) in &new_pairs {
                batch.insert(k.as_slice(), v.as_slice());
            }
            batch.insert(
                KEY_APPLIED,
                encode("applied log id", &new_applied.last_applied)?,
            );
            batch.insert(
                KEY_MEMBERSHIP,
                encode("membership", &new_applied.membership)?,
            );
            self.inner.sm.apply_batch(batch)?;
            *state = new_state;
            *applied = new_applied;
        }

        let _guard = self
            .inner
            .snapshot_lock
            .lock()
            .map_err(|_| StoreError::Poisoned)?;
        let mut batch = sled::Batch::default();
        batch.insert(SNAP_META, encode("snapshot meta", meta)?);
        batch.insert(SNAP_DATA, bytes);
        self.inner.snapshots.apply_batch(batch)?;
        Ok(())
    }

    /// Runs `f` on a clone of this store on tokio's blocking pool.
    async fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| StoreError::TaskFailed(e.to_string()))?
    }

    fn current_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        let _guard = self
            .inner
            .snapshot_lock
            .lock()
            .map_err(|_| StoreError::Poisoned)?;
        let Some(meta) =
            get_decoded::<SnapshotMeta<NodeId, NodeInfo>>(&self.inner.snapshots, SNAP_META)?
        else {
            return Ok(None);
        };
        match self.inner.snapshots.get(SNAP_DATA)? {
            Some(data) => Ok(Some((meta, data.to_vec()))),
            None => Err(StoreError::InvalidSnapshot(format!(
                "snapshot {} has no data",
                meta.snapshot_id
            ))),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        // Scanning and encoding the whole state machine is blocking work.
        let (meta, bytes) = self
            .run_blocking(|sm| sm.capture_snapshot())
            .await
            .map_err(|e| snapshot_err(None, ErrorVerb::Write, e))?;
        // The snapshot must be durable before openraft may purge the logs it covers.
        flush_db(&self.inner.db).await.map_err(|e| {
            StorageError::from_io_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeInfo>)> {
        let applied = self
            .inner
            .applied
            .lock()
            .map_err(|_| sm_err(ErrorVerb::Read, StoreError::Poisoned))?;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<CommandResult>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.apply_entries(entries.into_iter())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let owned_meta = meta.clone();
        let bytes = snapshot.into_inner();
        // Decoding and rewriting the whole state machine is blocking work.
        self.run_blocking(move |sm| sm.install(&owned_meta, bytes))
            .await
            .map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, e))?;
        flush_db(&self.inner.db).await.map_err(|e| {
            StorageError::from_io_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let current = self
            .current_snapshot()
            .map_err(|e| snapshot_err(None, ErrorVerb::Read, e))?;
        Ok(current.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_as_msgpack_binary() {
        let b = Bytes(vec![0, 200, 255]);
        let enc = rmp_serde::to_vec_named(&b).unwrap();
        // bin8 marker, length 3, then the raw bytes.
        assert_eq!(enc, vec![0xc4, 3, 0, 200, 255]);
        assert_eq!(rmp_serde::from_slice::<Bytes>(&enc).unwrap(), b);
        // An array of integers (how a plain Vec<u8> encodes) is accepted too.
        let arr = rmp_serde::to_vec(&vec![1u8, 2]).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Bytes>(&arr).unwrap(),
            Bytes(vec![1, 2])
        );
    }

    #[test]
    fn action_filter_prefixes() {
        let e = AuditEntry {
            seq: 1,
            at_ms: 10,
            principal: "admin".into(),
            action: "tenant.create".into(),
            resource: "tenants/a".into(),
            tenant: Some("a".into()),
            request_id: "r".into(),
            details: serde_json::json!({}),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let q = |a: &str| AuditQuery {
            action: Some(a.into()),
            ..Default::default()
        };
        assert!(q("tenant.create").matches(&e));
        assert!(q("tenant.*").matches(&e));
        assert!(q("tenant.").matches(&e));
        assert!(q("*").matches(&e));
        assert!(!q("tenant").matches(&e));
        assert!(!q("tier.*").matches(&e));
        assert!(AuditQuery {
            since_ms: Some(10),
            until_ms: Some(11),
            ..Default::default()
        }
        .matches(&e));
        assert!(!AuditQuery {
            until_ms: Some(10),
            ..Default::default()
        }
        .matches(&e));
    }

    #[test]
    fn audit_keys_sort_by_seq() {
        assert!(audit_key(2) < audit_key(256));
        assert_eq!(audit_seq(&audit_key(77)), Some(77));
        assert_eq!(show_key(&audit_key(5)), "a/5");
        assert_eq!(audit_seq(b"r/x"), None);
    }
}
