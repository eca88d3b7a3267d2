//! Test-only fault injection without root: drop internal traffic to or from chosen peers.
//!
//! Enabled only by the config flag `cluster.fault_injection` (off by default); when off,
//! every setter refuses. Gossip is blocked by the membership layer with the same lists.

use crate::raft::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// Which peers this node pretends it cannot reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSet {
    /// Drop what this node sends to these peers.
    #[serde(default)]
    pub block_out: BTreeSet<NodeId>,
    /// Drop what these peers send to this node.
    #[serde(default)]
    pub block_in: BTreeSet<NodeId>,
}

/// Shared fault switches.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    enabled: bool,
    set: Arc<RwLock<FaultSet>>,
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
                block_in: [2].into()
            })
            .is_err());
        assert!(!f.blocks_out(1) && !f.blocks_in(2));
        let f = Faults::new(true);
        f.set(FaultSet {
            block_out: [1].into(),
            block_in: [2].into(),
        })
        .unwrap();
        assert!(f.blocks_out(1) && f.blocks_in(2) && !f.blocks_out(2));
    }
}
