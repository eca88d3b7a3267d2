//! Faults: a seeded schedule, and their injection into a running [`Cluster`].
//!
//! Every fault is healed before the next one starts, and the cluster must converge in
//! between (recorded as the fault's convergence time), so a 3-node cluster never loses
//! two nodes at once. The `*-minority` kinds hit a minority at once, by design.

use crate::cluster::Cluster;
use crate::fault::{Kind, DELAY_MS, LOSS_PERCENT};
use crate::history::{FaultEvent, History};
use anyhow::Result;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Which node a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The Raft leader when the fault starts.
    Leader,
    /// A node that is not the leader (the seeded index, moved off the leader).
    Follower,
    /// The seeded index, whatever its role.
    Any,
}

/// One planned fault.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// What.
    pub kind: Kind,
    /// Which node.
    pub target: Target,
    /// Seeded node index (see [`Target`]).
    pub node: usize,
    /// Planned start, ms since the run started.
    pub at_ms: u64,
    /// How long the fault lasts before it is healed.
    pub hold_ms: u64,
}

/// Each step of a rolling restart or upgrade: the node starts again this long after the
/// SIGTERM at the earliest (at once when its drain took longer).
const ROLL_DOWN_MS: u64 = 1000;

/// Room for one rolling step (drain, restart, convergence) when spreading the rounds.
const ROLL_STEP_MS: u64 = 8000;

/// The seeded schedule: `smoke` runs each kind once in a seeded order (the graceful
/// restart on a follower: see `drain-leader`); `mixed` draws kinds and targets at random
/// until `duration` is filled (faults that need no root); `impaired` delays and then drops
/// the leader's and a follower's messages; `drain-leader` gracefully restarts the leader
/// repeatedly;
/// `minority` kills and cuts off a minority at once, each with and without the leader in it;
/// `rolling-restart` restarts every node in turn (last index first, as a StatefulSet
/// rolls), as many rounds as fit; `rolling-upgrade` does one such round onto the new
/// binary.
pub fn plan(
    scenario: &str,
    seed: u64,
    nodes: usize,
    warmup: Duration,
    duration: Duration,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    if matches!(scenario, "rolling-restart" | "rolling-upgrade") {
        let usable = duration.saturating_sub(warmup).as_millis() as u64;
        let (kind, rounds) = if scenario == "rolling-upgrade" {
            (Kind::Upgrade, 1)
        } else {
            let fit = usable / (ROLL_STEP_MS * nodes as u64);
            (Kind::GracefulRestart, fit.max(1) as usize)
        };
        let steps = rounds * nodes;
        let slot = usable / steps as u64;
        let base = warmup.as_millis() as u64;
        return (0..steps)
            .map(|i| Planned {
                kind,
                target: Target::Any,
                node: nodes - 1 - i % nodes,
                at_ms: base + i as u64 * slot,
                hold_ms: ROLL_DOWN_MS,
            })
            .collect();
    }
    let slot_ms = 12_000u64;
    let usable = duration.saturating_sub(warmup).as_millis() as u64;
    let n = (usable / slot_ms).max(1);
    let kinds: Vec<(Kind, Target)> = match scenario {
        "smoke" => {
            let mut k = Kind::ALL.to_vec();
            k.shuffle(&mut rng);
            k.into_iter()
                .map(|k| match k {
                    Kind::KillLeader => (k, Target::Leader),
                    Kind::GracefulRestart => (k, Target::Follower),
                    _ => (k, Target::Any),
                })
                .collect()
        }
        "impaired" => {
            let mut k = vec![
                (Kind::Delay, Target::Leader),
                (Kind::Delay, Target::Follower),
                (Kind::Loss, Target::Leader),
                (Kind::Loss, Target::Follower),
            ];
            k.shuffle(&mut rng);
            k
        }
        "minority" => {
            let mut k = vec![
                (Kind::KillMinority, Target::Leader),
                (Kind::KillMinority, Target::Follower),
                (Kind::PartitionMinority, Target::Leader),
                (Kind::PartitionMinority, Target::Follower),
            ];
            k.shuffle(&mut rng);
            k
        }
        "drain-leader" => (0..n)
            .map(|_| (Kind::GracefulRestart, Target::Leader))
            .collect(),
        "network" => {
            // Each network fault on a seeded node, and the two-way partition also on the
            // leader (its followers must elect a new one; it must step down).
            let mut k: Vec<(Kind, Target)> =
                Kind::NETWORK.iter().map(|&k| (k, Target::Any)).collect();
            k.push((Kind::NetPartition, Target::Leader));
            k.shuffle(&mut rng);
            k
        }
        _ => (0..n)
            .map(|_| {
                let k = Kind::MIXED[rng.random_range(0..Kind::MIXED.len())];
                let t = if k == Kind::KillLeader {
                    Target::Leader
                } else {
                    Target::Any
                };
                (k, t)
            })
            .collect(),
    };
    let slot = usable / kinds.len().max(1) as u64;
    let base = warmup.as_millis() as u64;
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, (kind, target))| Planned {
            kind,
            target,
            node: rng.random_range(0..nodes),
            at_ms: base + i as u64 * slot + rng.random_range(0..=slot / 10),
            hold_ms: rng.random_range(2000..=4000),
        })
        .collect()
}

