//! Membership configuration and the tuned SWIM timings.

use std::{
    fmt,
    net::SocketAddr,
    num::{NonZeroU8, NonZeroUsize},
    time::Duration,
};

use super::{agent::MembershipError, meta::NodeMeta};

/// How often a node pings one random peer (SWIM protocol period).
///
/// Every node probes one peer per period, round-robin over a shuffled list, so in a 3–7
/// node cluster a dead node is probed by *some* survivor within about one period. 400 ms
/// (rather than 500 ms) keeps detection at about 2 s even in the unlucky cases; the cost
/// is a few more 100-byte packets per second per node.
pub const DEFAULT_PROBE_PERIOD: Duration = Duration::from_millis(400);

/// How long to wait for a direct ack before asking helpers for an indirect probe.
///
/// Loopback/LAN round trips are well under a millisecond; 200 ms absorbs scheduler stalls
/// on a loaded 2-core machine and leaves the other half of the period for the indirect round.
pub const DEFAULT_PROBE_RTT: Duration = Duration::from_millis(200);

/// Helpers asked to ping a peer that missed its direct ack. Three survivors must all fail
/// to reach it before it is suspected, which is what prevents false positives from a single
/// slow or lossy path.
pub const DEFAULT_NUM_INDIRECT_PROBES: usize = 3;

/// How long a Suspect member has to refute the suspicion before it is declared Down.
///
/// Two and a half probe periods: a wrongly suspected node hears about it through the 200 ms
/// periodic gossip (or its next probe) and refutes by bumping its incarnation well within
/// 1 s, even when the machine is busy. A false Down therefore needs a node to be silent for
/// about 1.4 s (a probe period plus this), far beyond any scheduler hiccup we measured.
pub const DEFAULT_SUSPECT_TO_DOWN: Duration = Duration::from_secs(1);

/// How long a Down member stays in the member table (visible as `Down` in
/// [`super::Membership::members`]) before it is forgotten. A restarted node does not have to
/// wait for this: its newer boot stamp replaces the old identity at once.
pub const DEFAULT_REMOVE_DOWN_AFTER: Duration = Duration::from_secs(60);

/// Periodic gossip of pending updates (membership changes and metadata) to a few random
/// members, on top of SWIM's piggybacking on probes: makes joins, Down verdicts and state
/// changes reach everyone within a few hundred milliseconds.
pub(crate) const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
pub(crate) const GOSSIP_FANOUT: NonZeroUsize = NonZeroUsize::MIN.saturating_add(2); // 3

/// Periodic announce to a random member: its reply (`Feed`) lists the active members, so a
/// node that missed someone's join catches up without waiting for gossip.
pub(crate) const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5);

/// Periodic announce to members we hold as Down: heals partitions, because a live node we
/// declared Down learns it (foca `TurnUndead`), renews its identity and rejoins.
pub(crate) const ANNOUNCE_DOWN_INTERVAL: Duration = Duration::from_secs(5);
pub(crate) const ANNOUNCE_DOWN_FANOUT: NonZeroUsize = NonZeroUsize::MIN.saturating_add(1); // 2

/// How many times each update/broadcast is piggybacked. With a 3-member gossip fan-out and
/// every receiver re-spreading new information, 8 makes a lost update practically
/// impossible in clusters of up to a few dozen nodes; it costs only bytes.
pub(crate) const MAX_TRANSMISSIONS: NonZeroU8 = NonZeroU8::MIN.saturating_add(7); // 8

/// Largest foca payload; the encrypted framing adds 54 bytes and the result (with IP and
/// UDP headers, 1482 bytes) stays under a 1500-byte Ethernet MTU, so gossip is never
/// IP-fragmented.
pub(crate) const MAX_PACKET_SIZE: NonZeroUsize = NonZeroUsize::MIN.saturating_add(1399); // 1400

/// Housekeeping tick of the agent loop: while we know no live peer, announce to the seeds
/// (and to members we hold as Down) this often, so nodes can start in any order.
pub(crate) const REJOIN_INTERVAL: Duration = Duration::from_secs(1);

