//! Colony's supervised actors (ractor).
//!
//! # Layout
//! - [`bucket_shard`]: [`bucket_shard::BucketShard`], one actor holding the rate-limit buckets
//!   whose keys hash to it (an actor per bucket would cost ~11 KB each: a million keys would
//!   not fit; a shard keeps a bucket at ~100 bytes)
//! - [`buckets`]: the bucket supervisor (restarts a failed shard with backoff and counts it)
//!   and [`buckets::Buckets`], the handle that splits a batch by shard, bounds in-flight work
//!   and times every call out

pub mod bucket_shard;
pub mod buckets;

pub use buckets::{BucketError, Buckets, BucketsConfig, CheckItem};
