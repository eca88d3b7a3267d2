//! How a provider is described: the serializable spec an evaluation carries
//! ([`ProviderSpec`], which names the API key's environment variable) and the resolved
//! [`ProviderConfig`] a [`crate::Provider`] is built from.

use crate::error::ConfigError;
use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// OpenAI chat completions over HTTP (also vLLM, Ollama, llama.cpp server, LiteLLM).
    #[serde(rename = "openai")]
    OpenAi,
    /// In-process models with no network: `echo` and `mock`.
    Builtin,
}

impl Kind {
    /// The name used in specs and cache keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Builtin => "builtin",
        }
    }
}

/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A provider as an evaluation spec describes it (no secrets: the API key is named by
/// the environment variable that holds it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Protocol.
    pub kind: Kind,
    /// e.g. `http://127.0.0.1:8000/v1`; ignored (may be empty) for builtin providers.
    #[serde(default)]
    pub base_url: String,
    /// Model name sent to the provider (`echo` or `mock` for builtin).
    pub model: String,
    /// Sampling and other parameters, sent as top-level request fields.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Environment variable holding the API key, sent as `Authorization: Bearer`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Per-attempt timeout in milliseconds (default 60 s).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Retry policy (default [`RetryPolicy::default`]).
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
}

impl ProviderSpec {
    /// Resolves the spec with `env` as the environment (pass `|k| std::env::var(k).ok()`).
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProviderConfig, ConfigError> {
        let api_key = match &self.api_key_env {
            Some(var) => Some(env(var).ok_or_else(|| ConfigError::MissingApiKey(var.clone()))?),
            None => None,
        };
        let config = ProviderConfig {
            kind: self.kind,
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            params: self.params.clone(),
            api_key,
            timeout: self
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            retry: self.retry.clone().unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }
}

/// A resolved provider configuration.
#[derive(Clone, PartialEq)]
pub struct ProviderConfig {
    /// Protocol.
    pub kind: Kind,
    /// Base URL (without `/chat/completions`).
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Request parameters.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// API key, if the provider needs one.
    pub api_key: Option<String>,
    /// Timeout of each attempt.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
}

// Hand-written so the API key never reaches a log line.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("params", &self.params)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Parameters the request body sets itself, so `params` may not.
const RESERVED_PARAMS: [&str; 2] = ["model", "messages"];

impl ProviderConfig {
    /// An OpenAI-compatible provider with default timeout and retries.
    pub fn openai(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self::new(Kind::OpenAi, base_url.into(), model.into())
    }

    /// A builtin provider (`echo` or `mock`) with default timeout and retries.
    pub fn builtin(model: impl Into<String>) -> Self {
        Self::new(Kind::Builtin, String::new(), model.into())
    }

    fn new(kind: Kind, base_url: String, model: String) -> Self {
        Self {
            kind,
            base_url,
            model,
            params: serde_json::Map::new(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    /// Sets one parameter.
    pub fn with_param(mut self, name: &str, value: serde_json::Value) -> Self {
        self.params.insert(name.to_string(), value);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The identity the breaker registry shares breakers by.
    pub fn id(&self) -> ProviderId {
        ProviderId {
            kind: self.kind,
            base_url: self.normalized_base_url().to_string(),
            model: self.model.clone(),
        }
    }

    /// `base_url` without trailing slashes, so `.../v1` and `.../v1/` are one provider.
    pub fn normalized_base_url(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// Checks what can be checked without calling the provider.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model.is_empty() {
            return Err(ConfigError::EmptyModel);
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        self.retry.validate()?;
        match self.kind {
            Kind::OpenAi => {
                let url = self.base_url.as_str();
                if url.starts_with("https://") {
                    if !cfg!(feature = "tls") {
                        return Err(ConfigError::TlsDisabled(self.base_url.clone()));
                    }
                } else if !url.starts_with("http://") {
                    return Err(ConfigError::BaseUrl(self.base_url.clone()));
                }
                for name in RESERVED_PARAMS {
                    if self.params.contains_key(name) {
                        return Err(param(name, "is set by the request itself"));
                    }
                }
                // The client reads one JSON body, not a server-sent event stream.
                if self.params.get("stream").is_some_and(|v| *v != false) {
                    return Err(param("stream", "streaming is not supported"));
                }
                Ok(())
            }
            Kind::Builtin => crate::builtin::BuiltinModel::from_config(self).map(|_| ()),
        }
    }
}

/// A [`ConfigError::Param`].
pub(crate) fn param(name: &str, problem: &str) -> ConfigError {
    ConfigError::Param {
        name: name.to_string(),
        problem: problem.to_string(),
    }
}

/// Which provider a call goes to: calls with the same identity share one breaker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProviderId {
    /// Protocol.
    pub kind: Kind,
    /// Normalized base URL.
    pub base_url: String,
    /// Model name.
    pub model: String,
}

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}#{}", self.kind.as_str(), self.base_url, self.model)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_resolves_with_defaults_and_the_key_from_env() {
        let spec: ProviderSpec = serde_json::from_value(json!({
            "kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "llama",
            "api_key_env": "KEY", "retry": {"max_retries": 1}
        }))
        .unwrap();
        let c = spec
            .resolve(|k| (k == "KEY").then(|| "sk-1".into()))
            .unwrap();
        assert_eq!(c.api_key.as_deref(), Some("sk-1"));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.retry.max_attempts(), 2);
        assert!(
            !format!("{c:?}").contains("sk-1"),
            "the key never reaches logs"
        );
        let builtin: ProviderSpec =
            serde_json::from_value(json!({"kind": "builtin", "model": "mock"})).unwrap();
        assert_eq!(builtin.resolve(|_| None).unwrap().kind, Kind::Builtin);
        assert!(
            serde_json::from_value::<ProviderSpec>(json!({"kind": "grpc", "model": "m"})).is_err()
        );
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let ok = ProviderConfig::openai("http://h:1/v1", "m");
        assert!(ok.validate().is_ok());
        assert!(matches!(
            ProviderConfig::openai("ftp://h/v1", "m").validate(),
            Err(ConfigError::BaseUrl(_))
        ));
        assert_eq!(
            ProviderConfig::openai("https://api.openai.com/v1", "m")
                .validate()
                .is_ok(),
            cfg!(feature = "tls")
        );
        assert!(ProviderConfig::openai("http://h/v1", "")
            .validate()
            .is_err());
        assert!(ok.clone().with_timeout(Duration::ZERO).validate().is_err());
        assert!(ok
            .clone()
            .with_param("model", json!("x"))
            .validate()
            .is_err());
        assert!(ok
            .clone()
            .with_param("stream", json!(true))
            .validate()
            .is_err());
        assert!(ok
            .clone()
            .with_param("stream", json!(false))
            .validate()
            .is_ok());
    }

    #[test]
    fn identity_ignores_params_key_and_trailing_slash() {
        let a = ProviderConfig::openai("http://h:1/v1/", "m").with_param("temperature", json!(1));
        let b = ProviderConfig::openai("http://h:1/v1", "m").with_api_key("k");
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().to_string(), "openai:http://h:1/v1#m");
        assert_ne!(a.id(), ProviderConfig::openai("http://h:1/v1", "n").id());
    }
}
