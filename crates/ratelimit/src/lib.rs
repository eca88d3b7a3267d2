//! Colony's rate-limit algorithms as pure functions of a bucket's state, the limit
//! asked for, the hits and the time. No I/O and no clock: time is always passed in as
//! `now_ms`, so the Bucket actor, the replication code and the tests all get the same
//! answers from the same inputs.
//!
//! ```
//! use colony_ratelimit::{check, Algorithm, Limit, Status};
//!
//! let limit = Limit::new(100, 60_000); // 100 per minute
//! let mut state = None;
//! let d = check(&mut state, Algorithm::TokenBucket, &limit, 1, 0).unwrap();
//! assert_eq!((d.status, d.remaining), (Status::UnderLimit, 99));
//! ```
//!
//! # Layout
//! - [`algorithm`]: which algorithm a bucket uses
//! - [`limit`]: what a bucket allows (limit, duration, burst) and its validation
//! - [`error`]: why a limit cannot be used
//! - [`decision`]: the answer to one check (status, remaining, reset time)
//! - [`bucket`]: one bucket's state, whatever its algorithm, and [`check`] on it;
//!   handles limit and algorithm changes
//! - `meter` (private): the exact fixed-point arithmetic of the two buckets
//! - [`token_bucket`], [`leaky_bucket`], [`sliding_window`]: each algorithm's state
//!   and semantics (the sliding window documents its exactness bound)
//! - [`headers`]: `RateLimit-Policy`, `RateLimit` and `Retry-After` values

pub mod algorithm;
pub mod bucket;
pub mod decision;
pub mod error;
pub mod headers;
pub mod leaky_bucket;
pub mod limit;
mod meter;
pub mod sliding_window;
pub mod token_bucket;

pub use algorithm::Algorithm;
pub use bucket::{check, BucketState};
pub use decision::{Decision, Status};
pub use error::LimitError;
pub use headers::retry_after_secs;
pub use leaky_bucket::LeakyBucketState;
pub use limit::Limit;
pub use sliding_window::{SlidingWindowState, Slot, SUB_WINDOWS};
pub use token_bucket::TokenBucketState;
