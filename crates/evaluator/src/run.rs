//! One evaluation at one epoch: run the cases without a recorded result, score them and
//! checkpoint the results through Raft in batches.
//!
//! Exactly once: the state machine records an item only once and only at the current
//! epoch, so a repeated checkpoint (a lost answer) or one from a node that lost the
//! assignment records nothing twice. Cases in flight when the run stops (cancel,
//! reassignment, drain, crash) are simply run again by whoever owns the evaluation next.

use crate::counters::EvalCounters;
use crate::credentials::Credentials;
use crate::providers::config_of;
use colony_cluster::{RaftNode, WriteError};
use colony_core::command::{ApplyError, Command, CommandOutput, Proposal, ProposalMeta};
use colony_core::evaluation::{CheckpointItem, EvaluationRecord};
use colony_eval::{score_case, Plan, ProviderOutput, SpecLimits, ValidatedSpec, WorkItem};
use colony_providers::{ChatMessage, Provider, Registry, ResponseCache};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Checkpoint once this many results are waiting...
    pub checkpoint_every: usize,
    /// ...or once the oldest has waited this long.
    pub checkpoint_interval: Duration,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            checkpoint_every: 50,
            checkpoint_interval: Duration::from_millis(500),
        }
    }
}

/// Per-case bounds on what a tenant's evaluation may cost this node.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Longest one case's scoring may take before it is recorded as a scorer error.
    pub score_timeout: Duration,
    /// Largest output kept and scored (longer answers are cut and marked truncated).
    pub max_output_bytes: usize,
    /// Most output bytes stored for one whole evaluation: with many work items each
    /// output is cut shorter (never below [`MIN_OUTPUT_BYTES`]).
    pub max_evaluation_output_bytes: usize,
    /// Largest provider response body read.
    pub max_response_bytes: usize,
    /// Largest checkpoint proposal; bigger batches are split.
    pub max_checkpoint_bytes: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            score_timeout: Duration::from_secs(2),
            max_output_bytes: 64 * 1024,
            max_evaluation_output_bytes: 256 << 20,
            max_response_bytes: 1 << 20,
            max_checkpoint_bytes: 1 << 20,
        }
    }
}

/// The shortest an output is cut to however many work items an evaluation has.
pub const MIN_OUTPUT_BYTES: usize = 1024;

impl RunLimits {
    /// The output cap of one item of an evaluation of `total` items: the per-output cap,
    /// lowered so all outputs together stay within the per-evaluation budget.
    pub fn output_cap(&self, total: u32) -> usize {
        let share = self.max_evaluation_output_bytes / (total.max(1) as usize);
        self.max_output_bytes.min(share.max(MIN_OUTPUT_BYTES))
    }
}

/// What every run on this node shares.
#[derive(Clone)]
pub struct RunContext {
    /// Raft: reads of the state, checkpoint writes.
    pub raft: RaftNode,
    /// This node.
    pub node_id: u64,
    /// Provider clients and their breakers.
    pub registry: Arc<Registry>,
    /// The per-tenant response cache, if enabled.
    pub cache: Option<ResponseCache>,
    /// Metrics.
    pub counters: Arc<EvalCounters>,
    /// Provider call latency by provider kind (seconds): never a tenant-chosen label.
    pub latency: Option<prometheus::HistogramVec>,
    /// Settings.
    pub settings: RunSettings,
    /// Resolves the credentials specs name.
    pub credentials: Credentials,
    /// Scoring runs on blocking threads, at most this many cases at once, so a costly
    /// scorer never holds an async worker (HTTP, Raft and gossip keep running).
    pub scoring: Arc<Semaphore>,
    /// Per-case bounds.
    pub limits: RunLimits,
    /// The runtime's observable state (`evaluations`): failures, restarts, gauges.
    pub component: colony_supervision::Component,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("node_id", &self.node_id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every item is recorded, or the evaluation ended (cancelled, budget, failed).
    Finished,
    /// This node no longer runs it at this epoch (reassigned), or it was told to stop.
    Stopped,
}

/// Why a run could not go on; the actor's supervisor restarts it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Raft stopped for good.
    #[error("raft failed: {0}")]
    Raft(String),
}

