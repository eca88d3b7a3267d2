//! The node's supervision: every long-lived component is registered in one
//! [`Components`] list (shown in `/v1/cluster`), restartable tasks run under
//! [`supervise`] with the shared backoff, and components that cannot be restarted in place
//! (Raft's core, the gossip agent) raise [`Fatal`] when they die, so the node exits with an
//! error and its process supervisor starts it afresh.

use colony_cluster::membership::Membership;
use colony_cluster::RaftNode;
use colony_supervision::{
    supervise, watch_fatal, Backoff, Component, ComponentKind, Components, Fatal, Gauges,
    TaskOutcome,
};
use std::future::Future;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a node supervises its components with.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// Every task the node spawned, joined on shutdown.
    pub tasks: TaskTracker,
    /// The node's components, in start order.
    pub components: Components,
    /// Cancelled when the node stops.
    pub stop: CancellationToken,
    /// Raised when a component the node cannot do without dies.
    pub fatal: Fatal,
}

impl Supervision {
    /// Nothing started yet.
    pub fn new() -> Supervision {
        Supervision {
            tasks: TaskTracker::new(),
            components: Components::new(),
            stop: CancellationToken::new(),
            fatal: Fatal::new(),
        }
    }

    /// Runs `start()` as the supervised task `name`, restarted with [`Backoff::TASK`].
    pub fn task<F, Fut>(&self, name: &'static str, start: F) -> Component
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutcome + Send + 'static,
    {
        let c = self.components.register(name, ComponentKind::Task);
        supervise(
            &self.tasks,
            c.clone(),
            Backoff::TASK,
            self.stop.clone(),
            start,
        );
        c
    }

    /// Registers `name`, which cannot be restarted in place: `died` resolves with the
    /// reason when it has died.
    pub fn fatal<Fut>(&self, name: &'static str, died: Fut) -> Component
    where
        Fut: Future<Output = String> + Send + 'static,
    {
        let c = self.components.register(name, ComponentKind::Fatal);
        watch_fatal(
            &self.tasks,
            c.clone(),
            self.stop.clone(),
            self.fatal.clone(),
            died,
        );
        c
    }

    /// Watches Raft's core (it stops for good on a storage error) and shows the entries
    /// committed but not applied yet as its queue.
    pub fn watch_raft(&self, raft: &RaftNode) {
        let core = raft.clone();
        let c = self.fatal("raft", async move {
            let mut metrics = core.raft().metrics();
            loop {
                if let Err(e) = &metrics.borrow_and_update().running_state {
                    return format!("Raft's core stopped: {e}");
                }
                if metrics.changed().await.is_err() {
                    return "Raft's core stopped".to_owned();
                }
            }
        });
        let raft = raft.clone();
        c.set_gauges(move || {
            let s = raft.status();
            Gauges {
                queue_depth: Some(
                    s.committed_index
                        .unwrap_or(0)
                        .saturating_sub(s.applied_index.unwrap_or(0)),
                ),
                ..Gauges::default()
            }
        });
    }

    /// Watches the gossip agent.
    pub fn watch_membership(&self, membership: &Membership) {
        let m = membership.clone();
        self.fatal("membership", async move { m.agent_stopped().await });
    }
}
