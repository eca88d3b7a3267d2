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

/// Every feature this binary speaks.
pub const SUPPORTED: &[&str] = &[BUCKET_HANDOFF_V1];

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
