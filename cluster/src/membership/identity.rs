//! The foca identity of a Colony node: node id + gossip address + boot stamp.

use std::{
    fmt,
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// Who a gossip packet is from / to, as foca sees it.
///
/// foca keys its member table by [`foca::Identity::addr`] (the gossip address), so at most
/// one identity per address is tracked. The `boot` stamp is what lets a restarted process
/// (same node id, same address) replace the identity the cluster may still consider dead:
/// SWIM's Down state is terminal for an identity, so a new process needs a new identity.
///
/// The static node metadata (HTTP/Raft addresses, version) is deliberately *not* here: it is
/// sent with every header twice, so the identity stays small, and metadata travels as a
/// versioned custom broadcast instead (see `meta.rs`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct NodeIdentity {
    /// Colony node id (stable across restarts, new when the node's data is wiped).
    pub(crate) node_id: u64,
    /// Advertised gossip address; foca's unique key for a member.
    pub(crate) addr: SocketAddr,
    /// Microseconds since the Unix epoch when this identity was minted; strictly increasing
    /// within a process (see [`next_boot_stamp`]) and, clocks permitting, across restarts.
    pub(crate) boot: u64,
}

impl NodeIdentity {
    /// A fresh identity for a process that is starting now.
    pub(crate) fn fresh(node_id: u64, addr: SocketAddr) -> Self {
        Self {
            node_id,
            addr,
            boot: next_boot_stamp(0),
        }
    }

    /// The identity we address an announce to when all we know is a seed's address.
    ///
    /// foca accepts an `Announce` whose destination merely has the receiver's address (it
    /// cannot know the receiver's full identity yet), so node id and boot are irrelevant.
    pub(crate) const fn placeholder(addr: SocketAddr) -> Self {
        Self {
            node_id: 0,
            addr,
            boot: 0,
        }
    }
}

impl fmt::Debug for NodeIdentity {
    // Compact on purpose: identities appear in most foca trace lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}@{}#{}", self.node_id, self.addr, self.boot)
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = SocketAddr;

    /// Called by foca when the cluster declared us Down while we are in fact alive (false
    /// suspicion, healed partition). A newer boot stamp wins the address conflict against
    /// our old identity, so we rejoin at once instead of staying "undead" until every
    /// member forgets the old identity (`remove_down_after`).
    fn renew(&self) -> Option<Self> {
        Some(Self {
            node_id: self.node_id,
            addr: self.addr,
            boot: next_boot_stamp(self.boot),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The newer boot wins: it is the later process (restart) or the renewed identity.
    /// A wiped node (new node id on the same address) is newer too, so it replaces the old
    /// node. The node id only breaks exact ties so the relation stays antisymmetric.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.boot, self.node_id) > (adversary.boot, adversary.node_id)
    }
}

/// Last stamp handed out by this process, so two identities minted in the same microsecond
/// (tests restart agents in-process) still get distinct, increasing stamps.
static LAST_BOOT_STAMP: AtomicU64 = AtomicU64::new(0);

/// A boot stamp that is greater than `after`, greater than every stamp this process handed
/// out before, and normally the current time in microseconds since the Unix epoch.
pub(crate) fn next_boot_stamp(after: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        // A clock before 1970 is broken; the monotonic bump below still keeps us unique.
        .unwrap_or(0);
    let mut stamp = 0;
    // fetch_update never fails here: the closure always returns Some.
    let _ = LAST_BOOT_STAMP.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
        stamp = now.max(last.saturating_add(1)).max(after.saturating_add(1));
        Some(stamp)
    });
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000))
    }

    #[test]
    fn renewed_identity_wins_and_keeps_address() {
        let id = NodeIdentity::fresh(7, addr());
        let renewed = id.renew().unwrap();
        assert_eq!(renewed.node_id, 7);
        assert_eq!(renewed.addr(), id.addr());
        assert!(renewed.boot > id.boot);
        assert!(renewed.win_addr_conflict(&id));
        assert!(!id.win_addr_conflict(&renewed));
    }

    #[test]
    fn later_process_and_wiped_node_win() {
        let old = NodeIdentity::fresh(1, addr());
        let restarted = NodeIdentity::fresh(1, addr());
        let wiped = NodeIdentity::fresh(2, addr());
        assert!(restarted.win_addr_conflict(&old));
        assert!(wiped.win_addr_conflict(&old));
        assert!(wiped.win_addr_conflict(&restarted));
        assert!(!old.win_addr_conflict(&wiped));
    }

    #[test]
    fn stamps_strictly_increase() {
        let a = next_boot_stamp(0);
        let b = next_boot_stamp(0);
        assert!(b > a);
        assert!(next_boot_stamp(b + 1_000_000) > b + 1_000_000);
    }
}
