//! The snapshot format and the snapshot half of the store: what a snapshot's bytes hold
//! ([`SnapshotData`], versioned by [`SNAPSHOT_FORMAT`]), building one from the `sm` tree,
//! installing a received one, and the `snapshot` tree that keeps the current one. Apart
//! from the openraft glue because the format is what followers of other versions must
//! read: it changes only with care, and not with the glue.
//!
//! Tree `snapshot`: `meta` ([`SnapshotMeta`]) and `data` (the bytes openraft ships) of the
//! current snapshot, and `counter`, which makes snapshot ids unique.

use super::error::StoreError;
use super::keys::{
    encode, get_decoded, is_snapshot_key, load_state, show_key, KEY_APPLIED, KEY_MEMBERSHIP,
};
use super::store::{RaftApplied, StateMachineStore};
use crate::raft::types::{NodeId, NodeInfo};
use colony_core::versioned::{self, Migrate, NoPrevious};
use openraft::{LogId, SnapshotMeta, StoredMembership};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

const SNAP_META: &[u8] = b"meta";
const SNAP_DATA: &[u8] = b"data";
const SNAP_COUNTER: &[u8] = b"counter";

/// Version of [`SnapshotData`]'s layout, so a future layout can be told apart (its
/// [`Migrate::VERSION`]).
const SNAPSHOT_FORMAT: u16 = 1;

/// A stored snapshot: its metadata and bytes.
pub(super) type StoredSnapshot = (SnapshotMeta<NodeId, NodeInfo>, Vec<u8>);

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

/// Format 1, the first: the layout above.
impl Migrate for SnapshotData {
    const VERSION: u16 = SNAPSHOT_FORMAT;
    type Previous = NoPrevious;

    fn migrate(previous: NoPrevious) -> Self {
        match previous {}
    }

    fn version(&self) -> u16 {
        self.format
    }
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
                // The hint is the peer's claim, not a size: capped, the vector grows as
                // elements really arrive.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

impl StateMachineStore {
    /// Captures a consistent copy of the state machine, stores it as the current snapshot
    /// (unless a newer one is stored already) and returns it. Does not fsync.
    pub(super) fn capture_snapshot(&self) -> Result<StoredSnapshot, StoreError> {
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
    pub(super) fn install(
        &self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        // "cannot decode: …", or "format N is newer than this binary understands (1)".
        let data: SnapshotData =
            versioned::decode(&bytes).map_err(|e| StoreError::InvalidSnapshot(e.to_string()))?;
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

    pub(super) fn current_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
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
}