/// Bound on each convergence wait.
pub const CONVERGE_BOUND: Duration = Duration::from_secs(30);

/// Injects `p` (the run is at `history`'s clock), heals it after its hold, and waits for
/// the cluster to converge.
///
/// `down` marks the nodes a careful client should avoid (killed, stopped, cut off) while
/// the fault lasts: the failover probe uses it.
pub fn inject(
    c: &mut Cluster,
    h: &History,
    p: &Planned,
    down: &[AtomicBool],
) -> Result<FaultEvent> {
    let leader = c.find_leader();
    let node = match (p.target, leader) {
        (Target::Leader, Some(l)) => l,
        (Target::Follower, Some(l)) if p.node == l => (l + 1) % c.len(),
        _ => p.node,
    };
    // The target and, for a minority, the next indices after it. A follower-targeted
    // minority starts on a follower, but may wrap round onto the leader.
    let group: Vec<usize> = (0..p.kind.width(c.len()))
        .map(|k| (node + k) % c.len())
        .collect();
    let mark = |up: bool| {
        for &j in &group {
            down[j].store(!up, Ordering::Relaxed);
        }
    };
    let others: Vec<usize> = (0..c.len()).filter(|j| !group.contains(j)).collect();
    let start_ms = h.now_ms();
    let mut note = String::new();
    let hold = Duration::from_millis(p.hold_ms);
    // When the fault was lifted: the restarted process listens, SIGCONT was sent, or the
    // fault switches were cleared.
    let mut heal_ms = None;
    match p.kind {
        Kind::Kill9Restart | Kind::KillLeader | Kind::KillMinority => {
            mark(false);
            for &j in &group {
                c.kill9(j)?;
            }
            std::thread::sleep(hold);
            for &j in &group {
                c.restart(j)?;
            }
            heal_ms = Some(h.now_ms());
            for &j in &group {
                // Best effort: convergence below reports a node that never gets ready.
                let _ = c.wait_ready(j);
            }
            mark(true);
        }
        Kind::Pause => {
            mark(false);
            c.pause(node, true)?;
            std::thread::sleep(hold);
            c.pause(node, false)?;
            mark(true);
        }
        Kind::GracefulRestart | Kind::Upgrade => {
            mark(false);
            let t = std::time::Instant::now();
            let (clean, status) = c.terminate(node, Duration::from_secs(20))?;
            note = format!(
                "SIGTERM: {} ({status}) after {:.1} s",
                if clean { "exited" } else { "did not exit" },
                t.elapsed().as_secs_f64()
            );
            if p.kind == Kind::Upgrade {
                c.upgrade(node)?;
            }
            std::thread::sleep(hold.saturating_sub(t.elapsed()));
            c.restart(node)?;
            heal_ms = Some(h.now_ms());
            // Best effort: convergence below reports a node that never gets ready.
            let _ = c.wait_ready(node);
            mark(true);
        }
        Kind::NetPartition | Kind::NetOneWay | Kind::NetLoss => {
            mark(false);
            c.net_fault(node, &others, p.kind)?;
            std::thread::sleep(hold);
            c.net_heal(node)?;
            mark(true);
        }
        Kind::Delay | Kind::Loss => {
            // Still serving (slowly, or flapping): clients keep using it.
            let (delay, loss) = if p.kind == Kind::Delay {
                (DELAY_MS, 0)
            } else {
                (0, LOSS_PERCENT)
            };
            c.impair(node, delay, loss)?;
            note = format!("outgoing Raft and gossip: +{delay} ms, {loss}% lost");
            std::thread::sleep(hold);
            c.impair(node, 0, 0)?;
        }
        Kind::Partition | Kind::PartitionMinority => {
            mark(false);
            for &j in &group {
                c.set_faults(j, &others, &others)?;
            }
            for &j in &others {
                c.set_faults(j, &group, &group)?;
            }
            std::thread::sleep(hold);
            for j in 0..c.len() {
                c.set_faults(j, &[], &[])?;
            }
            mark(true);
        }
    }
    let heal_ms = heal_ms.unwrap_or_else(|| h.now_ms());
    let (converged_ms, leader_after) = match c.wait_converged(CONVERGE_BOUND, false) {
        Ok(conv) => (Some(h.now_ms()), Some(conv.leader + 1)),
        Err(e) => {
            note = format!("{note} NOT CONVERGED: {e}");
            (None, None)
        }
    };
    Ok(FaultEvent {
        kind: p.kind.name().to_string(),
        node: node + 1,
        also: group.iter().skip(1).map(|j| j + 1).collect(),
        was_leader: leader == Some(node),
        leader_hit: leader.is_some_and(|l| group.contains(&l)),
        start_ms,
        heal_ms,
        converged_ms,
        leader_after,
        note: note.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolling_restart_takes_every_node_in_turn_from_the_highest_index() {
        let p = plan(
            "rolling-restart",
            1,
            3,
            Duration::from_secs(3),
            Duration::from_secs(51),
        );
        // 48 s usable, 8 s per node step: two rounds.
        let nodes: Vec<usize> = p.iter().map(|s| s.node).collect();
        assert_eq!(nodes, [2, 1, 0, 2, 1, 0]);
        assert!(p.iter().all(|s| s.kind == Kind::GracefulRestart));
        assert!(p.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        let up = plan(
            "rolling-upgrade",
            1,
            5,
            Duration::from_secs(3),
            Duration::from_secs(200),
        );
        assert_eq!(up.len(), 5, "one round, however long the run");
        assert!(up
            .iter()
            .all(|s| s.kind == Kind::Upgrade && !s.kind.is_crash_like()));
    }

    #[test]
    fn the_impaired_scenario_slows_and_drops_the_leader_and_a_follower() {
        let p = plan(
            "impaired",
            3,
            3,
            Duration::from_secs(3),
            Duration::from_secs(60),
        );
        assert_eq!(p.len(), 4);
        for kind in [Kind::Delay, Kind::Loss] {
            for target in [Target::Leader, Target::Follower] {
                assert!(p.iter().any(|s| s.kind == kind && s.target == target));
            }
        }
        assert!(p
            .iter()
            .all(|s| s.kind.is_partition_like() && s.kind.is_crash_like()));
        let mixed = plan(
            "mixed",
            5,
            3,
            Duration::from_secs(3),
            Duration::from_secs(600),
        );
        assert!(mixed.iter().all(|s| Kind::MIXED.contains(&s.kind)));
    }

    #[test]
    fn the_minority_scenario_kills_and_cuts_off_a_minority_with_and_without_the_leader() {
        let p = plan(
            "minority",
            2,
            5,
            Duration::from_secs(3),
            Duration::from_secs(60),
        );
        assert_eq!(p.len(), 4);
        for kind in [Kind::KillMinority, Kind::PartitionMinority] {
            for target in [Target::Leader, Target::Follower] {
                assert!(p.iter().any(|s| s.kind == kind && s.target == target));
            }
            assert_eq!(kind.width(5), 2);
            assert_eq!(kind.width(3), 1);
            assert_eq!(kind.width(7), 3);
        }
        assert_eq!(Kind::Partition.width(5), 1);
        assert!(Kind::KillMinority.is_crash_like() && !Kind::KillMinority.is_partition_like());
        assert!(Kind::PartitionMinority.is_partition_like());
    }

    #[test]
    fn the_network_scenario_cuts_the_leader_and_a_seeded_node() {
        let p = plan(
            "network",
            7,
            3,
            Duration::from_secs(3),
            Duration::from_secs(60),
        );
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|s| s.kind.is_partition_like()));
        assert!(p
            .iter()
            .any(|s| s.kind == Kind::NetPartition && s.target == Target::Leader));
        for k in Kind::EVERY {
            assert_eq!(
                Kind::EVERY.iter().filter(|o| o.name() == k.name()).count(),
                1
            );
        }
    }
}
