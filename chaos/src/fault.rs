//! The kinds of fault the nemesis injects, and what each means for the checkers.

use serde::Serialize;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// `kill -9` of a node, then restart in place (same data dir and addresses).
    Kill9Restart,
    /// `kill -9` of the Raft leader, then restart in place.
    KillLeader,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// SIGTERM (graceful drain), wait for exit, then start again.
    GracefulRestart,
    /// The node is cut off from every other node (Raft, forwarding, gossip) with the
    /// test-only fault switches, then healed.
    Partition,
    /// SIGTERM (graceful drain), wait for exit, then start the `--upgrade-to` binary on
    /// the same data dir and addresses.
    Upgrade,
    /// `--net netns`: iptables in the node's namespace drop everything it exchanges with
    /// the other nodes (clients still reach it).
    NetPartition,
    /// `--net netns`: the node's packets to the other nodes are dropped; it still hears
    /// them.
    NetOneWay,
    /// `--net netns`: 30% of the packets between the node and the others are dropped.
    NetLoss,
    /// Test-only switches (no root): every Raft RPC and gossip datagram the node sends is
    /// [`DELAY_MS`] late.
    Delay,
    /// Test-only switches (no root): [`LOSS_PERCENT`] % of the Raft RPCs and gossip
    /// datagrams the node sends are dropped.
    Loss,
    /// `kill -9` of a minority at once (⌊(n−1)/2⌋ nodes: 2 of 5, 1 of 3), the target and
    /// the next indices, then each restarted in place.
    KillMinority,
    /// A minority (as for [`Kind::KillMinority`]) is cut off from the majority with the
    /// test-only switches; its members still talk to each other. Then healed.
    PartitionMinority,
}

/// Delay of [`Kind::Delay`]: most of a Raft append's budget. openraft times an append out
/// after `raft.heartbeat_ms` (100 ms by default), so a delay at or above it stalls every
/// write while the followers, who still get the (late) heartbeats, elect nobody.
pub const DELAY_MS: u64 = 60;

/// Loss of [`Kind::Loss`].
pub const LOSS_PERCENT: u8 = 30;

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Kill9Restart,
        Kind::KillLeader,
        Kind::Pause,
        Kind::GracefulRestart,
        Kind::Partition,
    ];

    /// Every kind, for looking one up by name.
    pub const EVERY: [Kind; 13] = [
        Kind::Kill9Restart,
        Kind::KillLeader,
        Kind::Pause,
        Kind::GracefulRestart,
        Kind::Partition,
        Kind::Upgrade,
        Kind::NetPartition,
        Kind::NetOneWay,
        Kind::NetLoss,
        Kind::Delay,
        Kind::Loss,
        Kind::KillMinority,
        Kind::PartitionMinority,
    ];

    /// What `mixed` draws from: every fault that needs no root.
    pub const MIXED: [Kind; 7] = [
        Kind::Kill9Restart,
        Kind::KillLeader,
        Kind::Pause,
        Kind::GracefulRestart,
        Kind::Partition,
        Kind::Delay,
        Kind::Loss,
    ];

    /// The network faults of the `network` scenario (need `--net netns`).
    pub const NETWORK: [Kind; 3] = [Kind::NetPartition, Kind::NetOneWay, Kind::NetLoss];

    /// Whether the cluster may split around the target (it keeps running, but others
    /// cannot reliably reach it): its buckets may be served on both sides.
    pub fn is_partition_like(self) -> bool {
        // Delay and loss count too: a node whose acks are late or lost is suspected and
        // may be declared down, so its buckets may be served on both sides meanwhile.
        matches!(
            self,
            Kind::Partition
                | Kind::PartitionMinority
                | Kind::NetPartition
                | Kind::NetOneWay
                | Kind::NetLoss
                | Kind::Delay
                | Kind::Loss
        )
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill9Restart => "kill9-restart",
            Kind::KillLeader => "kill-leader",
            Kind::Pause => "pause",
            Kind::GracefulRestart => "graceful-restart",
            Kind::Partition => "partition",
            Kind::Upgrade => "upgrade",
            Kind::NetPartition => "net-partition",
            Kind::NetOneWay => "net-one-way",
            Kind::NetLoss => "net-loss",
            Kind::Delay => "delay",
            Kind::Loss => "loss",
            Kind::KillMinority => "kill-minority",
            Kind::PartitionMinority => "partition-minority",
        }
    }

    /// How many nodes it hits in a cluster of `nodes`: a minority for the `*-minority`
    /// kinds, else one.
    pub fn width(self, nodes: usize) -> usize {
        match self {
            Kind::KillMinority | Kind::PartitionMinority => (nodes.saturating_sub(1) / 2).max(1),
            _ => 1,
        }
    }

    /// Whether the target stops serving abruptly (its rate-limit buckets continue from a
    /// replica, with the over-admission bound of a crash).
    pub fn is_crash_like(self) -> bool {
        !matches!(self, Kind::GracefulRestart | Kind::Upgrade)
    }
}
