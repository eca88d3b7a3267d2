//! Colony's model-provider clients for evaluations: the OpenAI chat completions API
//! (OpenAI, vLLM, Ollama, llama.cpp server, LiteLLM) and builtin `echo`/`mock` models,
//! with bounded retries, a per-provider circuit breaker and a per-tenant response cache.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use colony_providers::{BreakerConfig, ChatMessage, ProviderConfig, Registry};
//!
//! let registry = Registry::new(BreakerConfig::default())?;
//! let echo = registry.provider(ProviderConfig::builtin("echo"))?;
//! let answer = echo.complete(&[ChatMessage::user("2 + 2")]).await?;
//! assert_eq!(answer.text, "2 + 2");
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: a provider's spec (as evaluations carry it, naming the API key's
//!   environment variable), its resolved config and its identity
//! - [`message`]: chat messages in, completions and token usage out
//! - [`error`]: config errors and call errors (retryable? status, provider code, attempts)
//! - [`retry`]: retry policy, backoff with jitter, `Retry-After`, retryable statuses
//! - [`breaker`]: the circuit breaker and the counters metrics read
//! - [`openai`]: the chat completions wire format and one HTTP attempt
//! - [`builtin`]: the `echo` and `mock` models (deterministic, no network)
//! - [`provider`]: the call loop tying attempts, retries and the breaker together
//! - [`registry`]: one breaker per provider identity and a shared HTTP client per node
//! - [`cache`]: the per-tenant response cache on a caller-owned sled tree

pub mod breaker;
pub mod builtin;
pub mod cache;
pub mod config;
pub mod error;
pub mod message;
pub mod openai;
pub mod provider;
pub mod registry;
pub mod retry;

pub use breaker::{Breaker, BreakerConfig, BreakerState, BreakerStats, Permit, Rejected};
pub use cache::{CacheError, CacheKey, ResponseCache};
pub use config::{Kind, ProviderConfig, ProviderId, ProviderSpec};
pub use error::{ConfigError, ErrorKind, ProviderError};
pub use message::{ChatMessage, Completion, Usage};
pub use provider::{http_client, Provider};
pub use registry::Registry;
pub use retry::RetryPolicy;
