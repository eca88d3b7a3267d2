//! The member table we expose, and the Up/Down/Updated events derived from it.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use foca::{Member, State};
use serde::Serialize;

use super::{identity::NodeIdentity, meta::MetaRecord, meta::NodeMeta};

/// Liveness of a member as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Answering probes.
    Alive,
    /// Missed a probe (directly and through helpers); still treated as alive until it
    /// refutes the suspicion or the suspicion timeout declares it Down.
    Suspect,
    /// Declared failed, left the cluster, or replaced by a different node on its address.
    Down,
}

impl From<State> for MemberStatus {
    fn from(state: State) -> Self {
        match state {
            State::Alive => Self::Alive,
            State::Suspect => Self::Suspect,
            State::Down => Self::Down,
        }
    }
}

/// One member as this node sees it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// Colony node id.
    pub node_id: u64,
    /// Gossip (UDP) address; unique per member.
    pub gossip_addr: SocketAddr,
    /// Latest metadata received for this node id; `None` until its first broadcast arrives.
    pub meta: Option<NodeMeta>,
    /// Liveness.
    pub status: MemberStatus,
    /// SWIM incarnation: bumped by the member each time it refutes a suspicion.
    pub incarnation: u64,
    /// The identity's boot stamp (µs since the Unix epoch at process start, bumped when
    /// the node had to renew its identity); tells a restarted process from its previous life.
    pub boot: u64,
    /// Milliseconds since we last received an authenticated packet from this member's
    /// address; `None` for ourselves and for members we only heard about through others.
    pub last_seen_ms_ago: Option<u64>,
    /// This entry is the local node (always `Alive` with our current metadata).
    pub is_self: bool,
}

/// A change in the set of live members, for consumers that react (connect sessions,
/// recompute ownership). [`super::Membership::members`] stays the source of truth.
///
/// Events are about other members only, never about ourselves. Each process incarnation of
/// a member (identity = node id + address + boot) gets at most one `Up` and then one `Down`:
/// a restarted node therefore yields `Down(old)` (unless already reported) then `Up(new)`.
#[derive(Debug, Clone)]
pub enum MemberEvent {
    /// A member is alive and its metadata (from this process incarnation) is known, so the
    /// consumer can use `meta` to reach it.
    Up(MemberView),
    /// A member that was reported `Up` is Down, left, or was replaced on its address.
    Down(MemberView),
    /// The metadata of a member reported `Up` changed (e.g. its state became `Draining`).
    Updated(MemberView),
}

/// Internal snapshot entry: a view plus the instant behind `last_seen_ms_ago`, which is
/// computed when [`super::Membership::members`] is called.
#[derive(Debug, Clone)]
pub(crate) struct ViewEntry {
    pub(crate) view: MemberView,
    pub(crate) last_seen: Option<Instant>,
}

impl ViewEntry {
    pub(crate) fn render(&self, now: Instant) -> MemberView {
        let mut view = self.view.clone();
        view.last_seen_ms_ago = self
            .last_seen
            .map(|at| millis(now.saturating_duration_since(at)));
        view
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A member that was replaced on its address by a *different* node id (wiped node): foca
/// forgets the old identity on replacement, but the old node id must still read as Down
/// for a while, like any other Down member.
#[derive(Debug, Clone)]
struct Tombstone {
    id: NodeIdentity,
    incarnation: u16,
    since: Instant,
}

/// The metadata of `id`'s own process incarnation or a later one; `None` while the book only
/// has what an earlier process of the same node announced. Peers would otherwise route to,
/// push buckets to and count a just-restarted node as `active` while it is still joining.
fn meta_of(book: &HashMap<u64, MetaRecord>, id: &NodeIdentity) -> Option<NodeMeta> {
    book.get(&id.node_id)
        .filter(|r| r.boot >= id.boot)
        .map(|r| r.meta.clone())
}

/// Bookkeeping that turns foca's member table plus the metadata book into events and the
/// published member list. Owned by the agent loop; not shared.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Members reported `Up` (and not yet `Down`), by address, with the meta we reported.
    announced: HashMap<SocketAddr, (NodeIdentity, NodeMeta)>,
    /// Status at the previous reconcile, to count transitions into Suspect.
    statuses: HashMap<SocketAddr, (NodeIdentity, MemberStatus)>,
    /// Replaced node ids still shown as Down, by node id.
    tombstones: HashMap<u64, Tombstone>,
    /// Members under suspicion: since when, and at which incarnation.
    suspected_since: HashMap<SocketAddr, (NodeIdentity, u16, Instant)>,
}

/// What one reconcile produced.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) events: Vec<MemberEvent>,
    pub(crate) suspected: u64,
}

