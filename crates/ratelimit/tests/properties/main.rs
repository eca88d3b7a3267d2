//! Property tests of the rate-limit algorithms against simple reference models.
//!
//! - `model`: the reference models, written from the definitions rather than from
//!   the implementation (a token bucket as a Lindley recursion over the admitted hits,
//!   a window as a list of timestamped hits)
//! - `buckets`: token and leaky bucket against the continuous model
//! - `window`: the sliding window against the window model and its stated bound
//! - `state`: serialization, determinism and arbitrary request sequences

#![allow(clippy::unwrap_used)]

mod buckets;
mod model;
mod state;
mod window;
