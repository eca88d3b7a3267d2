//! The body of `POST /v1/evaluations` as serde types. Every object rejects unknown
//! keys; ranges and cross-references are checked by [`crate::validate`].
//!
//! ```json
//! {
//!   "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
//!   "prompt": "Q: {{question}}",
//!   "cases": [{"vars": {"question": "2+2?"}, "reference": "4"}],
//!   "scorers": [{"type": "numeric"}]
//! }
//! ```

use std::collections::BTreeMap;

use colony_scorers::ScorerSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A whole evaluation: who to ask, what to ask, and how to score the answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// The model providers to evaluate (one or more, unique ids).
    pub providers: Vec<ProviderSpec>,
    /// A single-message prompt template; exactly one of `prompt` and `messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Chat message templates; exactly one of `prompt` and `messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageSpec>>,
    /// The test cases.
    pub cases: Vec<CaseSpec>,
    /// How each output is scored (one or more).
    pub scorers: Vec<ScorerSpec>,
    /// Provider calls in flight at once (default [`DEFAULT_CONCURRENCY`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// How many times each case is run per provider (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    /// Timeout of one provider call in milliseconds (default [`DEFAULT_TIMEOUT_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries of a failed provider call (default [`DEFAULT_MAX_RETRIES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

/// Default number of provider calls in flight.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// Default timeout of one provider call.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default number of retries of a failed call.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

impl EvalSpec {
    /// `concurrency` or its default.
    pub fn concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
    }

    /// `repeat` or its default (1).
    pub fn repeat(&self) -> u32 {
        self.repeat.unwrap_or(1)
    }

    /// `timeout_ms` or its default.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    /// `max_retries` or its default.
    pub fn max_retries(&self) -> u32 {
        self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES)
    }
}

/// One model provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Unique id within the spec (`[A-Za-z0-9._-]`, 1 to 64 characters).
    pub id: String,
    /// How the provider is called.
    pub kind: ProviderKind,
    /// Base URL of an OpenAI-compatible API (required for `openai`, absent for `builtin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The model name; for `builtin`, `echo` or `mock`.
    pub model: String,
    /// Sampling and mock settings.
    #[serde(default)]
    pub params: ProviderParams,
    /// Name of the provider credential whose value is sent as the bearer key (`openai`
    /// only): the tenant's own (`PUT /v1/credentials/{name}`) or one the operator
    /// configured for it. The value goes only to the hosts the credential allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// No longer accepted (it let a spec read any variable of the node's environment):
    /// kept in the type only so validation can say what replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<Value>,
}

/// How a provider is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The OpenAI-compatible chat completions API at `base_url`.
    Openai,
    /// In-process: `echo` answers with the rendered prompt, `mock` deterministically.
    Builtin,
}

/// The builtin model that answers with the rendered prompt.
pub const BUILTIN_ECHO: &str = "echo";
/// The builtin deterministic mock model (configurable latency and error rate).
pub const BUILTIN_MOCK: &str = "mock";

/// Provider parameters; sampling ones go to the API, mock ones to the builtin mock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderParams {
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Maximum completion tokens, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop sequences (at most 4, none empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// Presence penalty, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Mock only: simulated latency of every call in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Mock only: fraction of calls that fail, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
}

/// One chat message template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// Who speaks.
    pub role: Role,
    /// The message template.
    pub content: String,
}

/// A chat message role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// System instructions.
    System,
    /// The user's turn.
    User,
    /// A prior assistant turn (few-shot examples).
    Assistant,
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    /// Values for the prompt's placeholders.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// The expected answer; at most one of `reference` and `references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Acceptable answers; at most one of `reference` and `references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<String>>,
    /// Precomputed outputs by provider id; those providers are not called (score-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<BTreeMap<String, String>>,
}

impl CaseSpec {
    /// The case's references (`reference` as a one-element list), possibly empty.
    pub fn references(&self) -> Vec<String> {
        match (&self.reference, &self.references) {
            (Some(r), _) => vec![r.clone()],
            (None, Some(rs)) => rs.clone(),
            (None, None) => Vec::new(),
        }
    }

    /// The precomputed output for `provider_id`, if the case has one.
    pub fn output_for(&self, provider_id: &str) -> Option<&str> {
        self.outputs.as_ref()?.get(provider_id).map(String::as_str)
    }
}
