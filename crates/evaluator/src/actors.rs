//! The supervision tree of evaluations: `EvalSupervisor → Tenant(t) → Evaluation(e)`.
//!
//! - The supervisor receives the set of evaluations this node must run (from the
//!   scheduler) and hands each tenant its share, spawning Tenant actors on demand and
//!   stopping those left with nothing to run (passivation).
//! - A Tenant actor owns the tenant's case slots (its tier concurrency, shared by its
//!   evaluations) and supervises one Evaluation actor per evaluation: it starts missing
//!   ones, stops those no longer assigned here, and restarts a failed one with the shared
//!   backoff policy ([`Backoff::EVALUATION`]).
//! - An Evaluation actor drives [`crate::run::run_evaluation`] in a task and reports how
//!   it ended; a run that failed or panicked fails the actor, so its Tenant restarts it
//!   (it resumes from the last checkpoint).
//!
//! Every failure and restart is recorded on the runtime's [`Component`] (`evaluations` in
//! `/v1/cluster`), which also shows how many evaluations run here.

use crate::run::{run_evaluation, RunContext, RunEnd};
use colony_supervision::{Backoff, Component, Restarts};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// Case slots of a tenant without a tier concurrency limit.
const UNLIMITED_SLOTS: usize = 1024;

/// What should run here: tenant → evaluation id → epoch.
pub type Desired = BTreeMap<String, BTreeMap<String, u64>>;

/// Messages of the supervisor (local only).
#[derive(Debug)]
pub enum SupervisorMsg {
    /// The full set of evaluations to run here, with each tenant's case slots.
    Reconcile(Desired, HashMap<String, usize>),
}
impl ractor::Message for SupervisorMsg {}

/// The root of the evaluation actors.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalSupervisor;

/// Supervisor state.
#[allow(missing_debug_implementations)]
pub struct SupervisorState {
    ctx: RunContext,
    tenants: HashMap<String, ActorRef<TenantMsg>>,
}

impl Actor for EvalSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = RunContext;

    async fn pre_start(
        &self,
        _: ActorRef<SupervisorMsg>,
        ctx: RunContext,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            ctx,
            tenants: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg::Reconcile(mut desired, slots) = msg;
        // Tenants with nothing to run are passivated.
        let idle: Vec<String> = st
            .tenants
            .keys()
            .filter(|t| !desired.contains_key(*t))
            .cloned()
            .collect();
        for t in idle {
            if let Some(a) = st.tenants.remove(&t) {
                let _ = a.cast(TenantMsg::Run(BTreeMap::new(), 0));
                a.stop(Some("no evaluations to run".into()));
            }
        }
        for (tenant, evals) in std::mem::take(&mut desired) {
            let n = slots.get(&tenant).copied().unwrap_or(UNLIMITED_SLOTS);
            let actor = match st.tenants.get(&tenant) {
                Some(a) => a.clone(),
                None => {
                    let (a, _) = Actor::spawn_linked(
                        None,
                        TenantActor,
                        (st.ctx.clone(), tenant.clone(), n),
                        myself.get_cell(),
                    )
                    .await?;
                    st.tenants.insert(tenant.clone(), a.clone());
                    a
                }
            };
            let _ = actor.cast(TenantMsg::Run(evals, n));
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // A Tenant actor that failed is forgotten; the next reconcile starts it again.
        if let SupervisionEvent::ActorFailed(cell, err) = evt {
            st.tenants.retain(|_, a| a.get_id() != cell.get_id());
            st.ctx.counters.restarts.fetch_add(1, Ordering::Relaxed);
            st.ctx
                .component
                .failed(format!("tenant actor: {err}"), false);
            st.ctx.component.restarted();
            tracing::warn!(error = %err, "tenant actor failed; it restarts on the next reconcile");
        }
        Ok(())
    }
}

/// Messages of a Tenant actor (local only).
#[derive(Debug)]
pub enum TenantMsg {
    /// The tenant's evaluations to run here (id → epoch) and its case slots.
    Run(BTreeMap<String, u64>, usize),
    /// Start evaluation `id` at `epoch` again after a failure (if still wanted).
    Respawn(String, u64),
}
impl ractor::Message for TenantMsg {}

/// One tenant's evaluations on this node.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantActor;

/// Tenant actor state.
#[allow(missing_debug_implementations)]
pub struct TenantState {
    ctx: RunContext,
    tenant: String,
    slots: Arc<Semaphore>,
    slot_count: usize,
    wanted: BTreeMap<String, u64>,
    running: HashMap<String, (u64, ActorRef<EvalMsg>)>,
    failures: Restarts<String>,
}

impl TenantState {
    async fn start(
        &mut self,
        myself: &ActorRef<TenantMsg>,
        id: &str,
        epoch: u64,
    ) -> Result<(), ActorProcessingErr> {
        let args = EvalArgs {
            ctx: self.ctx.clone(),
            id: id.to_string(),
            epoch,
            slots: self.slots.clone(),
        };
        let (a, _) = Actor::spawn_linked(None, EvaluationActor, args, myself.get_cell()).await?;
        self.running.insert(id.to_string(), (epoch, a));
        Ok(())
    }
}

impl Actor for TenantActor {
    type Msg = TenantMsg;
    type State = TenantState;
    type Arguments = (RunContext, String, usize);