impl Tracker {
    /// foca replaced `old` by `new` on the same address.
    pub(crate) fn renamed(&mut self, old: &NodeIdentity, new: &NodeIdentity, now: Instant) {
        if old.node_id != new.node_id {
            self.tombstones.insert(
                old.node_id,
                Tombstone {
                    id: old.clone(),
                    incarnation: 0,
                    since: now,
                },
            );
        }
    }

    /// Forgets tombstones older than `ttl` (mirrors foca's `remove_down_after`).
    pub(crate) fn expire(&mut self, now: Instant, ttl: Duration) {
        self.tombstones
            .retain(|_, t| now.saturating_duration_since(t.since) < ttl);
    }

    /// Node ids the view still needs metadata for (so the book can forget the rest).
    pub(crate) fn tombstoned(&self) -> impl Iterator<Item = u64> + '_ {
        self.tombstones.keys().copied()
    }

    /// Diffs foca's current member table (`members`, ourselves excluded) against what was
    /// reported before and returns the events to emit.
    pub(crate) fn reconcile(
        &mut self,
        members: &[Member<NodeIdentity>],
        book: &HashMap<u64, MetaRecord>,
        last_seen: &HashMap<SocketAddr, Instant>,
        now: Instant,
    ) -> Changes {
        let mut changes = Changes::default();
        let current: HashMap<SocketAddr, &Member<NodeIdentity>> =
            members.iter().map(|m| (m.id().addr, m)).collect();

        // A node id that reappears (e.g. moved address) no longer needs its tombstone.
        for m in members {
            self.tombstones.remove(&m.id().node_id);
        }

        // Down: reported members whose identity is gone from the table or is Down now.
        let gone: Vec<SocketAddr> = self
            .announced
            .iter()
            .filter(|(addr, (id, _))| {
                !current
                    .get(*addr)
                    .is_some_and(|m| m.id() == id && m.state() != State::Down)
            })
            .map(|(addr, _)| *addr)
            .collect();
        for addr in gone {
            let Some((id, reported)) = self.announced.remove(&addr) else {
                continue;
            };
            let incarnation = current
                .get(&addr)
                .filter(|m| m.id() == &id)
                .map_or(0, |m| m.incarnation());
            let meta = book.get(&id.node_id).map_or(reported, |r| r.meta.clone());
            tracing::info!(node_id = id.node_id, addr = %id.addr, boot = id.boot, "member down");
            let view = member_view(
                &id,
                MemberStatus::Down,
                incarnation,
                Some(meta),
                last_seen,
                now,
            );
            changes.events.push(MemberEvent::Down(view));
        }

        for m in members {
            let id = m.id();
            let status = MemberStatus::from(m.state());

            // Count each transition into Suspect once per identity.
            let was_suspect = self
                .statuses
                .get(&id.addr)
                .is_some_and(|(prev_id, prev)| prev_id == id && *prev == MemberStatus::Suspect);
            if status == MemberStatus::Suspect && !was_suspect {
                tracing::info!(node_id = id.node_id, addr = %id.addr, "member suspected");
                changes.suspected += 1;
            }

            if status == MemberStatus::Down {
                continue;
            }
            let record = book.get(&id.node_id);
            match self.announced.get_mut(&id.addr) {
                Some((_, reported)) => {
                    // Same identity (others were moved out above): report meta changes.
                    if let Some(record) = record.filter(|r| r.meta != *reported) {
                        *reported = record.meta.clone();
                        tracing::info!(
                            node_id = id.node_id,
                            state = ?record.meta.state,
                            "member metadata updated"
                        );
                        let view = member_view(
                            id,
                            status,
                            m.incarnation(),
                            Some(record.meta.clone()),
                            last_seen,
                            now,
                        );
                        changes.events.push(MemberEvent::Updated(view));
                    }
                }
                None => {
                    // Up only once metadata from this process incarnation (or later) is
                    // here, so the consumer never connects to addresses of a previous life.
                    if let Some(record) = record.filter(|r| r.boot >= id.boot) {
                        tracing::info!(
                            node_id = id.node_id,
                            addr = %id.addr,
                            boot = id.boot,
                            version = %record.meta.version,
                            "member up"
                        );
                        self.announced
                            .insert(id.addr, (id.clone(), record.meta.clone()));
                        let view = member_view(
                            id,
                            status,
                            m.incarnation(),
                            Some(record.meta.clone()),
                            last_seen,
                            now,
                        );
                        changes.events.push(MemberEvent::Up(view));
                    }
                }
            }
        }

        self.statuses = members
            .iter()
            .map(|m| (m.id().addr, (m.id().clone(), MemberStatus::from(m.state()))))
            .collect();
        let before = std::mem::take(&mut self.suspected_since);
        for m in members.iter().filter(|m| m.state() == State::Suspect) {
            let (id, incarnation) = (m.id(), m.incarnation());
            let since = before
                .get(&id.addr)
                .filter(|(i, n, _)| i == id && *n == incarnation)
                .map_or(now, |(_, _, since)| *since);
            self.suspected_since
                .insert(id.addr, (id.clone(), incarnation, since));
        }
        changes
    }

    /// Members suspected, at the same incarnation, for longer than `limit`: foca declares a
    /// suspect Down after `suspect_to_down`, so these are suspicions whose timer foca dropped.
    /// It drops every pending timer when our identity changes (a renewal after being
    /// declared Down) or when it loses its last live member, and a suspect that never hears
    /// of the suspicion then stays Suspect for good: not an owner in our view while the
    /// others route to it.
    pub(crate) fn overdue_suspects(
        &self,
        now: Instant,
        limit: Duration,
    ) -> Vec<(NodeIdentity, u16)> {
        self.suspected_since
            .values()
            .filter(|(_, _, since)| now.saturating_duration_since(*since) > limit)
            .map(|(id, incarnation, _)| (id.clone(), *incarnation))
            .collect()
    }

    /// The member list to publish: foca's table plus tombstones, ourselves excluded.
    ///
    /// A member's metadata is shown only once its current process has announced it
    /// (see [`meta_of`]): a restarted node is listed without metadata, not as its previous
    /// life's `active`, until its own (`joining`) arrives.
    pub(crate) fn entries(
        &self,
        members: &[Member<NodeIdentity>],
        book: &HashMap<u64, MetaRecord>,
        last_seen: &HashMap<SocketAddr, Instant>,
    ) -> Vec<ViewEntry> {
        let mut entries: Vec<ViewEntry> = members
            .iter()
            .map(|m| {
                let id = m.id();
                ViewEntry {
                    view: MemberView {
                        node_id: id.node_id,
                        gossip_addr: id.addr,
                        meta: meta_of(book, id),
                        status: m.state().into(),
                        incarnation: m.incarnation().into(),
                        boot: id.boot,
                        last_seen_ms_ago: None,
                        is_self: false,
                    },
                    last_seen: last_seen.get(&id.addr).copied(),
                }
            })
            .collect();
        for t in self.tombstones.values() {
            entries.push(ViewEntry {
                view: MemberView {
                    node_id: t.id.node_id,
                    gossip_addr: t.id.addr,
                    meta: book.get(&t.id.node_id).map(|r| r.meta.clone()),
                    status: MemberStatus::Down,
                    incarnation: t.incarnation.into(),
                    boot: t.id.boot,
                    last_seen_ms_ago: None,
                    is_self: false,
                },
                // The address now belongs to someone else; its last-seen is not ours.
                last_seen: None,
            });
        }
        entries.sort_by_key(|e| (e.view.node_id, e.view.gossip_addr, e.view.boot));
        entries
    }
}

