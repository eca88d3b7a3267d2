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
//!
//! Egress: each OpenAI provider has its own HTTP client that follows no redirects, uses
//! no proxy (`HTTP_PROXY` in the node's environment must not route around the policy)
//! and resolves names only through a [`PolicyResolver`] for the provider's host, which
//! checks every address against the [`EgressPolicy`] before the client connects to
//! exactly those addresses. An IP-literal host is never resolved, so it is checked when
//! the provider is built (a [`ConfigError::Egress`]) and again before every attempt. A
//! refusal is [`ErrorKind::EgressDenied`]: not retried, not a provider failure, and
//! nothing was sent. The credential goes only to a `host:port` it is bound to.

use crate::breaker::Breaker;
use crate::builtin::BuiltinModel;
use crate::cache::{CacheKey, ResponseCache};
use crate::config::{Kind, ProviderConfig, ProviderId, Target};
use crate::egress::{EgressPolicy, PolicyResolver};
use crate::error::{ConfigError, ErrorKind, ProviderError};
use crate::message::{ChatMessage, Completion};
use crate::openai::{self, Answer};
use crate::retry::backoff;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The HTTP client of one OpenAI provider: no redirects, no proxy, names resolved and
/// checked by the policy resolver for `target`'s host; `https://` trusts Mozilla's roots,
/// or only `ca_pem` when the credential brings a private CA.
fn http_client(
    egress: &Arc<EgressPolicy>,
    target: &Target,
    ca_pem: Option<&str>,
) -> Result<reqwest::Client, ConfigError> {
    let builder = reqwest::Client::builder();
    #[cfg(feature = "tls")]
    let builder = {
        use colony_tls::client::{private_ca, public_roots, ALPN_HTTP1};
        let tls = match ca_pem {
            Some(pem) => private_ca(pem.as_bytes(), ALPN_HTTP1),
            None => public_roots(ALPN_HTTP1),
        }
        .map_err(|e| ConfigError::Client(format!("the credential's CA: {e}")))?;
        builder.tls_backend_preconfigured(tls)
    };
    #[cfg(not(feature = "tls"))]
    let _ = ca_pem;
    builder
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .referer(false)
        .dns_resolver(PolicyResolver::new(
            egress.clone(),
            target.host.clone(),
            target.port,
        ))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ConfigError::Client(e.to_string()))
}

/// An OpenAI provider's client and checked destination.
#[derive(Debug)]
struct OpenAiBackend {
    http: reqwest::Client,
    /// The chat completions endpoint.
    url: url::Url,
    /// The host as the URL writes it.
    host: String,
    /// `host:port`, as credentials are bound.
    host_port: String,
    /// The address of an IP-literal host (checked before every attempt).
    literal: Option<SocketAddr>,
    egress: Arc<EgressPolicy>,
}

impl OpenAiBackend {
    fn new(config: &ProviderConfig, egress: Arc<EgressPolicy>) -> Result<Self, ConfigError> {
        let target = config.target()?;
        let literal = target.literal.map(|ip| SocketAddr::new(ip, target.port));
        if let Some(addr) = literal {
            egress.check(&target.host, addr)?;
        }
        let ca_pem = config.credential.as_ref().and_then(|c| c.ca_pem.as_deref());
        let http = http_client(&egress, &target, ca_pem)?;
        let host_port = target.host_port();
        Ok(Self {
            http,
            url: target.url,
            host: target.host,
            host_port,
            literal,
            egress,
        })
    }
}

#[derive(Debug)]
enum Backend {
    OpenAi(OpenAiBackend),
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
    /// A provider with its own HTTP client whose connections `egress` governs, sharing
    /// `breaker` with the providers of the same tenant and [`ProviderId`] (get both from
    /// [`crate::Registry::provider`]; tests may build one directly).
    pub fn new(
        config: ProviderConfig,
        breaker: Arc<Breaker>,
        egress: impl Into<Arc<EgressPolicy>>,
    ) -> Result<Self, ConfigError> {
        Self::build(config, egress.into(), |_| breaker)
    }

    /// Validates `config`, checks it against `egress` and only then asks `breaker` for
    /// the breaker, so a refused config never takes a registry slot.
    pub(crate) fn build(
        config: ProviderConfig,
        egress: Arc<EgressPolicy>,
        breaker: impl FnOnce(&ProviderConfig) -> Arc<Breaker>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let backend = match config.kind {
            Kind::OpenAi => Backend::OpenAi(OpenAiBackend::new(&config, egress)?),
            Kind::Builtin => Backend::Builtin(BuiltinModel::parse(&config.model, &config.params)?),
        };
        let breaker = breaker(&config);
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
            Backend::OpenAi(b) => {
                // Resolved names are checked by the resolver; a literal is checked here.
                if let Some(addr) = b.literal {
                    b.egress.check(&b.host, addr)?;
                }
                let bearer = match &self.config.credential {
                    Some(c) if c.allows(&b.host_port) => Some(c.value.as_str()),
                    Some(c) => {
                        // Unreachable after validate(); kept so no path sends it elsewhere.
                        return Err(ProviderError::new(
                            ErrorKind::EgressDenied,
                            format!("credential {:?} may not be sent to {}", c.name, b.host_port),
                        ));
                    }
                    None => None,
                };
                let body = openai::request_body(&self.config, messages);
                openai::attempt(
                    &b.http,
                    &b.url,
                    bearer,
                    body,
                    self.config.timeout,
                    self.config.max_response_bytes,
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
