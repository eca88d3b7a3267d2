//! Where keys live: rendezvous (highest-random-weight) hashing of a key over the
//! active members of a node's membership view. Pure: no I/O, no clock, no randomness;
//! every node, platform and version computes the same answer.
//!
//! ```
//! use colony_placement::{owner, ranked};
//!
//! let nodes = [1, 2, 3];
//! let order = ranked(b"tenant/bucket-key", &nodes);
//! assert_eq!(Some(order[0]), owner(b"tenant/bucket-key", &nodes));
//! // The bucket's asynchronous replica lives on order[1].
//! ```
//!
//! # Layout
//! - [`policy`]: the [`Placement`] trait the rest of the node is generic over
//! - [`rendezvous`]: the rendezvous policy, its weight function and free functions
//!   [`owner`], [`replica`], [`ranked`]
//! - [`siphash`]: the pinned SipHash-2-4 the weights are made of

pub mod policy;
pub mod rendezvous;
pub mod siphash;

pub use policy::Placement;
pub use rendezvous::{key_digest, owner, ranked, replica, weight, Rendezvous};

/// A node's id, as Raft and membership know it.
pub type NodeId = u64;
