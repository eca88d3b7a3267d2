//! [`StoreError`]: why the state machine store could not read or write its data. Its own
//! file because every other part of the store (key codecs, audit reads, snapshots, the
//! openraft glue) returns it.

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
