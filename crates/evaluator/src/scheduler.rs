//! The loop that keeps this node's evaluation actors in step with the state machine, and
//! (on the Raft leader) moves evaluations away from owners that are gone or draining.

use crate::actors::{Desired, EvalSupervisor, SupervisorMsg};
use crate::assign::reassignments;
use crate::run::RunContext;
use colony_cluster::membership::{MemberStatus, Membership, NodeState};
use colony_core::command::{Command, Proposal, ProposalMeta};
use ractor::{Actor, ActorRef};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct EvaluatorConfig {
    /// How often the running actors are reconciled with the state machine.
    pub tick: Duration,
    /// How long an owner must look gone (down, unknown or draining) before the leader
    /// moves its evaluations: rides out a brief suspicion.
    pub reassign_grace: Duration,
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(200),
            reassign_grace: Duration::from_millis(500),
        }
    }
}

/// Handle to this node's evaluation runtime.
#[derive(Clone)]
pub struct Evaluator {
    ctx: RunContext,
    supervisor: ActorRef<SupervisorMsg>,
    draining: Arc<AtomicBool>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("node_id", &self.ctx.node_id)
            .finish_non_exhaustive()
    }
}

/// The runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the evaluation actors: {0}")]
pub struct StartError(String);

impl Evaluator {
    /// Starts the supervisor of the evaluation actors; [`Evaluator::schedule`] is the loop
    /// that tells it what to run (the node runs it as a supervised task).
    pub async fn start(ctx: RunContext) -> Result<Self, StartError> {
        let (supervisor, _) = Actor::spawn(None, EvalSupervisor, ctx.clone())
            .await
            .map_err(|e| StartError(e.to_string()))?;
        ctx.component.set_gauges({
            let (counters, supervisor) = (ctx.counters.clone(), supervisor.clone());
            move || colony_supervision::Gauges {
                evaluations_running: Some(crate::actors::running(&counters)),
                children: Some(supervisor.get_children().len() as u64),
                ..Default::default()
            }
        });
        Ok(Self {
            ctx,
            supervisor,
            draining: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The runtime's observable state (`evaluations` in `/v1/cluster`).
    pub fn component(&self) -> &colony_supervision::Component {
        &self.ctx.component
    }

    /// The counters (shared with `/metrics`).
    pub fn counters_arc(&self) -> Arc<crate::EvalCounters> {
        self.ctx.counters.clone()
    }

    /// The provider clients (their breakers' states and counters, for `/metrics`).
    pub fn registry(&self) -> Arc<colony_providers::Registry> {
        self.ctx.registry.clone()
    }

    /// Drain: stop every run here (finished results are checkpointed); the leader moves
    /// the evaluations to other nodes. Waits up to `within` for the runs to stop.
    pub async fn drain(&self, within: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        let _ = self
            .supervisor
            .cast(SupervisorMsg::Reconcile(Desired::new(), HashMap::new()));
        let deadline = Instant::now() + within;
        // The runs stop asynchronously; their last checkpoints are Raft writes.
        while Instant::now() < deadline
            && self
                .supervisor
                .get_children()
                .iter()
                .any(|t| !t.get_children().is_empty())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the actors.
    pub async fn stop(&self) {
        let _ = self
            .supervisor
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
    }

    /// Keeps the actors in step with the state machine every `config.tick`, and on the
    /// leader moves evaluations away from gone owners, until `stop`.
    pub async fn schedule(
        self,
        membership: Membership,
        config: EvaluatorConfig,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When each owner was first seen unable to run its evaluations.
        let mut gone_since: HashMap<u64, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.reconcile();
            if self.ctx.raft.status().leader == Some(self.ctx.node_id) {
                self.reassign(&membership, &config, &mut gone_since).await;
            } else {
                gone_since.clear();
            }
        }
    }

    /// Tells the supervisor what should run here now.
    fn reconcile(&self) {
        if self.draining.load(Ordering::SeqCst) {
            return;
        }
        let me = self.ctx.node_id;
        let (desired, slots) = self.ctx.raft.read_state(|s| {
            let mut desired: Desired = BTreeMap::new();
            let mut slots = HashMap::new();
            for r in s.evaluations.values() {
                if r.owner == me && !r.status.is_terminal() {
                    desired
                        .entry(r.tenant.clone())
                        .or_default()
                        .insert(r.id.clone(), r.epoch);
                }
            }
            for tenant in desired.keys() {
                if let Some(t) = s.tenants.get(tenant) {
                    let limit = t
                        .overrides
                        .concurrency
                        .or_else(|| s.tiers.get(&t.tier).and_then(|x| x.concurrency));
                    if let Some(n) = limit {
                        slots.insert(tenant.clone(), n as usize);
                    }
                }
            }
            (desired, slots)
        });
        let _ = self
            .supervisor
            .cast(SupervisorMsg::Reconcile(desired, slots));
    }

    /// On the leader: moves evaluations of owners gone for longer than the grace.
    async fn reassign(
        &self,
        membership: &Membership,
        config: &EvaluatorConfig,
        gone_since: &mut HashMap<u64, Instant>,
    ) {
        let members = membership.members();
        let runnable: Vec<u64> = members
            .iter()
            .filter(|m| {
                m.status != MemberStatus::Down
                    && m.meta
                        .as_ref()
                        .is_some_and(|x| x.state == NodeState::Active)
            })
            .map(|m| m.node_id)
            .collect();
        let now = Instant::now();
        let moves = self
            .ctx
            .raft
            .read_state(|s| reassignments(s.evaluations.values(), &runnable));
        let owners: Vec<u64> = moves.iter().map(|m| m.from).collect();
        gone_since.retain(|o, _| owners.contains(o));
        for m in moves {
            let since = *gone_since.entry(m.from).or_insert(now);
            if now.duration_since(since) < config.reassign_grace {
                continue;
            }
            let proposal = Proposal::new(
                ProposalMeta {
                    at_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0),
                    principal: format!("node:{}", self.ctx.node_id),
                    request_id: format!("reassign-{}", m.id),
                },
                Command::ReassignEvaluation {
                    id: m.id.clone(),
                    epoch: m.epoch,
                    owner: m.to,
                },
            );
            match self.ctx.raft.write(proposal).await {
                Ok(_) => {
                    self.ctx
                        .counters
                        .reassignments
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(evaluation = %m.id, from = m.from, to = m.to, epoch = m.epoch + 1, "evaluation reassigned");
                }
                Err(e) => {
                    tracing::info!(evaluation = %m.id, error = %e, "reassignment not committed")
                }
            }
        }
    }
}
