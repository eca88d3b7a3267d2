//! The replicated state machine in sled (openraft storage-v2 [`RaftStateMachine`]), its
//! snapshots, and queries over the audit log.
//!
//! The in-memory [`State`](colony_state::State) is what the HTTP layer reads. It changes
//! only while its write lock is held, together with the sled batch that persists the same
//! change, so a reader holding the read lock sees the `sm` tree and the state agree.
//!
//! # Layout
//! - this file: the openraft glue: applying log entries, and the [`RaftStateMachine`] and
//!   [`RaftSnapshotBuilder`] implementations over the parts below
//! - [`store`]: [`StateMachineStore`], its sled trees and in-memory state, opening and
//!   plain reads
//! - [`keys`]: the key schema of the `sm` and `snapshot` trees and the record codecs
//! - [`snapshot`]: the snapshot format, building and installing snapshots
//! - [`audit`]: audit log queries ([`AuditQuery`], [`AuditPage`]) and chain verification
//! - [`error`]: the store's error type, [`StoreError`]

// openraft's `StorageError` is large, but the storage traits return it, so helpers that
// build it return it too rather than boxing it only to unbox it at the trait boundary.
#![allow(clippy::result_large_err)]

mod audit;
mod error;
mod keys;
mod snapshot;
mod store;

pub use audit::{AuditPage, AuditQuery};
pub use error::StoreError;
pub use store::StateMachineStore;

use self::keys::{audit_key, change_kv, encode, KEY_APPLIED, KEY_AUDIT_HEAD, KEY_MEMBERSHIP};
use crate::raft::log_store::flush_db;
use crate::raft::types::{NodeId, NodeInfo, TypeConfig};
use colony_core::command::{ApplyError, CommandResult};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use std::io::Cursor;

type StorageResult<T> = Result<T, StorageError<NodeId>>;

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