fn meta(node_id: u64, id: &str) -> ProposalMeta {
    ProposalMeta {
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        principal: format!("node:{node_id}"),
        request_id: format!("eval-{id}"),
    }
}

/// Runs evaluation `id` at `epoch` until it is finished or `stop` turns true. `tenant_slots`
/// bounds the tenant's cases in flight across its evaluations.
pub async fn run_evaluation(
    ctx: RunContext,
    id: String,
    epoch: u64,
    tenant_slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Result<RunEnd, RunError> {
    let Some((record, body)) = ctx.raft.read_state(|s| {
        let r = s.evaluations.get(&id).cloned()?;
        let spec = s.eval_specs.get(&id).cloned()?;
        Some((r, spec))
    }) else {
        return Ok(RunEnd::Stopped);
    };
    if record.epoch != epoch || record.owner != ctx.node_id || record.status.is_terminal() {
        return Ok(RunEnd::Stopped);
    }
    // 100 000 items of 64 KiB would be 6.4 GB through Raft for one small spec.
    let mut ctx = ctx;
    ctx.limits.max_output_bytes = ctx.limits.output_cap(record.total);
    let validated =
        tokio::task::spawn_blocking(move || colony_eval::validate(&body, &SpecLimits::unbounded()))
            .await;
    let spec = match validated {
        Ok(Ok(s)) => Arc::new(s),
        Ok(Err(e)) => return fail(&ctx, &record, format!("stored spec is invalid: {e}")).await,
        Err(e) => return fail(&ctx, &record, format!("validating the stored spec: {e}")).await,
    };
    let plan = Plan::new(&spec);
    let mut providers: HashMap<String, Provider> = HashMap::new();
    for p in spec.providers() {
        let credential = match &p.credential {
            None => None,
            Some(name) => {
                let found = ctx.raft.read_state(|s| {
                    ctx.credentials
                        .resolve(&s.credentials, &record.tenant, name)
                });
                match found {
                    Ok(c) => Some(c),
                    Err(e) => {
                        return fail(&ctx, &record, format!("provider {:?}: {e}", p.id)).await
                    }
                }
            }
        };
        let built = config_of(
            p,
            spec.spec().timeout_ms(),
            spec.spec().max_retries(),
            ctx.limits.max_response_bytes,
            credential,
        )
        .and_then(|c| ctx.registry.provider(&record.tenant, c));
        match built {
            Ok(client) => {
                providers.insert(p.id.clone(), client);
            }
            Err(e) => {
                return fail(&ctx, &record, format!("provider {:?}: {e}", p.id)).await;
            }
        }
    }
    let providers = Arc::new(providers);
    let pending: Vec<u32> = (0..record.total)
        .filter(|i| !record.done.contains(*i))
        .collect();
    tracing::info!(
        evaluation = %id, epoch, pending = pending.len(), total = record.total,
        "running evaluation"
    );
    let concurrency = spec.spec().concurrency().max(1) as usize;
    let mut next = pending.into_iter();
    let mut running: JoinSet<CheckpointItem> = JoinSet::new();
    let mut buffer: Vec<CheckpointItem> = Vec::new();
    let mut oldest: Option<Instant> = None;
    let mut exhausted = false;
    loop {
        // Keep up to `concurrency` cases in flight, unless results pile up unflushed
        // (Raft unavailable): then wait for a checkpoint to land first.
        while !exhausted
            && running.len() < concurrency
            && buffer.len() < ctx.settings.checkpoint_every * 10
        {
            let Some(index) = next.next() else {
                exhausted = true;
                break;
            };
            let Some(item) = plan.get(index as usize) else {
                continue;
            };
            running.spawn(run_case(
                ctx.clone(),
                spec.clone(),
                providers.clone(),
                tenant_slots.clone(),
                record.tenant.clone(),
                index,
                item,
            ));
        }
        if exhausted && running.is_empty() && buffer.is_empty() {
            return Ok(RunEnd::Finished);
        }
        let flush_due = oldest.map(|t| t + ctx.settings.checkpoint_interval);
        tokio::select! {
            () = stopped(&mut stop) => {
                // Abort what is in flight (it is re-run by the next owner) and keep
                // what is finished.
                running.abort_all();
                if !buffer.is_empty() {
                    let _ = checkpoint(&ctx, &id, epoch, &mut buffer).await;
                }
                return Ok(RunEnd::Stopped);
            }
            done = running.join_next(), if !running.is_empty() => {
                if let Some(Ok(item)) = done {
                    oldest.get_or_insert_with(Instant::now);
                    buffer.push(item);
                }
            }
            _ = sleep_until(flush_due), if flush_due.is_some() => {}
        }
        let due = oldest.is_some_and(|t| t.elapsed() >= ctx.settings.checkpoint_interval);
        let last = exhausted && running.is_empty();
        if !buffer.is_empty() && (buffer.len() >= ctx.settings.checkpoint_every || due || last) {
            match checkpoint(&ctx, &id, epoch, &mut buffer).await? {
                Flush::Done => oldest = None,
                Flush::Ended => return Ok(RunEnd::Finished),
                Flush::Refused => return Ok(RunEnd::Stopped),
                Flush::Retry => {
                    // Keep the results and try again shortly.
                    oldest = Some(Instant::now());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Resolves once `stop` is true (the guard `wait_for` returns must not live across the
/// awaits that follow, so it is dropped here).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs one case: the provider call (or the precomputed output), then the scorers.
async fn run_case(
    ctx: RunContext,
    spec: Arc<ValidatedSpec>,
    providers: Arc<HashMap<String, Provider>>,
    tenant_slots: Arc<Semaphore>,
    tenant: String,
    index: u32,
    item: WorkItem,
) -> CheckpointItem {
    let provider_spec = spec.provider(&item.provider_id).ok();
    let model = provider_spec.map(|p| p.model.clone()).unwrap_or_default();
    // Attempts of a failed call, which the error string cannot carry.
    let mut failed_attempts = 0;
    let output = match spec.precomputed_output(item.case_index, &item.provider_id) {
        Ok(Some(text)) => Ok(ProviderOutput::precomputed(text)),
        Ok(None) => {
            let _slot = tenant_slots.acquire().await;
            call(&ctx, &spec, &providers, &tenant, &item)
                .await
                .map_err(|(e, attempts)| {
                    failed_attempts = attempts;
                    e
                })
        }
        Err(e) => Err(e.to_string()),
    };
    let price = ctx.raft.read_state(|s| s.prices.get(&model).cloned());
    let eval_price = price.as_ref().map(|p| colony_eval::Price {
        input_per_1k_usd: p.input_per_1k_usd,
        output_per_1k_usd: p.output_per_1k_usd,
    });
    let (prompt_tokens, completion_tokens, cached) = match &output {
        Ok(o) => (o.usage.prompt_tokens, o.usage.completion_tokens, o.cached),
        Err(_) => (0, 0, false),
    };
    let output = output.map(|mut o| {
        o.truncate_to(ctx.limits.max_output_bytes);
        o
    });
    let error = output.is_err();
    let scored = score_off_workers(&ctx, &spec, &item, output, eval_price).await;
    let result = match scored {
        Ok(mut r) => {
            if failed_attempts > 0 {
                r.attempts = failed_attempts;
            }
            serde_json::to_value(&r).unwrap_or(serde_json::Value::Null)
        }
        Err(e) => serde_json::json!({
            "case_index": item.case_index,
            "provider_id": item.provider_id,
            "repeat": item.repeat,
            "error": e,
        }),
    };
    // A cached answer costs nothing: it was paid for when it was first produced.
    let cost_nanos = match (&price, cached) {
        (Some(p), false) => p.cost_nanos(prompt_tokens, completion_tokens),
        _ => 0,
    };
    CheckpointItem {
        index,
        model,
        prompt_tokens,
        completion_tokens,
        cost_nanos,
        error: error || result.get("error").is_some_and(|e| !e.is_null()),
        cached,
        result,
    }
}

/// Scores one output on a blocking thread, at most `ctx.scoring` at once, within
/// `ctx.limits.score_timeout`. A case over the budget is recorded as a scorer error; the
/// thread keeps its pool slot until it finishes (the scorers' own work caps bound it), so
/// the pool stays bounded and the async workers never run a scorer.
async fn score_off_workers(
    ctx: &RunContext,
    spec: &Arc<ValidatedSpec>,
    item: &WorkItem,
    output: Result<ProviderOutput, String>,
    price: Option<colony_eval::Price>,
) -> Result<colony_eval::CaseResult, String> {
    let permit = ctx
        .scoring
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| "the node is shutting down".to_string())?;
    let spec = spec.clone();
    let (case, provider, repeat) = (item.case_index, item.provider_id.clone(), item.repeat);
    let job = tokio::task::spawn_blocking(move || {
        let _slot = permit;
        score_case(&spec, case, &provider, repeat, output, price.as_ref())
    });
    match tokio::time::timeout(ctx.limits.score_timeout, job).await {
        Ok(Ok(r)) => r.map_err(|e| e.to_string()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "scorer panicked");
            Err("scoring failed".into())
        }
        Err(_) => {
            ctx.counters
                .scoring_timeouts
                .fetch_add(1, Ordering::Relaxed);
            Err(format!(
                "scoring took longer than {} ms (evaluations.score_timeout_ms)",
                ctx.limits.score_timeout.as_millis()
            ))
        }
    }
}

async fn call(
    ctx: &RunContext,
    spec: &ValidatedSpec,
    providers: &HashMap<String, Provider>,
    tenant: &str,
    item: &WorkItem,
) -> Result<ProviderOutput, (String, u32)> {
    let provider = providers
        .get(&item.provider_id)
        .ok_or_else(|| (format!("unknown provider {:?}", item.provider_id), 0))?;
    let prompt = spec
        .render(item.case_index)
        .map_err(|e| (e.to_string(), 0))?;
    let messages: Vec<ChatMessage> = prompt
        .to_messages()
        .into_iter()
        .map(|m| ChatMessage::new(role_name(&m.role), m.content))
        .collect();
    let started = Instant::now();
    let answer = match &ctx.cache {
        Some(cache) => provider.complete_cached(cache, tenant, &messages).await,
        None => provider.complete(&messages).await,
    };
    if let Some(h) = &ctx.latency {
        h.with_label_values(&[provider.config().kind.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    let c = answer.map_err(|e| (e.to_string(), e.attempts))?;
    let usage = c
        .usage
        .map(|u| colony_eval::Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        })
        .unwrap_or_default();
    Ok(ProviderOutput {
        text: c.text,
        latency_ms: c.latency_ms,
        usage,
        cached: c.cached,
        attempts: c.attempts,
        truncated: false,
    })
}

fn role_name(role: &colony_eval::Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "user".into())
}

enum Flush {
    Done,
    /// The evaluation ended (completed, cancelled, budget): stop running cases.
    Ended,
    /// Refused at this epoch (reassigned): stop.
    Refused,
    /// Raft could not commit now: keep the results and retry.
    Retry,
}

/// Proposes the buffered results in as many checkpoints as keep each under
/// `ctx.limits.max_checkpoint_bytes`, stopping at the first that does not land.
async fn checkpoint(
    ctx: &RunContext,
    id: &str,
    epoch: u64,
    buffer: &mut Vec<CheckpointItem>,
) -> Result<Flush, RunError> {
    loop {
        let n = batch_len(buffer, ctx.limits.max_checkpoint_bytes);
        let mut batch: Vec<CheckpointItem> = buffer.drain(..n).collect();
        let flush = checkpoint_batch(ctx, id, epoch, &mut batch).await?;
        if !batch.is_empty() {
            // Not committed: put it back in front, in order.
            batch.append(buffer);
            *buffer = batch;
        }
        if !matches!(flush, Flush::Done) || buffer.is_empty() {
            return Ok(flush);
        }
    }
}

/// How many of the first items fit in one checkpoint of at most `max_bytes` (at least
/// one: every item is bounded by the output and reference caps).
fn batch_len(items: &[CheckpointItem], max_bytes: usize) -> usize {
    let mut total = 0usize;
    for (i, item) in items.iter().enumerate() {
        // The result JSON dominates; the fixed fields and msgpack framing are small.
        let size = serde_json::to_vec(&item.result).map_or(0, |b| b.len()) + item.model.len() + 128;
        total = total.saturating_add(size);
        if total > max_bytes && i > 0 {
            return i;
        }
    }
    items.len()
}

async fn checkpoint_batch(
    ctx: &RunContext,
    id: &str,
    epoch: u64,
    buffer: &mut Vec<CheckpointItem>,
) -> Result<Flush, RunError> {
    let items = buffer.clone();
    let n = items.len() as u64;
    let failed = items.iter().filter(|i| i.error).count() as u64;
    let hits = items.iter().filter(|i| i.cached).count() as u64;
    let cost: u64 = items.iter().map(|i| i.cost_nanos).sum();
    let proposal = Proposal::new(
        meta(ctx.node_id, id),
        Command::CheckpointEvaluation {
            id: id.to_string(),
            epoch,
            items,
        },
    );
    match ctx.raft.write(proposal).await {
        Ok(out) => {
            buffer.clear();
            let c = &ctx.counters;
            c.checkpoints.fetch_add(1, Ordering::Relaxed);
            c.cases_recorded.fetch_add(n, Ordering::Relaxed);
            c.cases_failed.fetch_add(failed, Ordering::Relaxed);
            c.cache_hits.fetch_add(hits, Ordering::Relaxed);
            c.cost_nanos.fetch_add(cost, Ordering::Relaxed);
            let ended = matches!(&out, CommandOutput::Evaluation(r) if r.status.is_terminal());
            Ok(if ended { Flush::Ended } else { Flush::Done })
        }
        Err(WriteError::Rejected(ApplyError::Conflict(reason))) => {
            ctx.counters
                .checkpoints_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(evaluation = %id, epoch, %reason, "checkpoint refused; stopping this run");
            buffer.clear();
            Ok(Flush::Refused)
        }
        Err(WriteError::Rejected(e)) => {
            tracing::warn!(evaluation = %id, error = %e, "checkpoint rejected; stopping this run");
            buffer.clear();
            Ok(Flush::Refused)
        }
        Err(WriteError::Unavailable(reason)) => {
            tracing::info!(evaluation = %id, %reason, "checkpoint not committed; retrying");
            Ok(Flush::Retry)
        }
        Err(WriteError::Fatal(reason)) => Err(RunError::Raft(reason)),
    }
}

async fn fail(
    ctx: &RunContext,
    record: &EvaluationRecord,
    error: String,
) -> Result<RunEnd, RunError> {
    tracing::warn!(evaluation = %record.id, %error, "evaluation failed");
    let proposal = Proposal::new(
        meta(ctx.node_id, &record.id),
        Command::FailEvaluation {
            id: record.id.clone(),
            epoch: record.epoch,
            error,
        },
    );
    match ctx.raft.write(proposal).await {
        Ok(_) | Err(WriteError::Rejected(_)) => Ok(RunEnd::Finished),
        // Not committed: the scheduler starts the run again, which fails again.
        Err(WriteError::Unavailable(_)) => Ok(RunEnd::Stopped),
        Err(WriteError::Fatal(reason)) => Err(RunError::Raft(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: u32, output_bytes: usize) -> CheckpointItem {
        CheckpointItem {
            index,
            model: "m".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_nanos: 0,
            error: false,
            cached: false,
            result: serde_json::json!({"output": "x".repeat(output_bytes)}),
        }
    }

    #[test]
    fn outputs_are_cut_shorter_in_large_evaluations() {
        let l = RunLimits::default();
        assert_eq!(l.output_cap(100), 64 * 1024);
        assert_eq!(l.output_cap(100_000), (256 << 20) / 100_000);
        assert_eq!(l.output_cap(u32::MAX), MIN_OUTPUT_BYTES);
        assert_eq!(l.output_cap(0), 64 * 1024);
    }

    #[test]
    fn checkpoint_batches_are_split_below_the_entry_cap() {
        // 5 MB of output per case was stored in one Raft entry before (issue 12).
        let items: Vec<CheckpointItem> = (0..10).map(|i| item(i, 60_000)).collect();
        let n = batch_len(&items, 200_000);
        assert_eq!(n, 3, "three 60 KB results fit in 200 KB, four do not");
        assert_eq!(batch_len(&items[..2], 200_000), 2);
        // One oversized item still goes alone rather than never.
        assert_eq!(batch_len(&[item(0, 300_000), item(1, 10)], 200_000), 1);
        assert_eq!(batch_len(&[], 200_000), 0);
    }
}
