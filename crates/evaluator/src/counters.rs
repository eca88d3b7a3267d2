//! Counters of the evaluation runtime, read by `/metrics`.

use std::sync::atomic::AtomicU64;

/// Monotonic counters (read with `Ordering::Relaxed`).
#[derive(Debug, Default)]
pub struct EvalCounters {
    /// Case results checkpointed by this node.
    pub cases_recorded: AtomicU64,
    /// Of those, results that are errors.
    pub cases_failed: AtomicU64,
    /// Of those, results served from the response cache.
    pub cache_hits: AtomicU64,
    /// Cost of the recorded results, in nano-dollars.
    pub cost_nanos: AtomicU64,
    /// Checkpoints committed.
    pub checkpoints: AtomicU64,
    /// Checkpoints refused (stale epoch, evaluation ended).
    pub checkpoints_refused: AtomicU64,
    /// Evaluation actors restarted after a failure.
    pub restarts: AtomicU64,
    /// Reassignments proposed by this node as leader.
    pub reassignments: AtomicU64,
    /// Cases whose scoring ran over `evaluations.score_timeout_ms`.
    pub scoring_timeouts: AtomicU64,
    /// Evaluation actors alive now (a gauge, not monotonic).
    pub running: AtomicU64,
}
