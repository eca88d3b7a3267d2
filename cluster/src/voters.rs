//! Keeping the Raft voter set healthy: the leader adds joiners as learners, promotes
//! caught-up learners to reach 3 voters (5 once at least 5 members are healthy), replaces a
//! voter that has been down longer than the grace period, and drops long-gone learners.
//!
//! [`plan`] is pure (unit-tested); [`run`] feeds it the gossip view and Raft metrics on an
//! interval and applies at most one membership change per round, because openraft
//! serialises membership changes anyway.

use crate::membership::{MemberStatus, Membership, NodeState};
use crate::raft::{NodeId, NodeInfo};
use crate::RaftNode;
use openraft::ChangeMembers;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How a Raft member looks from gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHealth {
    /// Node id.
    pub node_id: NodeId,
    /// Alive in gossip and not draining: may serve as voter.
    pub healthy: bool,
    /// Where to reach it (from its gossiped metadata).
    pub info: NodeInfo,
}

/// Everything one planning round looks at.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// This node, the leader.
    pub leader: NodeId,
    /// Current voters.
    pub voters: BTreeSet<NodeId>,
    /// Current learners.
    pub learners: BTreeSet<NodeId>,
    /// Members gossip knows as alive (including the leader).
    pub alive: Vec<PeerHealth>,
    /// How long each Raft member has been down or absent in gossip (absent = not down).
    pub down_for: BTreeMap<NodeId, Duration>,
    /// Entries each follower is behind the leader.
    pub lag: BTreeMap<NodeId, u64>,
    /// How long a voter may be down before it is replaced.
    pub grace: Duration,
    /// A learner this far behind or closer may be promoted.
    pub max_promote_lag: u64,
    /// Addresses of the Raft members as the membership config has them.
    pub known: BTreeMap<NodeId, NodeInfo>,
}

/// One membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add a node as a learner.
    AddLearner(NodeId, NodeInfo),
    /// Make exactly these nodes voters (removed voters stay as learners).
    SetVoters(BTreeSet<NodeId>),
    /// Remove these learners from the cluster.
    RemoveLearners(BTreeSet<NodeId>),
    /// Update the addresses of members that came back elsewhere (a restarted container or
    /// pod gets a new IP): the leader would keep replicating to the old address.
    UpdateAddresses(BTreeMap<NodeId, NodeInfo>),
}

/// Voters wanted: 5 when at least 5 members are healthy, else 3.
pub fn target_voters(healthy_members: usize) -> usize {
    if healthy_members >= 5 {
        5
    } else {
        3
    }
}

