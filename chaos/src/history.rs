//! The recorded history: every operation the workload issued, with its invocation and
//! completion times (milliseconds since the run started), node, outcome and answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// How an operation ended, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Acknowledged (2xx).
    Ok,
    /// Failed for certain: refused connection or a 4xx; a write did not happen.
    Fail,
    /// Unknown: timeout, reset or 5xx; a write may or may not have happened.
    Info,
}

/// One operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history.
    pub id: usize,
    /// The client (worker thread) that issued it.
    pub process: String,
    /// `register.write`, `register.read`, `tenant.create`, `tenant.tier`,
    /// `ratelimit.check`, `evaluation.submit`.
    pub kind: String,
    /// Node index it was sent to.
    pub node: usize,
    /// The tenant, register or bucket set it touched.
    pub key: String,
    /// Value written or read, evaluation id, ...
    pub value: Option<String>,
    /// Invocation, ms since the start.
    pub invoke_ms: f64,
    /// Completion (answer or transport failure), ms since the start.
    pub complete_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The `x-request-id` sent (mutations).
    pub request_id: Option<String>,
    /// Anything else (admitted buckets, error text).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// A fault the nemesis injected.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultEvent {
    /// `kill9-restart`, `kill-leader`, `pause`, `graceful-restart`, `partition`.
    pub kind: String,
    /// Target node (1-based, as printed).
    pub node: usize,
    /// The other nodes a minority fault hit (1-based); empty for one-node faults.
    pub also: Vec<usize>,
    /// Whether the target was the Raft leader when the fault started.
    pub was_leader: bool,
    /// Whether the leader was among the nodes hit.
    pub leader_hit: bool,
    /// Fault start, ms since the start.
    pub start_ms: f64,
    /// Healed (restarted, resumed, partition lifted), ms since the start.
    pub heal_ms: f64,
    /// The cluster converged again (same leader, all active), ms since the start.
    pub converged_ms: Option<f64>,
    /// Leader after convergence (1-based).
    pub leader_after: Option<usize>,
    /// Notes (exit status after SIGTERM, ...).
    pub note: String,
}

impl FaultEvent {
    /// The nodes hit, as printed: `n2`, `n1 (leader)`, `n4+n5 (with the leader)`.
    pub fn targets(&self) -> String {
        let nodes: Vec<String> = std::iter::once(self.node)
            .chain(self.also.iter().copied())
            .map(|n| format!("n{n}"))
            .collect();
        let role = if self.was_leader {
            " (leader)"
        } else if self.leader_hit {
            " (with the leader)"
        } else {
            ""
        };
        format!("{}{role}", nodes.join("+"))
    }
}

/// The shared, append-only history.
#[derive(Debug)]
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

impl History {
    /// An empty history starting now.
    pub fn new(start: Instant) -> History {
        History {
            start,
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// Appends an operation, numbering it.
    pub fn push(&self, mut op: Op) {
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        op.id = ops.len();
        ops.push(op);
    }

    /// A copy of every operation, ordered by invocation.
    pub fn snapshot(&self) -> Vec<Op> {
        let mut ops = self
            .ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        ops.sort_by(|a, b| a.invoke_ms.total_cmp(&b.invoke_ms));
        ops
    }
}
