//! Evaluations as the state machine keeps them: the record (spec, assignment with its
//! epoch, progress, totals) and the checkpointed case results.
//!
//! Money is counted in integer nano-dollars (`1 USD = 10^9`): totals are sums of
//! per-case integers, so they are the same whatever the order and batching of the
//! checkpoints that carried them (an evaluation resumed after a crash adds up to exactly
//! the total of one that ran straight through).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Nano-dollars in one US dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Lifecycle of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationStatus {
    /// Accepted, no result recorded yet.
    Queued,
    /// Results are being recorded.
    Running,
    /// Every case has its result.
    Completed,
    /// Stopped by an error that retries cannot fix.
    Failed,
    /// Cancelled by the tenant.
    Cancelled,
    /// Stopped because the tenant's monthly budget is spent.
    BudgetExceeded,
}

impl EvaluationStatus {
    /// Whether no more results will be recorded.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    /// The name used in the API and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::BudgetExceeded => "budget_exceeded",
        }
    }
}

/// Token and cost totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Cost in nano-dollars.
    pub cost_nanos: u64,
    /// Case results counted.
    pub cases: u64,
}

impl UsageTotals {
    /// Adds another total.
    pub fn add(&mut self, other: &UsageTotals) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cost_nanos = self.cost_nanos.saturating_add(other.cost_nanos);
        self.cases = self.cases.saturating_add(other.cases);
    }

    /// The cost in US dollars (for display).
    pub fn cost_usd(&self) -> f64 {
        nanos_to_usd(self.cost_nanos)
    }
}

/// Nano-dollars as dollars (for display only; never summed).
pub fn nanos_to_usd(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD as f64
}

/// Dollars as nano-dollars, rounded to the nearest; `None` when negative or not finite.
pub fn usd_to_nanos(usd: f64) -> Option<u64> {
    if !usd.is_finite() || usd < 0.0 {
        return None;
    }
    let n = (usd * NANOS_PER_USD as f64).round();
    (n <= u64::MAX as f64).then_some(n as u64)
}

/// Which work items have a recorded result: one bit per item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneSet {
    words: Vec<u64>,
    count: u32,
}

impl DoneSet {
    /// Whether item `i` is recorded.
    pub fn contains(&self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        self.words.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    /// Marks item `i`; returns false when it was already marked.
    pub fn insert(&mut self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        if !was {
            self.count += 1;
        }
        !was
    }

    /// How many items are recorded.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// An evaluation in the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// Evaluation id (unique cluster-wide).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Work items (cases × providers × repeats).
    pub total: u32,
    /// Status.
    pub status: EvaluationStatus,
    /// Node that runs it.
    pub owner: u64,
    /// Assignment epoch: checkpoints carrying another epoch are rejected.
    pub epoch: u64,
    /// Items with a recorded result.
    pub done: DoneSet,
    /// Recorded results that are errors.
    pub failed: u32,
    /// Recorded results served from the response cache.
    pub cached: u32,
    /// Tokens and cost of the recorded results.
    pub usage: UsageTotals,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
    /// Submission time (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// Last change.
    pub updated_at_ms: u64,
    /// When it reached a terminal status.
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
}

/// One case result in a checkpoint: what the state machine counts, plus the result
/// itself (stored as given and served by the results API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointItem {
    /// Work item index (`0..total`).
    pub index: u32,
    /// Model the usage is booked under.
    pub model: String,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Cost in nano-dollars.
    pub cost_nanos: u64,
    /// Whether the result is an error.
    pub error: bool,
    /// Whether it came from the response cache.
    pub cached: bool,
    /// The full result.
    pub result: Value,
}

/// Days since 1970-01-01 as a civil date `YYYY-MM-DD` (proleptic Gregorian, UTC).
pub fn day_of(at_ms: u64) -> String {
    let days = (at_ms / 86_400_000) as i64;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// The month (`YYYY-MM`) of a day `YYYY-MM-DD`.
pub fn month_of(day: &str) -> &str {
    day.get(..7).unwrap_or(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_of(1_795_219_200_000), "2026-11-21");
        assert_eq!(day_of(1_795_305_599_999), "2026-11-21");
        assert_eq!(month_of("2026-11-21"), "2026-11");
    }

    #[test]
    fn done_set_counts_each_item_once() {
        let mut d = DoneSet::default();
        assert!(d.insert(3));
        assert!(!d.insert(3));
        assert!(d.insert(130));
        assert!(d.contains(3) && d.contains(130) && !d.contains(4));
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn money_is_integer_nanos() {
        assert_eq!(usd_to_nanos(0.000_002), Some(2_000));
        assert_eq!(usd_to_nanos(-1.0), None);
        assert_eq!(usd_to_nanos(f64::NAN), None);
        let mut t = UsageTotals::default();
        t.add(&UsageTotals {
            cost_nanos: 1_500_000_000,
            ..Default::default()
        });
        assert_eq!(t.cost_usd(), 1.5);
    }
}