fn member_view(
    id: &NodeIdentity,
    status: MemberStatus,
    incarnation: u16,
    meta: Option<NodeMeta>,
    last_seen: &HashMap<SocketAddr, Instant>,
    now: Instant,
) -> MemberView {
    MemberView {
        node_id: id.node_id,
        gossip_addr: id.addr,
        meta,
        status,
        incarnation: incarnation.into(),
        boot: id.boot,
        last_seen_ms_ago: last_seen
            .get(&id.addr)
            .map(|at| millis(now.saturating_duration_since(*at))),
        is_self: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::meta::NodeState;

    fn id(node_id: u64, port: u16, boot: u64) -> NodeIdentity {
        NodeIdentity {
            node_id,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            boot,
        }
    }

    fn record(node_id: u64, boot: u64, state: NodeState) -> MetaRecord {
        MetaRecord {
            boot,
            seq: 1,
            meta: NodeMeta {
                node_id,
                http_addr: String::new(),
                raft_addr: String::new(),
                version: "1".into(),
                state,
                cluster_addr: String::new(),
                features: Vec::new(),
            },
            received_at: Instant::now(),
        }
    }

    fn kinds(changes: &Changes) -> Vec<&'static str> {
        changes
            .events
            .iter()
            .map(|e| match e {
                MemberEvent::Up(_) => "up",
                MemberEvent::Down(_) => "down",
                MemberEvent::Updated(_) => "updated",
            })
            .collect()
    }

    #[test]
    fn up_waits_for_fresh_meta_then_updated_then_down() {
        let mut t = Tracker::default();
        let seen = HashMap::new();
        let now = Instant::now();
        let a = id(1, 1000, 50);
        let mut book = HashMap::new();
        let alive = [Member::alive(a.clone())];

        // Alive but no meta yet, then only meta from a previous life: no Up.
        assert!(kinds(&t.reconcile(&alive, &book, &seen, now)).is_empty());
        book.insert(1, record(1, 40, NodeState::Active));
        assert!(kinds(&t.reconcile(&alive, &book, &seen, now)).is_empty());

        book.insert(1, record(1, 50, NodeState::Active));
        assert_eq!(kinds(&t.reconcile(&alive, &book, &seen, now)), ["up"]);
        assert!(kinds(&t.reconcile(&alive, &book, &seen, now)).is_empty());

        book.insert(1, record(1, 50, NodeState::Draining));
        assert_eq!(kinds(&t.reconcile(&alive, &book, &seen, now)), ["updated"]);

        let suspect = [Member::new(a.clone(), 0, State::Suspect)];
        let c = t.reconcile(&suspect, &book, &seen, now);
        assert!(kinds(&c).is_empty());
        assert_eq!(c.suspected, 1);
        assert_eq!(t.reconcile(&suspect, &book, &seen, now).suspected, 0);

        let down = [Member::down(a)];
        assert_eq!(kinds(&t.reconcile(&down, &book, &seen, now)), ["down"]);
        assert!(kinds(&t.reconcile(&down, &book, &seen, now)).is_empty());
    }

    #[test]
    fn a_suspicion_is_overdue_only_past_the_limit_at_the_same_incarnation() {
        let mut t = Tracker::default();
        let seen = HashMap::new();
        let book = HashMap::from([(1, record(1, 50, NodeState::Active))]);
        let a = id(1, 1000, 50);
        let start = Instant::now();
        let limit = Duration::from_secs(2);
        let suspect = |inc| [Member::new(a.clone(), inc, State::Suspect)];

        t.reconcile(&suspect(3), &book, &seen, start);
        t.reconcile(&suspect(3), &book, &seen, start + Duration::from_secs(1));
        assert!(t.overdue_suspects(start + limit, limit).is_empty());
        let later = start + Duration::from_secs(3);
        assert_eq!(t.overdue_suspects(later, limit), [(a.clone(), 3)]);
        // Refuted (a higher incarnation) and suspected again: the clock starts over.
        t.reconcile(&suspect(4), &book, &seen, later);
        assert!(t
            .overdue_suspects(later + Duration::from_secs(1), limit)
            .is_empty());
        // Alive again: nothing overdue.
        t.reconcile(
            &[Member::new(a.clone(), 5, State::Alive)],
            &book,
            &seen,
            later,
        );
        assert!(t
            .overdue_suspects(later + Duration::from_secs(9), limit)
            .is_empty());
    }

    #[test]
    fn restart_is_down_then_up_and_wiped_node_leaves_tombstone() {
        let mut t = Tracker::default();
        let seen = HashMap::new();
        let now = Instant::now();
        let old = id(1, 1000, 50);
        let mut book = HashMap::from([(1, record(1, 50, NodeState::Active))]);
        assert_eq!(
            kinds(&t.reconcile(&[Member::alive(old.clone())], &book, &seen, now)),
            ["up"]
        );

        // Same node id restarted: old identity reported down, new one up once its meta is in.
        // Until then it is listed without metadata, not as its previous life's `active`.
        let restarted = id(1, 1000, 60);
        let c = t.reconcile(&[Member::alive(restarted.clone())], &book, &seen, now);
        assert_eq!(kinds(&c), ["down"]);
        let listed = t.entries(&[Member::alive(restarted.clone())], &book, &seen);
        assert_eq!(listed.len(), 1);
        assert!(listed[0].view.meta.is_none(), "{:?}", listed[0].view);
        book.insert(1, record(1, 60, NodeState::Joining));
        let c = t.reconcile(&[Member::alive(restarted.clone())], &book, &seen, now);
        assert_eq!(kinds(&c), ["up"]);
        let listed = t.entries(&[Member::alive(restarted.clone())], &book, &seen);
        assert_eq!(
            listed[0].view.meta.as_ref().map(|m| m.state),
            Some(NodeState::Joining)
        );

        // Wiped node (new id) on the same address: node 1 stays listed as Down.
        let wiped = id(2, 1000, 70);
        t.renamed(&restarted, &wiped, now);
        book.insert(2, record(2, 70, NodeState::Joining));
        let members = [Member::alive(wiped)];
        assert_eq!(
            kinds(&t.reconcile(&members, &book, &seen, now)),
            ["down", "up"]
        );
        let entries = t.entries(&members, &book, &seen);
        let statuses: Vec<_> = entries
            .iter()
            .map(|e| (e.view.node_id, e.view.status))
            .collect();
        assert_eq!(
            statuses,
            [(1, MemberStatus::Down), (2, MemberStatus::Alive)]
        );
        t.expire(now + Duration::from_secs(61), Duration::from_secs(60));
        assert_eq!(t.entries(&members, &book, &seen).len(), 1);
    }
}
