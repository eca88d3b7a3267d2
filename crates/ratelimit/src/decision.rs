//! The answer to one check.

use serde::{Deserialize, Serialize};

/// Whether the hits were admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Admitted (or, for a peek, the next single hit would be).
    UnderLimit,
    /// Rejected whole; nothing was consumed (or, for a peek, not even one hit fits).
    OverLimit,
}

/// The answer to one check, shaped like a Gubernator response item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the hits were admitted.
    pub status: Status,
    /// The `limit` of the request (not the burst), echoed for the caller's headers.
    pub limit: u64,
    /// Whole hits that would be admitted right now, after this decision took effect.
    /// Can exceed `limit` when a token or leaky bucket has a larger burst.
    pub remaining: u64,
    /// Milliseconds from the caller's `now_ms` until:
    /// - `UnderLimit`: the bucket is back at rest (full token bucket, empty leaky
    ///   bucket, nothing counted in the window) if nothing else arrives;
    /// - `OverLimit`: the rejected hits would fit (for a peek: one hit would fit). When
    ///   they can never fit (more hits than the capacity), the time until at rest.
    ///
    /// Exact: a repeat of the request this many milliseconds later fits, one
    /// millisecond earlier it does not (absent other traffic).
    pub reset_after_ms: u64,
}

impl Decision {
    /// True when the hits were admitted.
    pub fn is_under_limit(&self) -> bool {
        self.status == Status::UnderLimit
    }
}