/// Decides the next membership change, if any.
pub fn plan(input: &PlanInput) -> Option<Action> {
    let members: BTreeSet<NodeId> = input.voters.union(&input.learners).copied().collect();
    let healthy: BTreeSet<NodeId> = input
        .alive
        .iter()
        .filter(|p| p.healthy)
        .map(|p| p.node_id)
        .chain(std::iter::once(input.leader))
        .collect();

    // 0. Members gossip shows at another address than the membership config has.
    let moved: BTreeMap<NodeId, NodeInfo> = input
        .alive
        .iter()
        .filter(|p| !p.info.raft_addr.is_empty() && p.node_id != input.leader)
        .filter(|p| input.known.get(&p.node_id).is_some_and(|k| *k != p.info))
        .map(|p| (p.node_id, p.info.clone()))
        .collect();
    if !moved.is_empty() {
        return Some(Action::UpdateAddresses(moved));
    }

    // 1. Newcomers become learners first (they catch up before they can vote).
    if let Some(p) = input
        .alive
        .iter()
        .find(|p| p.healthy && !members.contains(&p.node_id) && !p.info.raft_addr.is_empty())
    {
        return Some(Action::AddLearner(p.node_id, p.info.clone()));
    }

    let down_past_grace = |id: &NodeId| input.down_for.get(id).is_some_and(|d| *d >= input.grace);
    // The leader has no lag entry of its own; it is caught up by definition (a leader
    // that gave up its seat and came back still leading must get it back).
    let caught_up = |id: &NodeId| {
        *id == input.leader
            || input
                .lag
                .get(id)
                .is_some_and(|l| *l <= input.max_promote_lag)
    };

    // 2. The voter set we want: keep voters that are healthy or only briefly down, then fill
    //    up to the target with healthy, caught-up learners.
    // A member that is only suspect, or down for less than the grace period, still counts:
    // the voter set must not shrink during a transient failure (a failover, a restart).
    let counted = members
        .iter()
        .filter(|id| healthy.contains(id) || !down_past_grace(id))
        .count();
    let target = target_voters(counted);
    let mut want: BTreeSet<NodeId> = input
        .voters
        .iter()
        .filter(|id| **id == input.leader || !down_past_grace(id))
        .copied()
        .collect();
    let mut candidates: Vec<NodeId> = input
        .learners
        .iter()
        .filter(|id| healthy.contains(id) && caught_up(id))
        .copied()
        .collect();
    candidates.sort_by_key(|id| (input.lag.get(id).copied().unwrap_or(u64::MAX), *id));
    for c in candidates {
        if want.len() >= target {
            break;
        }
        want.insert(c);
    }
    // Shrink (e.g. 5 -> 3 when fewer than 5 are healthy): drop down voters first, then the
    // highest ids; never the leader.
    while want.len() > target {
        let victim = want
            .iter()
            .filter(|id| **id != input.leader)
            .max_by_key(|id| (!healthy.contains(id), **id))
            .copied();
        match victim {
            Some(v) => {
                want.remove(&v);
            }
            None => break,
        }
    }
    // Removing a dead voter without a replacement only helps if at least 3 voters remain.
    if want.len() < 3 && want.len() < input.voters.len() {
        want = input.voters.clone();
    }
    if want != input.voters && !want.is_empty() {
        return Some(Action::SetVoters(want));
    }

    // 3. Learners gone longer than the grace period stop being replicated to; they are
    //    added again if they come back.
    let gone: BTreeSet<NodeId> = input
        .learners
        .iter()
        .filter(|id| down_past_grace(id))
        .copied()
        .collect();
    if !gone.is_empty() {
        return Some(Action::RemoveLearners(gone));
    }
    None
}

/// Settings of the voter manager.
#[derive(Debug, Clone)]
pub struct VoterSettings {
    /// How long a voter may be down before it is replaced.
    pub grace: Duration,
    /// How often the leader looks.
    pub interval: Duration,
    /// A learner this far behind or closer may be promoted.
    pub max_promote_lag: u64,
}

/// Runs the manager until `stop` turns true. Only acts while this node is the leader.
pub async fn run(
    raft: RaftNode,
    membership: Membership,
    settings: VoterSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut down_since: HashMap<NodeId, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let status = raft.status();
        if status.leader != Some(status.node_id) {
            down_since.clear();
            continue;
        }
        let views = membership.members();
        // A draining leader changes nothing (it is about to give up its seat itself).
        if views.iter().any(|v| {
            v.is_self
                && v.meta
                    .as_ref()
                    .is_some_and(|m| m.state == NodeState::Draining)
        }) {
            continue;
        }
        let now = Instant::now();
        let alive: Vec<PeerHealth> = views
            .iter()
            .filter(|v| v.status != MemberStatus::Down)
            .filter_map(|v| {
                let meta = v.meta.as_ref()?;
                Some(PeerHealth {
                    node_id: v.node_id,
                    healthy: v.status == MemberStatus::Alive && meta.state != NodeState::Draining,
                    info: NodeInfo {
                        raft_addr: meta.raft_addr.clone(),
                        http_addr: meta.http_addr.clone(),
                    },
                })
            })
            .collect();
        let up: BTreeSet<NodeId> = alive.iter().map(|p| p.node_id).collect();
        let mut down_for = BTreeMap::new();
        for (id, _) in &status.members {
            if *id == status.node_id || up.contains(id) {
                down_since.remove(id);
            } else {
                let since = *down_since.entry(*id).or_insert(now);
                down_for.insert(*id, now.duration_since(since));
            }
        }
        let input = PlanInput {
            leader: status.node_id,
            voters: status.voters.iter().copied().collect(),
            learners: status.learners.iter().copied().collect(),
            alive,
            down_for,
            lag: status.replication_lag.clone(),
            grace: settings.grace,
            max_promote_lag: settings.max_promote_lag,
            known: status
                .members
                .iter()
                .map(|(id, n)| (*id, n.clone()))
                .collect(),
        };
        let Some(action) = plan(&input) else { continue };
        tracing::info!(?action, voters = ?input.voters, learners = ?input.learners, "changing raft membership");
        let r = raft.raft();
        let result = match action {
            Action::AddLearner(id, info) => r.add_learner(id, info, false).await.map(|_| ()),
            Action::SetVoters(v) => r.change_membership(v, true).await.map(|_| ()),
            Action::RemoveLearners(gone) => r
                .change_membership(ChangeMembers::RemoveNodes(gone), false)
                .await
                .map(|_| ()),
            Action::UpdateAddresses(nodes) => r
                .change_membership(ChangeMembers::SetNodes(nodes), false)
                .await
                .map(|_| ()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "raft membership change failed; will retry");
        }
    }
}

