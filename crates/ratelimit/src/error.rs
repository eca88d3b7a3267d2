//! Why a limit cannot be used.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A limit that no algorithm can enforce as given. The API answers it as an error
/// for that one request item; [`LimitError::field`] names the offending field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum LimitError {
    /// `limit` is 0: nothing could ever be admitted.
    #[error("limit must be at least 1")]
    ZeroLimit,
    /// `duration_ms` is 0: the rate would be infinite.
    #[error("duration_ms must be at least 1")]
    ZeroDuration,
    /// `burst` is 0. Gubernator reads 0 as "unset"; Colony says so instead of
    /// guessing, because JSON can simply omit the field.
    #[error("burst must be at least 1 (omit it to use the limit)")]
    ZeroBurst,
    /// A sliding window was given a `burst` other than its `limit`. A window has
    /// no capacity beyond its limit, and silently ignoring the field would hide
    /// the caller's mistake.
    #[error("burst is not supported by sliding_window (omit it or set it equal to limit)")]
    BurstNotSupported,
}

impl LimitError {
    /// The request field the error is about: `limit`, `duration_ms` or `burst`.
    pub fn field(self) -> &'static str {
        match self {
            LimitError::ZeroLimit => "limit",
            LimitError::ZeroDuration => "duration_ms",
            LimitError::ZeroBurst | LimitError::BurstNotSupported => "burst",
        }
    }
}
