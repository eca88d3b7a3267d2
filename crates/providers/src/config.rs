//! How a provider is described: the serializable spec an evaluation carries
//! ([`ProviderSpec`], no secrets), the resolved [`ProviderConfig`] a [`crate::Provider`]
//! is built from, and the named [`Credential`] it may carry, bound to the hosts it may be
//! sent to.
//!
//! An OpenAI `base_url` must be an `http://` or `https://` URL with a host and without a
//! user name, password, query or fragment (so a tenant cannot choose the request path
//! with `?`/`#` or smuggle a secret in the URL).

use crate::error::{param, ConfigError};
use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
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

/// Default cap on a provider's response body (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A provider as an evaluation spec describes it (no secrets: a credential is attached
/// by the caller with [`ProviderConfig::with_credential`]).
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
    /// Per-attempt timeout in milliseconds (default 60 s).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Retry policy (default [`RetryPolicy::default`]).
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
}

impl ProviderSpec {
    /// The config this spec describes (without a credential), validated.
    pub fn resolve(&self) -> Result<ProviderConfig, ConfigError> {
        let config = ProviderConfig {
            kind: self.kind,
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            params: self.params.clone(),
            credential: None,
            timeout: self
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            retry: self.retry.clone().unwrap_or_default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        };
        config.validate()?;
        Ok(config)
    }
}

/// A named secret (sent as `Authorization: Bearer`) and the `host:port`s it may be sent
/// to; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The credential's name (as the tenant stored it).
    pub name: String,
    /// The secret.
    pub value: String,
    /// Lowercase `host:port`s (`api.openai.com:443`, `[::1]:8000`) it may be sent to.
    pub allowed_hosts: Vec<String>,
    /// PEM of the CA that a private `https://` endpoint's certificate chains to; when
    /// set, only that CA is trusted for calls carrying this credential.
    pub ca_pem: Option<String>,
}

impl Credential {
    /// A credential named `name` bound to `allowed_hosts` (lowercased).
    pub fn new<I, S>(name: impl Into<String>, value: impl Into<String>, allowed_hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            value: value.into(),
            allowed_hosts: allowed_hosts
                .into_iter()
                .map(|h| h.into().trim().to_ascii_lowercase())
                .collect(),
            ca_pem: None,
        }
    }

    /// Trusts only the CA of `ca_pem` (PEM) for calls carrying this credential.
    pub fn with_ca_pem(mut self, ca_pem: impl Into<String>) -> Self {
        self.ca_pem = Some(ca_pem.into());
        self
    }

    /// Whether it may be sent to `host_port` (`host:port`, either case).
    pub fn allows(&self, host_port: &str) -> bool {
        self.allowed_hosts
            .iter()
            .any(|h| h.trim().eq_ignore_ascii_case(host_port))
    }
}

// Hand-written so the secret never reaches a log line.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .finish()
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
    /// The credential sent as `Authorization: Bearer`, if the provider needs one; it
    /// must be bound to the URL's `host:port`.
    pub credential: Option<Credential>,
    /// Timeout of each attempt.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Largest response body read (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub max_response_bytes: usize,
}

// Hand-written so the credential's secret never reaches a log line.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("params", &self.params)
            .field("credential", &self.credential)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// Where an OpenAI provider's requests go, as checked by [`ProviderConfig::target`].
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The chat completions endpoint.
    pub url: url::Url,
    /// The host as the URL writes it (IPv6 in brackets).
    pub host: String,
    /// The port (80/443 when the URL has none).
    pub port: u16,
    /// The host's address when it is an IP literal (no DNS lookup happens for it).
    pub literal: Option<IpAddr>,
}

impl Target {
    /// `host:port`, as credentials are bound.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
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
            credential: None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
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

    /// Sets the credential (sent only to the hosts it is bound to).
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Sets the largest response body read.
    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
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

