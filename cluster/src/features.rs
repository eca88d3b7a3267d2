//! Cluster-wide feature gates: cross-node behaviour a new binary turns on only when every
//! live member says it speaks it, so a cluster in the middle of a rolling upgrade keeps
//! using what the old binaries understand.
//!
//! Each binary gossips the features it speaks in its [`NodeMeta`](crate::membership::NodeMeta)
//! (`features`); [`enabled`] says whether every live member lists one. A feature name is
//! never reused for another meaning: a change that old binaries cannot handle gets a new
//! name (`...-v2`).

use crate::membership::{MemberStatus, MemberView};

/// Rate-limit bucket handoff and replication between nodes (the Router's `Pull`, `Handoff`
/// and `Replicate` messages). Without it, a new owner starts a bucket afresh.
pub const BUCKET_HANDOFF_V1: &str = "bucket-handoff-v1";

/// The Raft commands of evaluations and pricing (`SubmitEvaluation`, `SetPrice`, ...).
/// A binary without them cannot decode such a log entry: as leader it refuses the
/// forwarded proposal, as follower it could not apply it (and with a majority of old
/// followers nothing after it would commit). So they are proposed only once every Raft
/// member speaks them ([`lacking_for_log`]).
pub const RAFT_EVALUATIONS_V1: &str = "raft-evaluations-v1";

/// The Raft commands of tenant provider credentials (`PutCredential`,
/// `DeleteCredential`): proposed only once every Raft member speaks them, like
/// [`RAFT_EVALUATIONS_V1`].
pub const RAFT_CREDENTIALS_V1: &str = "raft-credentials-v1";

/// A tenant's evaluation limits in the log: `SubmitEvaluation` carries the caps on live
/// and stored evaluations (`max_live`, `max_stored`), which the state machine enforces,
/// and `DeleteEvaluation` frees stored ones. An older binary ignores the caps (and would
/// accept where a newer one refuses) and cannot decode the delete, so both are sent only
/// once every Raft member speaks this.
pub const RAFT_EVALUATION_LIMITS_V1: &str = "raft-evaluation-limits-v1";

/// Every feature this binary speaks.
pub const SUPPORTED: &[&str] = &[
    BUCKET_HANDOFF_V1,
    RAFT_EVALUATIONS_V1,
    RAFT_CREDENTIALS_V1,
    RAFT_EVALUATION_LIMITS_V1,
];

/// The Raft members (`raft_members`: voters and learners) whose newest metadata does not
/// list `feature`, or whose metadata this node has not seen. Unlike [`enabled`], members
/// that are down count, with what they last announced: they apply the log when they come
/// back, with that binary (a node restarting on a newer one announces it then).
pub fn lacking_for_log(members: &[MemberView], raft_members: &[u64], feature: &str) -> Vec<u64> {
    raft_members
        .iter()
        .copied()
        .filter(|id| {
            let newest = members
                .iter()
                .filter(|m| m.node_id == *id && m.meta.is_some())
                .max_by_key(|m| m.boot);
            !newest
                .and_then(|m| m.meta.as_ref())
                .is_some_and(|meta| meta.features.iter().any(|f| f == feature))
        })
        .collect()
}

/// Whether every live member (alive or suspect) lists `feature`. Down members do not
/// count, nor do members whose metadata has not arrived yet: they own nothing and are
/// sent nothing until it does (every binary gossips metadata; an old one lists no
/// features, which turns the gate off). Counting them as "off" would turn features off
/// for a moment whenever a node (re)starts, exactly when handoff matters.
pub fn enabled(members: &[MemberView], feature: &str) -> bool {
    members
        .iter()
        .filter(|m| m.status != MemberStatus::Down)
        .filter_map(|m| m.meta.as_ref())
        .all(|x| x.features.iter().any(|f| f == feature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{NodeMeta, NodeState};

    fn member(id: u64, status: MemberStatus, features: &[&str]) -> MemberView {
        MemberView {
            node_id: id,
            gossip_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16)),
            meta: Some(NodeMeta {
                node_id: id,
                http_addr: String::new(),
                raft_addr: String::new(),
                version: "0.1.0".into(),
                state: NodeState::Active,
                cluster_addr: String::new(),
                features: features.iter().map(|f| f.to_string()).collect(),
            }),
            status,
            incarnation: 0,
            boot: 0,
            last_seen_ms_ago: None,
            is_self: false,
        }
    }

    #[test]
    fn log_features_count_every_raft_member_down_or_not_by_its_newest_announcement() {
        let f = RAFT_EVALUATIONS_V1;
        let new = [f];
        let mut down_new = member(2, MemberStatus::Down, &new);
        down_new.boot = 5;
        let views = [member(1, MemberStatus::Alive, &new), down_new.clone()];
        assert!(lacking_for_log(&views, &[1, 2], f).is_empty());
        // A member down with an old binary still has to apply the log.
        let views = [
            member(1, MemberStatus::Alive, &new),
            member(2, MemberStatus::Down, &[]),
        ];
        assert_eq!(lacking_for_log(&views, &[1, 2], f), [2]);
        // Unknown to gossip: off. Restarted on an older binary (newer boot): off.
        assert_eq!(lacking_for_log(&views[..1], &[1, 3], f), [3]);
        let mut downgraded = member(2, MemberStatus::Alive, &[]);
        downgraded.boot = 9;
        assert_eq!(
            lacking_for_log(&[down_new, downgraded], &[2], f),
            [2],
            "the newest announcement counts"
        );
        // Gossip members outside Raft do not matter.
        let views = [
            member(1, MemberStatus::Alive, &new),
            member(4, MemberStatus::Alive, &[]),
        ];
        assert!(lacking_for_log(&views, &[1], f).is_empty());
    }

    #[test]
    fn a_feature_is_on_only_when_every_live_member_speaks_it() {
        let new = [BUCKET_HANDOFF_V1];
        let all_new = [
            member(1, MemberStatus::Alive, &new),
            member(2, MemberStatus::Suspect, &new),
        ];
        assert!(enabled(&all_new, BUCKET_HANDOFF_V1));
        let mixed = [
            member(1, MemberStatus::Alive, &new),
            member(2, MemberStatus::Alive, &[]),
        ];
        assert!(
            !enabled(&mixed, BUCKET_HANDOFF_V1),
            "an old binary is still up"
        );
        let old_down = [
            member(1, MemberStatus::Alive, &new),
            member(2, MemberStatus::Down, &[]),
        ];
        assert!(
            enabled(&old_down, BUCKET_HANDOFF_V1),
            "down members do not count"
        );
        let mut unknown = member(3, MemberStatus::Alive, &[]);
        unknown.meta = None;
        let with_unknown = [member(1, MemberStatus::Alive, &new), unknown];
        assert!(
            enabled(&with_unknown, BUCKET_HANDOFF_V1),
            "a member without metadata yet owns nothing and does not turn features off"
        );
    }
}
