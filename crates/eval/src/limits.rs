//! How large an evaluation a spec may ask for; the node takes these from its config
//! (and may tighten them per tier).

use serde::{Deserialize, Serialize};

/// Upper bounds checked by [`crate::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpecLimits {
    /// Most cases in one spec.
    pub max_cases: usize,
    /// Most providers in one spec.
    pub max_providers: usize,
    /// Most scorers in one spec.
    pub max_scorers: usize,
    /// Largest `repeat`.
    pub max_repeat: u32,
    /// Largest `concurrency`.
    pub max_concurrency: u32,
    /// Largest `timeout_ms` (and mock `latency_ms`).
    pub max_timeout_ms: u64,
    /// Largest `max_retries`.
    pub max_retries: u32,
    /// Most work items (cases x providers x repeat).
    pub max_work_items: usize,
    /// Largest rendered prompt of one case, in bytes (all messages together).
    pub max_prompt_bytes: usize,
    /// Largest reference of one case, in bytes (each of `references`, and their sum).
    pub max_reference_bytes: usize,
    /// Largest output stored and scored, in bytes: a precomputed output longer than this
    /// is refused; a provider's longer answer is cut to it (and marked truncated).
    pub max_output_bytes: usize,
}

impl SpecLimits {
    /// No bounds at all: for re-reading a spec that was validated at submission, where
    /// only its shape matters.
    pub fn unbounded() -> Self {
        SpecLimits {
            max_cases: usize::MAX,
            max_providers: usize::MAX,
            max_scorers: usize::MAX,
            max_repeat: u32::MAX,
            max_concurrency: u32::MAX,
            max_timeout_ms: u64::MAX,
            max_retries: u32::MAX,
            max_work_items: usize::MAX,
            max_prompt_bytes: usize::MAX,
            max_reference_bytes: usize::MAX,
            max_output_bytes: usize::MAX,
        }
    }
}

impl Default for SpecLimits {
    fn default() -> Self {
        SpecLimits {
            max_cases: 10_000,
            max_providers: 8,
            max_scorers: 16,
            max_repeat: 10,
            max_concurrency: 64,
            max_timeout_ms: 600_000,
            max_retries: 10,
            max_work_items: 100_000,
            max_prompt_bytes: 64 * 1024,
            max_reference_bytes: 64 * 1024,
            max_output_bytes: 64 * 1024,
        }
    }
}