    /// `{base_url}/chat/completions`: where an OpenAI-compatible provider's calls go.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.normalized_base_url())
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
                let target = self.target()?;
                if let Some(credential) = &self.credential {
                    let host = target.host_port();
                    if !credential.allows(&host) {
                        let allowed = if credential.allowed_hosts.is_empty() {
                            "none".to_string()
                        } else {
                            credential.allowed_hosts.join(", ")
                        };
                        return Err(ConfigError::CredentialHost {
                            credential: credential.name.clone(),
                            host,
                            allowed,
                        });
                    }
                    // Over plain HTTP a key may only go to a local or private address
                    // (a model server beside the node), never in clear across the internet.
                    let local = target.host.eq_ignore_ascii_case("localhost")
                        || target
                            .literal
                            .is_some_and(|ip| crate::egress::special(ip).is_some());
                    if target.url.scheme() == "http" && !local {
                        return Err(ConfigError::CredentialCleartext {
                            credential: credential.name.clone(),
                            host,
                        });
                    }
                }
                if self.max_response_bytes == 0 {
                    return Err(param("max_response_bytes", "must be greater than zero"));
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
            Kind::Builtin => {
                crate::builtin::BuiltinModel::parse(&self.model, &self.params).map(|_| ())
            }
        }
    }

    /// Parses and checks an OpenAI provider's `base_url` and the endpoint built from it.
    pub(crate) fn target(&self) -> Result<Target, ConfigError> {
        let raw = self.base_url.as_str();
        let base = url::Url::parse(raw).map_err(|e| ConfigError::InvalidBaseUrl {
            url: raw.to_string(),
            reason: e.to_string(),
        })?;
        match base.scheme() {
            "http" => {}
            "https" => {
                if !cfg!(feature = "tls") {
                    return Err(ConfigError::TlsDisabled(raw.to_string()));
                }
            }
            _ => return Err(ConfigError::BaseUrl(raw.to_string())),
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ConfigError::BaseUrlUserinfo);
        }
        if base.query().is_some() {
            return Err(ConfigError::BaseUrlQuery(raw.to_string()));
        }
        if base.fragment().is_some() {
            return Err(ConfigError::BaseUrlFragment(raw.to_string()));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::BaseUrlNoHost(raw.to_string()));
        }
        // The URL requests go to, parsed once here and handed to the client as is; it must
        // name the same host and port as base_url (trimming slashes cannot change that,
        // but the check is cheap).
        let endpoint = self.endpoint();
        let url = url::Url::parse(&endpoint).map_err(|e| ConfigError::InvalidBaseUrl {
            url: raw.to_string(),
            reason: e.to_string(),
        })?;
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
            _ => return Err(ConfigError::BaseUrlNoHost(raw.to_string())),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| ConfigError::BaseUrl(raw.to_string()))?;
        if Some(host.as_str()) != base.host_str().map(str::to_ascii_lowercase).as_deref()
            || Some(port) != base.port_or_known_default()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(ConfigError::BaseUrl(raw.to_string()));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
            // The URL parser reads every IPv4 form as an address; this is belt and braces.
            Some(url::Host::Domain(d)) => d.parse::<IpAddr>().ok(),
            None => return Err(ConfigError::BaseUrlNoHost(raw.to_string())),
        };
        Ok(Target {
            url,
            host,
            port,
            literal,
        })
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
    fn spec_resolves_with_defaults_and_no_secrets() {
        let spec: ProviderSpec = serde_json::from_value(json!({
            "kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "llama",
            "retry": {"max_retries": 1}
        }))
        .unwrap();
        let c = spec.resolve().unwrap();
        assert_eq!(c.credential, None);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        assert_eq!(c.retry.max_attempts(), 2);
        let builtin: ProviderSpec =
            serde_json::from_value(json!({"kind": "builtin", "model": "mock"})).unwrap();
        assert_eq!(builtin.resolve().unwrap().kind, Kind::Builtin);
        assert!(
            serde_json::from_value::<ProviderSpec>(json!({"kind": "grpc", "model": "m"})).is_err()
        );
        // A tenant can no longer name a node environment variable.
        assert!(serde_json::from_value::<ProviderSpec>(json!({
            "kind": "openai", "base_url": "http://h/v1", "model": "m", "api_key_env": "HOME"
        }))
        .is_err());
    }

    #[test]
    fn credentials_never_reach_debug_output_and_are_bound_to_hosts() {
        let cred = Credential::new("openai", "sk-secret", ["API.example.com:443", "h:8000"]);
        assert_eq!(cred.allowed_hosts, vec!["api.example.com:443", "h:8000"]);
        let c = ProviderConfig::openai("http://h:8000/v1", "m").with_credential(cred.clone());
        // A named host over plain http: the key would cross the network in clear.
        assert!(matches!(
            c.validate(),
            Err(ConfigError::CredentialCleartext { .. })
        ));
        let local = Credential::new("local", "sk-local", ["127.0.0.1:8000", "localhost:8000"]);
        for url in ["http://127.0.0.1:8000/v1", "http://localhost:8000/v1"] {
            let ok = ProviderConfig::openai(url, "m").with_credential(local.clone());
            assert!(ok.validate().is_ok(), "{url}");
        }
        let shown = format!("{c:?} {cred:?}");
        assert!(!shown.contains("sk-secret"), "{shown}");
        assert!(shown.contains("openai"));

        // Another port, another host, the default port: refused, naming what is allowed.
        for url in [
            "http://h:8001/v1",
            "http://other:8000/v1",
            "http://h/v1",
            "http://h.:8000/v1",
        ] {
            let err = ProviderConfig::openai(url, "m")
                .with_credential(cred.clone())
                .validate()
                .unwrap_err();
            let named = match &err {
                ConfigError::CredentialHost { credential, .. }
                | ConfigError::CredentialCleartext { credential, .. } => credential.as_str(),
                _ => "",
            };
            assert_eq!(named, "openai", "{url}: {err:?}");
            assert!(
                err.to_string().contains("api.example.com:443, h:8000"),
                "{err}"
            );
            assert!(!err.to_string().contains("sk-secret"));
        }
        let default_port = Credential::new("k", "v", ["localhost:80"]);
        assert!(ProviderConfig::openai("http://LOCALHOST:80/v1", "m")
            .with_credential(default_port.clone())
            .validate()
            .is_ok());
        assert!(ProviderConfig::openai("http://localhost/v1", "m")
            .with_credential(default_port)
            .validate()
            .is_ok());
        let v6 = Credential::new("k", "v", ["[::1]:8000"]);
        assert!(ProviderConfig::openai("http://[::1]:8000/v1", "m")
            .with_credential(v6)
            .validate()
            .is_ok());
        let nowhere = Credential::new("k", "v", Vec::<String>::new());
        let err = ProviderConfig::openai("http://h/v1", "m")
            .with_credential(nowhere)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("(allowed: none)"), "{err}");
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
        assert!(ok.clone().with_max_response_bytes(0).validate().is_err());
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
    fn base_url_may_not_choose_the_path_or_carry_secrets() {
        let check = |url: &str| ProviderConfig::openai(url, "m").validate();
        assert!(matches!(
            check("http://h:1/admin?"),
            Err(ConfigError::BaseUrlQuery(_))
        ));
        assert!(matches!(
            check("http://h:1/admin?x=1"),
            Err(ConfigError::BaseUrlQuery(_))
        ));
        assert!(matches!(
            check("http://h:1/admin#"),
            Err(ConfigError::BaseUrlFragment(_))
        ));
        let err = check("http://user:hunter2@h:1/v1").unwrap_err();
        assert!(matches!(err, ConfigError::BaseUrlUserinfo));
        assert!(!err.to_string().contains("hunter2"));
        assert!(matches!(
            check("http://user@h:1/v1"),
            Err(ConfigError::BaseUrlUserinfo)
        ));
        assert!(matches!(
            check("not a url"),
            Err(ConfigError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            check("http://h:99999/v1"),
            Err(ConfigError::InvalidBaseUrl { .. })
        ));
        assert!(check("http://").is_err());
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(ConfigError::BaseUrl(_))
        ));
    }

    #[test]
    fn the_target_is_what_the_url_parser_sees() {
        let t = ProviderConfig::openai("http://LOCALHOST:8000/v1/", "m")
            .target()
            .unwrap();
        assert_eq!(t.url.as_str(), "http://localhost:8000/v1/chat/completions");
        assert_eq!(
            (t.host.as_str(), t.port, t.literal),
            ("localhost", 8000, None)
        );
        assert_eq!(t.host_port(), "localhost:8000");
        // Other IPv4 spellings are the address they spell.
        for url in [
            "http://2130706433/v1",
            "http://0x7f.1/v1",
            "http://127.1/v1",
        ] {
            let t = ProviderConfig::openai(url, "m").target().unwrap();
            assert_eq!(t.literal, Some("127.0.0.1".parse().unwrap()), "{url}");
            assert_eq!(t.port, 80);
        }
        let t = ProviderConfig::openai("http://[::ffff:127.0.0.1]:9/v1", "m")
            .target()
            .unwrap();
        assert_eq!(t.literal, Some("::ffff:127.0.0.1".parse().unwrap()));
        assert_eq!(t.host_port(), "[::ffff:7f00:1]:9");
    }

    #[test]
    fn identity_ignores_params_credential_and_trailing_slash() {
        let a = ProviderConfig::openai("http://h:1/v1/", "m").with_param("temperature", json!(1));
        let b = ProviderConfig::openai("http://h:1/v1", "m").with_credential(Credential::new(
            "k",
            "v",
            ["h:1"],
        ));
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().to_string(), "openai:http://h:1/v1#m");
        assert_ne!(a.id(), ProviderConfig::openai("http://h:1/v1", "n").id());
    }
}
