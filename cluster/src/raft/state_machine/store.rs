//! [`StateMachineStore`] itself: the sled trees and the in-memory [`State`] it keeps in
//! step, opening them, and the plain reads (state, case results). Applying entries and
//! openraft's traits are in the parent module; snapshots and audit reads add their own
//! `impl` blocks in [`super::snapshot`] and [`super::audit`].

use super::error::StoreError;
use super::keys::{
    decode, eval_result_key, eval_result_prefix, get_decoded, load_state, KEY_APPLIED,
    KEY_AUDIT_HEAD, KEY_MEMBERSHIP, PREFIX_RECORD, SM_TREE, SNAPSHOT_TREE,
};
use crate::raft::types::{NodeId, NodeInfo};
use colony_state::State;
use openraft::{LogId, StoredMembership};
use std::sync::{Arc, Mutex, RwLock};

/// What Raft itself needs from the state machine besides [`State`].
#[derive(Debug, Clone, Default)]
pub(super) struct RaftApplied {
    pub(super) last_applied: Option<LogId<NodeId>>,
    pub(super) membership: StoredMembership<NodeId, NodeInfo>,
}

pub(super) struct Inner {
    /// The whole database, for fsync.
    pub(super) db: sled::Db,
    /// State machine records, audit log and Raft bookkeeping.
    pub(super) sm: sled::Tree,
    /// The current snapshot.
    pub(super) snapshots: sled::Tree,
    /// The records the HTTP layer reads. Lock order: `state`, then `applied`.
    pub(super) state: Arc<RwLock<State>>,
    /// Last applied log id and membership, changed with `state` under its write lock.
    pub(super) applied: Mutex<RaftApplied>,
    /// Serialises writes to the `snapshot` tree (a build racing an install).
    pub(super) snapshot_lock: Mutex<()>,
}

/// The sled-backed state machine. Cheap to clone: clones share one in-memory [`State`] and
/// the same trees, so openraft's handle, the snapshot builder and the HTTP layer's handle
/// all see the same data.
#[derive(Clone)]
pub struct StateMachineStore {
    pub(super) inner: Arc<Inner>,
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
}
