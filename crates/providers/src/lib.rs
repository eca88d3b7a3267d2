//! Colony's model-provider clients for evaluations: the OpenAI chat completions API
//! (OpenAI, vLLM, Ollama, llama.cpp server, LiteLLM) and builtin `echo`/`mock` models,
//! with bounded retries, a per-tenant, per-provider circuit breaker, a per-tenant
//! response cache and an egress policy deciding which addresses a tenant's `base_url`
//! may reach.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use colony_providers::{BreakerConfig, ChatMessage, EgressPolicy, ProviderConfig, Registry};
//!
//! let registry = Registry::new(BreakerConfig::default(), EgressPolicy::default())?;
//! let echo = registry.provider("acme", ProviderConfig::builtin("echo"))?;
//! let answer = echo.complete(&[ChatMessage::user("2 + 2")]).await?;
//! assert_eq!(answer.text, "2 + 2");
//! # Ok(()) }
//! ```
//!
//! Tenants are hostile: a `base_url` may not reach loopback, private, link-local,
//! metadata or the node's own listeners unless the operator allows it
//! ([`EgressPolicy`]); redirects are not followed; credentials go only to the hosts they
//! are bound to ([`Credential`]); bodies are read up to a cap
//! ([`DEFAULT_MAX_RESPONSE_BYTES`]) and error bodies are never echoed; breakers are
//! never shared between tenants.
//!
//! # Layout
//! - [`config`]: a provider's spec (as evaluations carry it, no secrets), its resolved
//!   config, the credential it may carry, and its identity
//! - [`egress`]: the egress policy (special addresses, allow rules, own listeners) and
//!   the resolver that checks every address a name resolves to
//! - [`message`]: chat messages in, completions and token usage out
//! - [`error`]: config errors and call errors (retryable? status, provider code, attempts)
//! - [`retry`]: retry policy, backoff with jitter, `Retry-After`, retryable statuses
//! - [`breaker`]: the circuit breaker and the counters metrics read
//! - [`openai`]: the chat completions wire format and one HTTP attempt (capped body, no
//!   redirects, error bodies described but not echoed)
//! - [`builtin`]: the `echo` and `mock` models (deterministic, no network)
//! - [`provider`]: the call loop tying attempts, retries and the breaker together, and
//!   each provider's own policy-bound HTTP client
//! - [`registry`]: one breaker per tenant and provider identity (bounded), and the
//!   node's egress policy
//! - [`cache`]: the per-tenant response cache on a caller-owned sled tree

pub mod breaker;
pub mod builtin;
pub mod cache;
pub mod config;
pub mod egress;
pub mod error;
pub mod message;
pub mod openai;
pub mod provider;
pub mod registry;
pub mod retry;

pub use breaker::{Breaker, BreakerConfig, BreakerState, BreakerStats, Permit, Rejected};
pub use cache::{CacheError, CacheKey, ResponseCache};
pub use config::{
    Credential, Kind, ProviderConfig, ProviderId, ProviderSpec, DEFAULT_MAX_RESPONSE_BYTES,
};
pub use egress::{EgressConfigError, EgressDenied, EgressPolicy, EgressRule};
pub use error::{ConfigError, ErrorKind, ProviderError};
pub use message::{ChatMessage, Completion, Usage};
pub use provider::Provider;
pub use registry::Registry;
pub use retry::RetryPolicy;
