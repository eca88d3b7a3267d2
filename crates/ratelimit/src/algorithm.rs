//! Which rate-limit algorithm a bucket uses.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A rate-limit algorithm, named as the check API and Gubernator name them.
///
/// Serialized in snake_case: `token_bucket`, `leaky_bucket`, `sliding_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Holds up to `burst` (default `limit`) tokens and refills `limit` tokens per
    /// `duration_ms` continuously; a hit takes a token. A new bucket starts full.
    TokenBucket,
    /// Holds up to `burst` (default `limit`) units of water that leak out at `limit`
    /// per `duration_ms` continuously; a hit pours in one unit. A new bucket starts
    /// empty. As a meter it admits exactly what a token bucket of the same capacity
    /// and rate admits (the level is the bucket's free space turned upside down);
    /// the two differ in the state they keep and name, not in their decisions.
    LeakyBucket,
    /// At most `limit` hits in any window of `duration_ms`, counted exactly in
    /// [`SUB_WINDOWS`](crate::SUB_WINDOWS) sub-windows; `burst` does not apply.
    SlidingWindow,
}

impl Algorithm {
    /// Every algorithm, in declaration order (for tests and documentation).
    pub const ALL: [Algorithm; 3] = [
        Algorithm::TokenBucket,
        Algorithm::LeakyBucket,
        Algorithm::SlidingWindow,
    ];

    /// The wire name, e.g. `token_bucket`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "token_bucket",
            Algorithm::LeakyBucket => "leaky_bucket",
            Algorithm::SlidingWindow => "sliding_window",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
