//! The Raft log and vote, in sled (openraft storage-v2 [`RaftLogStorage`]).
//!
//! Trees (in the node's one sled database):
//! - `raft_log`: entry index as 8-byte big-endian (so sled's key order is index order) ->
//!   rmp-serde (named fields) [`Entry`];
//! - `raft_meta`: `vote`, `committed` and `last_purged`, each rmp-serde.
//!
//! Durability: openraft may only count an entry as replicated by this node once it is on
//! disk, so [`LogStore::append`] reports completion only after an fsync (`Db::flush`), and
//! the vote is fsynced before `save_vote` returns. `committed` is not fsynced: sled recovers
//! a prefix of its writes after a crash, and `committed` is always written before the state
//! machine applies up to it, so a recovered state machine never runs ahead of it.

// openraft's `StorageError` is large, but the storage traits return it, so helpers that
// build it return it too rather than boxing it only to unbox it at the trait boundary.
#![allow(clippy::result_large_err)]

use crate::raft::types::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

/// Tree holding the log entries.
const LOG_TREE: &str = "raft_log";
/// Tree holding the vote, committed and last-purged log ids.
const META_TREE: &str = "raft_meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// The sled-backed Raft log and vote store. Cheap to clone: clones share the same trees,
/// which is how openraft's replication tasks get their own log reader.
#[derive(Debug, Clone)]
pub struct LogStore {
    /// The whole database, for `flush` (an fsync covers every tree).
    db: sled::Db,
    /// Log entries by big-endian index.
    log: sled::Tree,
    /// Vote, committed, last purged.
    meta: sled::Tree,
}

/// The sled key of a log index: big-endian, so byte order equals numeric order.
fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

/// Decodes a log entry value; `index` is only for the error message.
fn decode_entry(index: Option<u64>, bytes: &[u8]) -> StorageResult<Entry<TypeConfig>> {
    rmp_serde::from_slice(bytes).map_err(|e| match index {
        Some(i) => io_err(ErrorSubject::LogIndex(i), ErrorVerb::Read, e),
        None => io_err(ErrorSubject::Logs, ErrorVerb::Read, e),
    })
}

/// Reads an index back from its key, rejecting keys of the wrong length instead of panicking.
fn key_index(key: &[u8]) -> StorageResult<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        StorageIOError::<NodeId>::read_logs(AnyError::error(format!(
            "log key has {} bytes, expected 8",
            key.len()
        )))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Runs `Db::flush` (an fsync) on the blocking pool. sled's `flush_async` can deadlock when
/// several run at once, so every flush in Colony is the blocking one, off the async workers.
pub(crate) async fn flush_db(db: &sled::Db) -> Result<(), std::io::Error> {
    let db = db.clone();
    match tokio::task::spawn_blocking(move || db.flush()).await {
        Ok(Ok(_bytes)) => Ok(()),
        Ok(Err(e)) => Err(std::io::Error::other(e)),
        Err(join) => Err(std::io::Error::other(format!("flush task failed: {join}"))),
    }
}

impl LogStore {
    /// Opens (creating if missing) the log trees in `db`. The caller owns the database and
    /// shares it with the state machine.
    pub fn new(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            db: db.clone(),
            log: db.open_tree(LOG_TREE)?,
            meta: db.open_tree(META_TREE)?,
        })
    }

    /// The last committed index this node persisted (for status and readiness; a cheap
    /// in-memory read in sled).
    pub fn committed_index(&self) -> Option<u64> {
        self.read_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED, ErrorSubject::Store)
            .ok()
            .flatten()
            .flatten()
            .map(|l| l.index)
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        subject: ErrorSubject<NodeId>,
    ) -> StorageResult<Option<T>> {
        match self.meta.get(key) {
            Err(e) => Err(io_err(subject, ErrorVerb::Read, e)),
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => rmp_serde::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io_err(subject, ErrorVerb::Read, e)),
        }
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        subject: ErrorSubject<NodeId>,
    ) -> StorageResult<()> {
        let bytes = rmp_serde::to_vec_named(value)
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| io_err(subject, ErrorVerb::Write, e))?;
        Ok(())
    }

    fn last_purged(&self) -> StorageResult<Option<LogId<NodeId>>> {
        self.read_meta(KEY_LAST_PURGED, ErrorSubject::Store)
    }

    /// Removes every entry whose key is in `range`, in one atomic batch.
    fn remove_range(&self, range: (Bound<[u8; 8]>, Bound<[u8; 8]>)) -> StorageResult<()> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(range) {
            let (key, _) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            batch.remove(key);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => match i.checked_add(1) {
                Some(next) => Bound::Included(index_key(next)),
                // Nothing comes after u64::MAX.
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in self.log.range((start, end)) {
            let (key, value) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            out.push(decode_entry(key_index(&key).ok(), &value)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id = self.last_purged()?;
        let last = match self.log.last() {
            Err(e) => return Err(io_err(ErrorSubject::Logs, ErrorVerb::Read, e)),
            Ok(None) => None,
            Ok(Some((key, value))) => Some(decode_entry(key_index(&key).ok(), &value)?.log_id),
        };
        // With every entry purged the log still "ends" at the last purged id.
        let last_log_id = last.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        self.write_meta(KEY_VOTE, vote, ErrorSubject::Vote)?;
        // A vote must survive a crash, or this node could vote twice in one term.
        flush_db(&self.db)
            .await
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.read_meta(KEY_VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        // Not fsynced on purpose: see the module docs.
        self.write_meta(KEY_COMMITTED, &committed, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        // Stored as `Option<LogId>`, so a missing key and a stored `None` both mean none.
        Ok(self
            .read_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED, ErrorSubject::Store)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // One batch: a crash leaves either all of these entries or none, never a hole.
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = rmp_serde::to_vec_named(&entry)
                .map_err(|e| io_err(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, e))?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        // The entries are readable now; report them as persisted only after the fsync. The
        // flush is awaited here rather than in a detached task so that completions are
        // reported in order (openraft 0.9 waits for the callback before its next log write
        // anyway, so nothing is lost by waiting).
        callback.log_io_completed(flush_db(&self.db).await);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        // Removes the conflicting suffix `[index, ..]`. Not fsynced: if a crash brings the
        // suffix back, the leader truncates it again; the vote that fences it is durable.
        self.remove_range((Bound::Included(index_key(log_id.index)), Bound::Unbounded))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        // Record `last_purged` first: if we crash half-way, the log still starts right after
        // it (possibly with a few stale, already-applied entries) instead of having a hole
        // between the last purged id and the first remaining entry.
        self.write_meta(KEY_LAST_PURGED, &log_id, ErrorSubject::Store)?;
        self.remove_range((Bound::Unbounded, Bound::Included(index_key(log_id.index))))
    }
}