/// Our own metadata is re-broadcast this often even if unchanged, as anti-entropy for a
/// node that missed every copy of it (broadcasts are only sent `MAX_TRANSMISSIONS` times).
/// It is also re-broadcast at once whenever a new member comes up.
pub(crate) const META_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Everything needed to start a [`super::Membership`] agent.
///
/// Start from [`MembershipConfig::lan_defaults`] and override what you need. With the
/// defaults a crashed node is declared Down after: time until a survivor probes it (up to
/// about one probe period) + one probe period (the direct and indirect probes fail; foca
/// turns that into a suspicion at its next probe tick) + `suspect_to_down`, then ≤ 200 ms
/// of gossip to the rest: 1.4–2.4 s. Measured on loopback clusters of 3 and 7 nodes on a
/// 2-core machine: median 1.8 s, 90th percentile 2.4 s, also with dozens of other
/// clusters running at once, and no false Down. A node that calls
/// [`super::Membership::leave`] is seen Down within milliseconds.
#[derive(Clone)]
pub struct MembershipConfig {
    /// This node's Colony node id; `meta.node_id` must equal it.
    pub node_id: u64,
    /// UDP address to bind; port 0 picks a free port (see [`super::Membership::local_addr`]).
    pub bind: SocketAddr,
    /// Address peers should use to reach us. Defaults to the bound address, which then must
    /// not be a wildcard (0.0.0.0 / ::). A port of 0 here means "the bound port".
    pub advertise: Option<SocketAddr>,
    /// Gossip addresses to announce to on start, and again every second while we know no
    /// live peer. May include our own address (it is skipped). Empty = wait to be contacted.
    pub seeds: Vec<SocketAddr>,
    /// Cluster secret the gossip key is derived from. Must not be empty.
    pub secret: Vec<u8>,
    /// Metadata we announce (its `state` can later change with
    /// [`super::Membership::set_state`]).
    pub meta: NodeMeta,
    /// See [`DEFAULT_PROBE_PERIOD`]. Must be greater than `probe_rtt`.
    pub probe_period: Duration,
    /// See [`DEFAULT_PROBE_RTT`]. Must be non-zero.
    pub probe_rtt: Duration,
    /// See [`DEFAULT_SUSPECT_TO_DOWN`]. Must be non-zero.
    pub suspect_to_down: Duration,
    /// See [`DEFAULT_NUM_INDIRECT_PROBES`]. Must be at least 1.
    pub num_indirect_probes: usize,
    /// See [`DEFAULT_REMOVE_DOWN_AFTER`]. Must be non-zero.
    pub remove_down_after: Duration,
    /// Version 1 (unencrypted) packets, for moving a cluster to encrypted gossip.
    pub legacy: super::auth::Legacy,
}

impl MembershipConfig {
    /// A configuration with the LAN/loopback timings tuned for 3–7 node clusters (see the
    /// `DEFAULT_*` constants for each number and why), no seeds and no advertise override.
    pub fn lan_defaults(node_id: u64, bind: SocketAddr, secret: Vec<u8>, meta: NodeMeta) -> Self {
        Self {
            node_id,
            bind,
            advertise: None,
            seeds: Vec::new(),
            secret,
            meta,
            probe_period: DEFAULT_PROBE_PERIOD,
            probe_rtt: DEFAULT_PROBE_RTT,
            suspect_to_down: DEFAULT_SUSPECT_TO_DOWN,
            num_indirect_probes: DEFAULT_NUM_INDIRECT_PROBES,
            remove_down_after: DEFAULT_REMOVE_DOWN_AFTER,
            legacy: super::auth::Legacy::Off,
        }
    }

    /// Rejects settings foca would misbehave with (it asserts nothing itself).
    pub(crate) fn validate(&self) -> Result<(), MembershipError> {
        let invalid = |why: &str| Err(MembershipError::InvalidConfig(why.to_owned()));
        if self.secret.is_empty() {
            return invalid("secret must not be empty");
        }
        if self.meta.node_id != self.node_id {
            return invalid("meta.node_id must equal node_id");
        }
        if self.probe_rtt.is_zero() || self.probe_period <= self.probe_rtt {
            return invalid("need 0 < probe_rtt < probe_period");
        }
        if self.suspect_to_down.is_zero() {
            return invalid("suspect_to_down must be non-zero");
        }
        if self.num_indirect_probes == 0 {
            return invalid("num_indirect_probes must be at least 1");
        }
        if self.remove_down_after.is_zero() {
            return invalid("remove_down_after must be non-zero");
        }
        Ok(())
    }

    /// The foca configuration these settings translate to.
    pub(crate) fn foca_config(&self) -> foca::Config {
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: NonZeroUsize::new(self.num_indirect_probes)
                .unwrap_or(NonZeroUsize::MIN),
            max_transmissions: MAX_TRANSMISSIONS,
            suspect_to_down_after: self.suspect_to_down,
            remove_down_after: Some(self.remove_down_after),
            max_packet_size: MAX_PACKET_SIZE,
            // Tell a node we declared Down so it renews its identity and rejoins instead of
            // talking into the void.
            notify_down_members: true,
            periodic_announce: Some(foca::PeriodicParams {
                frequency: ANNOUNCE_INTERVAL,
                num_members: NonZeroUsize::MIN,
            }),
            periodic_announce_to_down_members: Some(foca::PeriodicParams {
                frequency: ANNOUNCE_DOWN_INTERVAL,
                num_members: ANNOUNCE_DOWN_FANOUT,
            }),
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: GOSSIP_INTERVAL,
                num_members: GOSSIP_FANOUT,
            }),
        }
    }
}

impl fmt::Debug for MembershipConfig {
    // Hand-written so the secret never ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MembershipConfig")
            .field("node_id", &self.node_id)
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .field("seeds", &self.seeds)
            .field("secret", &"<redacted>")
            .field("meta", &self.meta)
            .field("probe_period", &self.probe_period)
            .field("probe_rtt", &self.probe_rtt)
            .field("suspect_to_down", &self.suspect_to_down)
            .field("num_indirect_probes", &self.num_indirect_probes)
            .field("remove_down_after", &self.remove_down_after)
            .finish()
    }
}
