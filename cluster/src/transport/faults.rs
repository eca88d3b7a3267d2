//! Test-only fault injection without root: drop internal traffic to or from chosen peers,
//! and delay or randomly drop what this node sends.
//!
//! Enabled only by the config flag `cluster.fault_injection` (off by default); when off,
//! every setter refuses. Gossip is blocked and impaired by the membership layer with the
//! same settings.

use crate::raft::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Which peers this node pretends it cannot reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSet {
    /// Drop what this node sends to these peers.
    #[serde(default)]
    pub block_out: BTreeSet<NodeId>,
    /// Drop what these peers send to this node.
    #[serde(default)]
    pub block_in: BTreeSet<NodeId>,
    /// Delay added to every Raft RPC and gossip datagram this node sends, in ms.
    #[serde(default)]
    pub delay_ms: u64,
    /// Share (0–100 %) of this node's Raft RPCs and gossip datagrams dropped at random.
    #[serde(default)]
    pub loss_percent: u8,
}

/// Shared fault switches.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    enabled: bool,
    set: Arc<RwLock<FaultSet>>,
    /// State of the loss draws (a tiny xorshift: test-only, no quality needed).
    draws: Arc<AtomicU64>,
}

/// Fault injection is off in this node's config.
#[derive(Debug, thiserror::Error)]
#[error("fault injection is disabled (config key cluster.fault_injection)")]
pub struct FaultsDisabled;

impl Faults {
    /// Switches that work only when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            set: Arc::default(),
            draws: Arc::new(AtomicU64::new(0x9E37_79B9_7F4A_7C15)),
        }
    }

    /// Whether fault injection is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Replaces the fault set.
    pub fn set(&self, faults: FaultSet) -> Result<(), FaultsDisabled> {
        if !self.enabled {
            return Err(FaultsDisabled);
        }
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = faults;
        Ok(())
    }

    /// The current fault set.
    pub fn current(&self) -> FaultSet {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether traffic to `peer` is dropped.
    pub fn blocks_out(&self, peer: NodeId) -> bool {
        self.enabled
            && self
                .set
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .block_out
                .contains(&peer)
    }

    /// Delay to add before sending to a peer (zero when none is injected).
    pub fn delay_out(&self) -> Duration {
        if !self.enabled {
            return Duration::ZERO;
        }
        let ms = self.set.read().unwrap_or_else(|p| p.into_inner()).delay_ms;
        Duration::from_millis(ms)
    }

    /// Whether to drop the next outgoing message (injected loss, drawn at random).
    pub fn drops_out(&self) -> bool {
        if !self.enabled {
            return false;
        }
        let loss = self
            .set
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .loss_percent;
        if loss == 0 {
            return false;
        }
        // xorshift64; a lost update between racing callers only repeats a draw.
        let mut x = self.draws.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.draws.store(x, Ordering::Relaxed);
        x % 100 < u64::from(loss.min(100))
    }

    /// Whether traffic from `peer` is dropped.
    pub fn blocks_in(&self, peer: NodeId) -> bool {
        self.enabled
            && self
                .set
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .block_in
                .contains(&peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_faults_refuse_and_block_nothing() {
        let f = Faults::new(false);
        assert!(f
            .set(FaultSet {
                block_out: [1].into(),
                block_in: [2].into(),
                ..FaultSet::default()
            })
            .is_err());
        assert!(!f.blocks_out(1) && !f.blocks_in(2));
        let f = Faults::new(true);
        f.set(FaultSet {
            block_out: [1].into(),
            block_in: [2].into(),
            ..FaultSet::default()
        })
        .unwrap();
        assert!(f.blocks_out(1) && f.blocks_in(2) && !f.blocks_out(2));
    }

    #[test]
    fn injected_loss_drops_about_its_share_and_delay_is_reported() {
        let f = Faults::new(true);
        assert!(!(0..1000).any(|_| f.drops_out()), "no loss set");
        f.set(FaultSet {
            delay_ms: 150,
            loss_percent: 30,
            ..FaultSet::default()
        })
        .unwrap();
        assert_eq!(f.delay_out(), Duration::from_millis(150));
        let dropped = (0..10_000).filter(|_| f.drops_out()).count();
        assert!((2_500..3_500).contains(&dropped), "{dropped} of 10000");
        let off = Faults::new(false);
        assert_eq!(off.delay_out(), Duration::ZERO);
        assert!(!off.drops_out());
    }
}
