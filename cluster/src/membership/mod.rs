//! SWIM membership: who is in the cluster, whether they are alive, and what they say about
//! themselves.
//!
//! Built on [foca](https://docs.rs/foca) 2.x (sans-IO SWIM with suspicion, infection-style
//! dissemination and custom broadcasts), driven by one tokio task per node ([`Membership`]).
//!
//! # How it fits together
//! - **Identity** (`identity.rs`): node id + advertised gossip address + boot stamp. foca
//!   keeps one identity per address; a newer boot stamp wins, so a restarted process, a
//!   node that renews itself after being wrongly declared Down, and a wiped node (new node
//!   id on the same address) all replace the stale identity immediately.
//! - **Metadata** (`meta.rs`): [`NodeMeta`] travels as a foca custom broadcast versioned by
//!   `(boot, seq)`; receivers keep the highest version per node id. Changing the
//!   [`NodeState`] ([`Membership::set_state`]) is a new version, not an identity change, so
//!   it never looks like a failure.
//! - **Encryption** (`auth.rs`): every datagram is ChaCha20-Poly1305 under a key derived
//!   from the cluster secret, with a sender sequence and a timestamp inside; it is dropped
//!   before foca sees it if it does not open, is outside the time window, or is a replay.
//! - **View and events** (`view.rs`): [`Membership::members`] is the source of truth;
//!   [`MemberEvent`]s on the bounded channel report Up/Down/Updated for other members.
//! - **Timings** (`config.rs`): see [`MembershipConfig`] and the `DEFAULT_*` constants;
//!   a crashed node is declared Down in about 2 s (1.4–2.4 s).
//! - **Local health** (`health.rs`): a node that hears from fewer members than it does
//!   not hear from postpones its Down verdicts (Lifeguard), so a partition's cut-off side
//!   does not make the whole other side renew its identity after the heal.

mod agent;
mod auth;
mod config;
mod health;
mod identity;
mod meta;
mod timers;
mod view;

pub use agent::{Membership, MembershipCounters, MembershipError, EVENT_CHANNEL_CAPACITY};
pub use auth::{Legacy, WINDOW_MS as GOSSIP_WINDOW_MS};
pub use config::{
    MembershipConfig, DEFAULT_NUM_INDIRECT_PROBES, DEFAULT_PROBE_PERIOD, DEFAULT_PROBE_RTT,
    DEFAULT_REMOVE_DOWN_AFTER, DEFAULT_SUSPECT_TO_DOWN,
};
pub use meta::{NodeMeta, NodeState};
pub use view::{MemberEvent, MemberStatus, MemberView};

/// Fuzzing hooks for `fuzz/fuzz_targets/gossip_packet.rs`; not part of the API.
#[doc(hidden)]
pub use agent::{decode_for_fuzz, seal_for_fuzz};
