//! A provider client: one call = up to `max_retries + 1` attempts, each admitted by the
//! provider's circuit breaker and bounded by the timeout, with backoff between them.
//!
//! Retry rules:
//! - retried: timeouts, connection errors, HTTP 408/409/429/5xx, builtin injected errors;
//!   HTTP 429 waits what `retry-after-ms`/`Retry-After` asks (a wait longer than
//!   `max_retry_after_ms` ends the call, retryable, instead of holding the slot),
//!   everything else waits [`crate::retry::backoff`];
//! - not retried: `insufficient_quota` (whatever the status) and other 4xx;
//! - a malformed 2xx body (not JSON, no choices, no string content) is retried once per
//!   call as transient (a proxy cut the body short) and then ends the call: a server that
//!   always answers garbage (wrong URL, HTML page) should not use up the whole budget.
//!   It counts as a failure for the breaker.
//!
//! The breaker counts what says something about the provider's health
//! ([`ProviderError::is_provider_failure`]); a 400 is the caller's fault and counts as a
//! healthy answer. A breaker that is open (or out of half-open probes) ends the call at
//! once with [`ErrorKind::CircuitOpen`].

use crate::breaker::Breaker;
use crate::builtin::BuiltinModel;
use crate::cache::{CacheKey, ResponseCache};
use crate::config::{Kind, ProviderConfig, ProviderId};
use crate::error::{ConfigError, ErrorKind, ProviderError};
use crate::message::{ChatMessage, Completion};
use crate::openai::{self, Answer};
use crate::retry::backoff;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A pooled HTTP client suitable for providers (share one across providers).
pub fn http_client() -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ConfigError::Client(e.to_string()))
}

#[derive(Debug)]
enum Backend {
    OpenAi { http: reqwest::Client, url: String },
    Builtin(BuiltinModel),
}

/// A client for one provider configuration.
#[derive(Debug)]
pub struct Provider {
    config: ProviderConfig,
    breaker: Arc<Breaker>,
    backend: Backend,
}

impl Provider {
    /// A provider with its own HTTP client, sharing `breaker` with every provider of the
    /// same [`ProviderId`] (get it from [`crate::Registry`]).
    pub fn new(config: ProviderConfig, breaker: Arc<Breaker>) -> Result<Self, ConfigError> {
        let http = match config.kind {
            Kind::OpenAi => Some(http_client()?),
            Kind::Builtin => None,
        };
        Self::build(config, breaker, http)
    }

    /// A provider using the pooled `http` client.
    pub fn with_client(
        config: ProviderConfig,
        breaker: Arc<Breaker>,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        Self::build(config, breaker, Some(http))
    }

    fn build(
        config: ProviderConfig,
        breaker: Arc<Breaker>,
        http: Option<reqwest::Client>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let backend = match config.kind {
            Kind::OpenAi => Backend::OpenAi {
                http: match http {
                    Some(h) => h,
                    None => http_client()?,
                },
                url: openai::endpoint(&config),
            },
            Kind::Builtin => Backend::Builtin(BuiltinModel::from_config(&config)?),
        };
        Ok(Self {
            config,
            breaker,
            backend,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The identity breakers are shared by.
    pub fn id(&self) -> ProviderId {
        self.config.id()
    }

    /// The breaker (state and counters for metrics).
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Sends `messages` and returns the first answer, retrying as the module docs say.
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<Completion, ProviderError> {
        self.breaker.count_call();
        let policy = &self.config.retry;
        let max_attempts = policy.max_attempts();
        let mut malformed_seen = false;
        let mut attempt: u32 = 0;
        let mut last: Option<ProviderError> = None;
        loop {
            let permit = match self.breaker.try_acquire() {
                Ok(p) => p,
                Err(rejected) => {
                    let mut message = format!(
                        "circuit breaker for {} is {}",
                        self.id(),
                        rejected.state.as_str()
                    );
                    // Opened by this call's own failures: say what they were.
                    if let Some(last) = &last {
                        message = format!("{message}; last attempt: {last}");
                    }
                    let mut e = ProviderError::new(ErrorKind::CircuitOpen, message);
                    e.status = last.as_ref().and_then(|l| l.status);
                    e.code = last.and_then(|l| l.code);
                    e.retry_after = Some(rejected.retry_in);
                    e.attempts = attempt;
                    return Err(e);
                }
            };
            let started = Instant::now();
            let result =
                match tokio::time::timeout(self.config.timeout, self.attempt(messages, attempt))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(ProviderError::new(
                        ErrorKind::Timeout,
                        format!("no answer within {} ms", self.config.timeout.as_millis()),
                    )),
                };
            let elapsed = started.elapsed();
            attempt += 1;
            let mut err = match result {
                Ok(answer) => {
                    permit.success();
                    return Ok(Completion {
                        text: answer.text,
                        usage: answer.usage,
                        finish_reason: answer.finish_reason,
                        latency_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                        attempts: attempt,
                        cached: false,
                    });
                }
                Err(e) => e,
            };
            if err.is_provider_failure() {
                permit.failure();
            } else {
                permit.success();
            }
            err.attempts = attempt;
            let malformed_again = err.kind == ErrorKind::Malformed && malformed_seen;
            malformed_seen |= err.kind == ErrorKind::Malformed;
            if !err.retryable || attempt >= max_attempts || malformed_again {
                return Err(err);
            }
            let wait = match err.retry_after {
                Some(asked) if asked > Duration::from_millis(policy.max_retry_after_ms) => {
                    return Err(err);
                }
                Some(asked) => asked,
                None => backoff(policy, attempt - 1, rand::random::<f64>()),
            };
            tracing::debug!(
                provider = %self.id(),
                attempt,
                kind = %err.kind,
                status = err.status,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying provider call"
            );
            self.breaker.count_retry();
            last = Some(err);
            tokio::time::sleep(wait).await;
        }
    }

    /// [`Self::complete`] through `tenant`'s entries in `cache`: a fresh cached answer is
    /// returned without calling the provider; a new answer is stored. The cache is best
    /// effort: its errors are logged and the call goes on.
    pub async fn complete_cached(
        &self,
        cache: &ResponseCache,
        tenant: &str,
        messages: &[ChatMessage],
    ) -> Result<Completion, ProviderError> {
        let key = CacheKey::new(&self.config, messages);
        match cache.get(tenant, key).await {
            Ok(Some(hit)) => return Ok(hit),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, tenant, "provider cache read failed"),
        }
        let completion = self.complete(messages).await?;
        if let Err(e) = cache.put(tenant, key, completion.clone()).await {
            tracing::warn!(error = %e, tenant, "provider cache write failed");
        }
        Ok(completion)
    }

    async fn attempt(
        &self,
        messages: &[ChatMessage],
        attempt: u32,
    ) -> Result<Answer, ProviderError> {
        match &self.backend {
            Backend::OpenAi { http, url } => {
                let body = openai::request_body(&self.config, messages);
                openai::attempt(
                    http,
                    url,
                    self.config.api_key.as_deref(),
                    body,
                    self.config.timeout,
                )
                .await
            }
            Backend::Builtin(model) => {
                if !model.latency().is_zero() {
                    tokio::time::sleep(model.latency()).await;
                }
                let (text, usage) = model.respond(messages, attempt)?;
                Ok(Answer {
                    text,
                    usage: Some(usage),
                    finish_reason: Some("stop".into()),
                })
            }
        }
    }
}