    async fn pre_start(
        &self,
        _: ActorRef<TenantMsg>,
        (ctx, tenant, n): (RunContext, String, usize),
    ) -> Result<TenantState, ActorProcessingErr> {
        Ok(TenantState {
            ctx,
            tenant,
            slots: Arc::new(Semaphore::new(n.max(1))),
            slot_count: n.max(1),
            wanted: BTreeMap::new(),
            running: HashMap::new(),
            failures: Restarts::new(Backoff::EVALUATION),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<TenantMsg>,
        msg: TenantMsg,
        st: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TenantMsg::Run(wanted, n) => {
                // A changed tier concurrency applies to evaluations started from now on.
                if n.max(1) != st.slot_count {
                    st.slot_count = n.max(1);
                    st.slots = Arc::new(Semaphore::new(st.slot_count));
                }
                st.wanted = wanted;
                // Stop what is no longer wanted here (or wanted at another epoch).
                let gone: Vec<String> = st
                    .running
                    .iter()
                    .filter(|(id, (epoch, _))| st.wanted.get(*id) != Some(epoch))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in gone {
                    if let Some((_, a)) = st.running.remove(&id) {
                        let _ = a.cast(EvalMsg::Stop);
                    }
                }
                let missing: Vec<(String, u64)> = st
                    .wanted
                    .iter()
                    .filter(|(id, _)| !st.running.contains_key(*id))
                    .map(|(id, e)| (id.clone(), *e))
                    .collect();
                for (id, epoch) in missing {
                    st.start(&myself, &id, epoch).await?;
                }
            }
            TenantMsg::Respawn(id, epoch) => {
                if st.wanted.get(&id) == Some(&epoch) && !st.running.contains_key(&id) {
                    st.start(&myself, &id, epoch).await?;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<TenantMsg>,
        evt: SupervisionEvent,
        st: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failed) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::warn!(tenant = %st.tenant, error = %err, "evaluation actor failed");
                (cell, true)
            }
            SupervisionEvent::ActorTerminated(cell, ..) => (cell, false),
            _ => return Ok(()),
        };
        let Some(id) = st
            .running
            .iter()
            .find(|(_, (_, a))| a.get_id() == cell.get_id())
            .map(|(id, _)| id.clone())
        else {
            return Ok(());
        };
        let Some((epoch, _)) = st.running.remove(&id) else {
            return Ok(());
        };
        if failed {
            let (_, backoff) = st.failures.failed(id.clone());
            st.ctx.counters.restarts.fetch_add(1, Ordering::Relaxed);
            st.ctx.component.restarted();
            myself.send_after(backoff, move || TenantMsg::Respawn(id, epoch));
        } else {
            st.failures.succeeded(&id);
        }
        Ok(())
    }
}

/// Messages of an Evaluation actor (local only).
#[derive(Debug)]
pub enum EvalMsg {
    /// Stop running (flushing finished results).
    Stop,
    /// The run ended.
    Ended(Result<RunEnd, RunFailure>),
}
impl ractor::Message for EvalMsg {}

/// Why a run failed.
#[derive(Debug)]
pub struct RunFailure {
    /// What went wrong.
    message: String,
    /// Whether the run panicked.
    panic: bool,
}

/// Counts an Evaluation actor as running for as long as it lives.
#[derive(Debug)]
struct Running(Arc<crate::EvalCounters>);

impl Running {
    fn new(counters: Arc<crate::EvalCounters>) -> Running {
        counters.running.fetch_add(1, Ordering::Relaxed);
        Running(counters)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Evaluations running, as read by the runtime's gauges.
pub(crate) fn running(counters: &crate::EvalCounters) -> u64 {
    counters.running.load(Ordering::Relaxed)
}

/// Arguments of an Evaluation actor.
#[derive(Debug)]
pub struct EvalArgs {
    ctx: RunContext,
    id: String,
    epoch: u64,
    slots: Arc<Semaphore>,
}

/// One evaluation at one epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvaluationActor;

/// Evaluation actor state.
#[derive(Debug)]
pub struct EvalState {
    id: String,
    stop: watch::Sender<bool>,
    component: Component,
    _running: Running,
}

impl Actor for EvaluationActor {
    type Msg = EvalMsg;
    type State = EvalState;
    type Arguments = EvalArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EvalMsg>,
        a: EvalArgs,
    ) -> Result<EvalState, ActorProcessingErr> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let component = a.ctx.component.clone();
        let running = Running::new(a.ctx.counters.clone());
        let run = tokio::spawn(run_evaluation(
            a.ctx,
            a.id.clone(),
            a.epoch,
            a.slots,
            stop_rx,
        ));
        // A panic in the run surfaces as a join error: reported like any failure.
        tokio::spawn(async move {
            let ended = match run.await {
                Ok(Ok(end)) => Ok(end),
                Ok(Err(e)) => Err(RunFailure {
                    message: e.to_string(),
                    panic: false,
                }),
                Err(e) => Err(RunFailure {
                    message: format!("the run panicked or was aborted: {e}"),
                    panic: e.is_panic(),
                }),
            };
            let _ = myself.cast(EvalMsg::Ended(ended));
        });
        Ok(EvalState {
            id: a.id,
            stop: stop_tx,
            component,
            _running: running,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<EvalMsg>,
        msg: EvalMsg,
        st: &mut EvalState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EvalMsg::Stop => {
                let _ = st.stop.send(true);
            }
            EvalMsg::Ended(Ok(end)) => {
                tracing::info!(evaluation = %st.id, ?end, "evaluation run ended");
                myself.stop(None);
            }
            EvalMsg::Ended(Err(f)) => {
                let message = format!("evaluation {} failed: {}", st.id, f.message);
                st.component.failed(&message, f.panic);
                return Err(message.into());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<EvalMsg>,
        st: &mut EvalState,
    ) -> Result<(), ActorProcessingErr> {
        // However the actor stops, its run stops too.
        let _ = st.stop.send(true);
        Ok(())
    }
}
