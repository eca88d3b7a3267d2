//! CheckQuorum: how a Raft leader notices that it is cut off from a majority.
//!
//! openraft 0.9 keeps a leader leading while it hears from nobody (it has no CheckQuorum
//! step-down). So writes and linearizable reads sent to a partitioned leader would wait
//! until the partition heals, while the other side has long elected a new leader. A leader
//! that has heard from no majority for twice the longest election timeout has, almost
//! surely, been replaced. It refuses new writes and reads at once, and a write it has
//! already proposed is answered "outcome unknown" instead of hanging. The factor of two
//! keeps a busy machine's scheduling hiccups from failing writes that would still commit.

use std::future::Future;
use std::time::Duration;

use openraft::{RaftMetrics, ServerState};

use super::{NodeId, NodeInfo, Raft};

/// How long a leader may go without a majority's acknowledgement before it counts as cut off.
pub(crate) fn limit(config: &openraft::Config) -> Duration {
    Duration::from_millis(config.election_timeout_max.saturating_mul(2))
}

/// How long the leader that `metrics` describes has heard from no majority, when that is
/// longer than `limit`. `None` on a follower, a candidate, or a leader in contact.
pub(crate) fn cut_off(
    metrics: &RaftMetrics<NodeId, NodeInfo>,
    limit: Duration,
) -> Option<Duration> {
    if metrics.state != ServerState::Leader {
        return None;
    }
    let since = Duration::from_millis(metrics.millis_since_quorum_ack?);
    (since > limit).then_some(since)
}

/// Resolves once this node is a leader cut off from its majority; never while it is not.
///
/// openraft republishes its metrics at least every tick (1.5 heartbeat intervals), so this
/// notices within about that much after the limit.
async fn until_cut_off(raft: &Raft, limit: Duration) -> Duration {
    let mut metrics = raft.metrics();
    loop {
        if let Some(since) = cut_off(&metrics.borrow_and_update(), limit) {
            return since;
        }
        if metrics.changed().await.is_err() {
            // Raft has shut down: nothing more will be cut off.
            return std::future::pending().await;
        }
    }
}

/// How an operation run through [`guard`] ended.
pub(crate) enum Guarded<T> {
    /// It ran to its end.
    Done(T),
    /// This node was a cut-off leader already: the operation was never started.
    Refused(Duration),
    /// This node became a cut-off leader while the operation ran (a write may still be
    /// applied).
    GaveUp(Duration),
}

/// Runs a leader-side operation (a write, a read-index confirmation) unless this node is a
/// leader cut off from its majority, and gives it up if it becomes one meanwhile.
pub(crate) async fn guard<T>(raft: &Raft, op: impl Future<Output = T>) -> Guarded<T> {
    let limit = limit(raft.config());
    // Checked before `op` is first polled: a refused write was never proposed.
    if let Some(since) = cut_off(&raft.metrics().borrow(), limit) {
        return Guarded::Refused(since);
    }
    tokio::select! {
        out = op => Guarded::Done(out),
        since = until_cut_off(raft, limit) => Guarded::GaveUp(since),
    }
}

/// The message for a write or read refused (or given up) because of [`cut_off`].
pub(crate) fn explain(since: Duration) -> String {
    format!(
        "this node is the Raft leader but has heard from no majority for {} ms (it is probably \
         cut off, and the others have elected another leader); retry through another node",
        since.as_millis()
    )
}

/// [`explain`], for a write given up after it was proposed.
pub(crate) fn explain_proposed(since: Duration) -> String {
    format!(
        "{}; the write was proposed, so it may still be applied",
        explain(since)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(state: ServerState, since_ack: Option<u64>) -> RaftMetrics<NodeId, NodeInfo> {
        let mut m = RaftMetrics::new_initial(1);
        m.state = state;
        m.millis_since_quorum_ack = since_ack;
        m
    }

    #[test]
    fn only_a_leader_past_the_limit_is_cut_off() {
        let limit = Duration::from_millis(1200);
        assert_eq!(
            cut_off(&metrics(ServerState::Leader, Some(1201)), limit),
            Some(Duration::from_millis(1201))
        );
        assert_eq!(
            cut_off(&metrics(ServerState::Leader, Some(1200)), limit),
            None
        );
        assert_eq!(
            cut_off(&metrics(ServerState::Leader, Some(40)), limit),
            None
        );
        // Just elected: no acknowledgement yet is not "cut off".
        assert_eq!(cut_off(&metrics(ServerState::Leader, None), limit), None);
        assert_eq!(
            cut_off(&metrics(ServerState::Follower, Some(9_000)), limit),
            None
        );
        assert_eq!(
            cut_off(&metrics(ServerState::Candidate, Some(9_000)), limit),
            None
        );
    }

    #[test]
    fn the_limit_is_twice_the_longest_election_timeout() {
        let config = openraft::Config {
            election_timeout_min: 300,
            election_timeout_max: 600,
            ..Default::default()
        };
        assert_eq!(limit(&config), Duration::from_millis(1200));
    }
}