/// Drain of the leader: it gives up its voter seat and goes quiet so a follower takes
/// over (openraft 0.9 has no leadership transfer; see [`RaftNode::stop_leading`]). A healthy, caught-up learner takes the seat when there is one;
/// otherwise the cluster runs on one voter fewer until the node comes back, when the
/// leader promotes it again. Followers keep their seat: a node restarted in a rolling
/// upgrade comes back as the same voter. Waits up to `within` for another leader and
/// returns whether leadership moved.
pub async fn step_down(raft: &RaftNode, membership: &Membership, within: Duration) -> bool {
    let status = raft.status();
    if status.leader != Some(status.node_id) {
        return false;
    }
    let mut voters: BTreeSet<NodeId> = status
        .voters
        .iter()
        .copied()
        .filter(|v| *v != status.node_id)
        .collect();
    if voters.is_empty() {
        return false; // alone: nobody to hand over to
    }
    let healthy: BTreeSet<NodeId> = membership
        .members()
        .iter()
        .filter(|v| {
            v.status == MemberStatus::Alive
                && v.meta
                    .as_ref()
                    .is_some_and(|m| m.state == NodeState::Active)
        })
        .map(|v| v.node_id)
        .collect();
    if let Some(l) = status
        .learners
        .iter()
        .filter(|l| healthy.contains(l))
        .min_by_key(|l| status.replication_lag.get(l).copied().unwrap_or(u64::MAX))
    {
        voters.insert(*l);
    }
    tracing::info!(?voters, "drain: giving up the leader's voter seat");
    // Bounded: a leader that lost its quorum would wait for the change for ever.
    match tokio::time::timeout(within, raft.raft().change_membership(voters, true)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "drain: could not give up the voter seat"),
        Err(_) => tracing::warn!("drain: giving up the voter seat timed out"),
    }
    // A leader removed from the voters keeps leading in openraft 0.9: go quiet so the
    // voters elect one of their own.
    raft.stop_leading();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let leader = raft.status().leader;
        if leader.is_some() && leader != Some(status.node_id) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_that_gave_up_its_seat_takes_it_back() {
        // Node 1 leads as a learner (it drained and came back before anyone took over).
        let i = input(&[2, 3], &[1], &[1, 2, 3]);
        assert_eq!(plan(&i), Some(Action::SetVoters(set(&[1, 2, 3]))));
    }

    #[test]
    fn a_member_back_at_another_address_is_updated_first() {
        let mut i = input(&[1, 2, 3], &[], &[1, 2, 3]);
        i.known = [1, 2, 3].iter().map(|id| (*id, peer(*id).info)).collect();
        assert_eq!(plan(&i), None, "addresses agree: nothing to do");
        let mut moved = peer(2);
        moved.info.raft_addr = "elsewhere:7948".into();
        i.alive[1] = moved.clone();
        assert_eq!(
            plan(&i),
            Some(Action::UpdateAddresses([(2, moved.info)].into()))
        );
    }

    fn peer(id: NodeId) -> PeerHealth {
        PeerHealth {
            node_id: id,
            healthy: true,
            info: NodeInfo {
                raft_addr: format!("r{id}"),
                http_addr: format!("h{id}"),
            },
        }
    }

    fn input(voters: &[NodeId], learners: &[NodeId], alive: &[NodeId]) -> PlanInput {
        PlanInput {
            leader: 1,
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
            alive: alive.iter().map(|id| peer(*id)).collect(),
            down_for: BTreeMap::new(),
            lag: voters.iter().chain(learners).map(|id| (*id, 0)).collect(),
            grace: Duration::from_secs(10),
            max_promote_lag: 100,
            known: BTreeMap::new(),
        }
    }

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn joiners_become_learners_then_voters_up_to_three() {
        let i = input(&[1], &[], &[1, 2, 3]);
        assert_eq!(plan(&i), Some(Action::AddLearner(2, peer(2).info)));
        let i = input(&[1], &[2, 3], &[1, 2, 3]);
        assert_eq!(plan(&i), Some(Action::SetVoters(set(&[1, 2, 3]))));
        let i = input(&[1, 2, 3], &[4], &[1, 2, 3, 4]);
        assert_eq!(plan(&i), None, "4 healthy members keep 3 voters");
    }

    #[test]
    fn five_healthy_members_get_five_voters() {
        let i = input(&[1, 2, 3], &[4, 5, 6], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(plan(&i), Some(Action::SetVoters(set(&[1, 2, 3, 4, 5]))));
    }

    #[test]
    fn lagging_learners_are_not_promoted() {
        let mut i = input(&[1], &[2, 3], &[1, 2, 3]);
        i.lag.insert(3, 1_000);
        assert_eq!(plan(&i), Some(Action::SetVoters(set(&[1, 2]))));
    }

    #[test]
    fn a_voter_down_past_grace_is_replaced_by_a_learner() {
        let mut i = input(&[1, 2, 3, 4, 5], &[6], &[1, 2, 4, 5, 6]);
        i.down_for.insert(3, Duration::from_secs(9));
        assert_eq!(plan(&i), None, "within grace nothing changes");
        i.down_for.insert(3, Duration::from_secs(11));
        assert_eq!(plan(&i), Some(Action::SetVoters(set(&[1, 2, 4, 5, 6]))));
    }

    #[test]
    fn a_suspect_or_briefly_down_voter_changes_nothing() {
        // Node 3 just died: gossip lists it as suspect (not healthy) or down within grace.
        let mut i = input(&[1, 2, 3, 4, 5], &[], &[1, 2, 3, 4, 5]);
        i.alive[2].healthy = false;
        assert_eq!(plan(&i), None, "suspect: keep 5 voters");
        let mut i = input(&[1, 2, 3, 4, 5], &[], &[1, 2, 4, 5]);
        i.down_for.insert(3, Duration::from_secs(5));
        assert_eq!(plan(&i), None, "down within grace: keep 5 voters");
    }

    #[test]
    fn without_a_spare_five_voters_shrink_to_three_and_three_stay_three() {
        let mut i = input(&[1, 2, 3, 4, 5], &[], &[1, 2, 4, 5]);
        i.down_for.insert(3, Duration::from_secs(60));
        assert_eq!(plan(&i), Some(Action::SetVoters(set(&[1, 2, 4]))));
        let mut i = input(&[1, 2, 3], &[], &[1, 2]);
        i.down_for.insert(3, Duration::from_secs(60));
        assert_eq!(
            plan(&i),
            None,
            "removing the dead voter would leave 2 voters: keep it"
        );
    }

    #[test]
    fn a_returning_node_rejoins_as_learner_then_votes_when_needed() {
        // 3 was replaced and demoted to learner; back alive, 5 healthy -> promoted again.
        let i = input(&[1, 2, 4], &[3, 5], &[1, 2, 3, 4, 5]);
        assert_eq!(plan(&i), Some(Action::SetVoters(set(&[1, 2, 3, 4, 5]))));
    }

    #[test]
    fn learners_gone_past_grace_are_removed() {
        let mut i = input(&[1, 2, 3], &[4], &[1, 2, 3]);
        i.down_for.insert(4, Duration::from_secs(11));
        assert_eq!(plan(&i), Some(Action::RemoveLearners(set(&[4]))));
    }

    #[test]
    fn draining_or_addressless_peers_are_not_added() {
        let mut i = input(&[1, 2, 3], &[], &[1, 2, 3, 4, 5]);
        i.alive[3].healthy = false;
        i.alive[4].info.raft_addr.clear();
        assert_eq!(plan(&i), None);
    }
}
