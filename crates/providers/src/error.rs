//! Why a provider could not be built ([`ConfigError`]) or did not answer
//! ([`ProviderError`]), with what the retry loop and the breaker need to know.

use crate::egress::EgressDenied;
use std::fmt;
use std::time::Duration;

/// Why a provider spec or config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `base_url` is not an `http://` or `https://` URL.
    #[error("base_url {0:?} must be an http:// or https:// url")]
    BaseUrl(String),
    /// `base_url` does not parse as a URL.
    #[error("base_url {url:?} is not a valid url: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// `base_url` has no host.
    #[error("base_url {0:?} has no host")]
    BaseUrlNoHost(String),
    /// `base_url` carries a user name or password (not echoed: it may be a secret).
    #[error("base_url must not contain a user name or password (use a named credential)")]
    BaseUrlUserinfo,
    /// `base_url` has a query (`?...`).
    #[error("base_url {0:?} must not contain a query (?...)")]
    BaseUrlQuery(String),
    /// `base_url` has a fragment (`#...`).
    #[error("base_url {0:?} must not contain a fragment (#...)")]
    BaseUrlFragment(String),
    /// `https://` needs the crate's `tls` feature.
    #[error("base_url {0:?} is https but colony-providers was built without the `tls` feature")]
    TlsDisabled(String),
    /// The credential is not bound to the provider's host and port.
    #[error("credential {credential:?} may not be sent to {host} (allowed: {allowed})")]
    CredentialHost {
        /// The credential's name.
        credential: String,
        /// The provider's `host:port`.
        host: String,
        /// The hosts the credential is bound to, comma-separated (`none` if empty).
        allowed: String,
    },
    /// The credential would cross the network unencrypted (`http://` to a public host).
    #[error("credential {credential:?} may not be sent over plain http to {host}: use https, or a local or private address")]
    CredentialCleartext {
        /// The credential's name.
        credential: String,
        /// The provider's `host:port`.
        host: String,
    },
    /// The provider's address is refused by the egress policy.
    #[error(transparent)]
    Egress(#[from] EgressDenied),
    /// A builtin provider's model is neither `echo` nor `mock`.
    #[error("unknown builtin model {0:?} (expected \"echo\" or \"mock\")")]
    UnknownBuiltinModel(String),
    /// A parameter has a value the provider cannot use.
    #[error("parameter {name}: {problem}")]
    Param {
        /// The parameter.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The model name is empty.
    #[error("model must not be empty")]
    EmptyModel,
    /// The timeout is zero.
    #[error("timeout must be greater than zero")]
    ZeroTimeout,
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
}

/// A [`ConfigError::Param`].
pub(crate) fn param(name: &str, problem: &str) -> ConfigError {
    ConfigError::Param {
        name: name.to_string(),
        problem: problem.to_string(),
    }
}

/// What kind of failure a [`ProviderError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer within the call timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The provider answered with an HTTP error status (other than the cases below).
    Status,
    /// HTTP 429 without `insufficient_quota`: slow down and retry.
    RateLimited,
    /// HTTP 429 with `insufficient_quota`: the account is out of credit; never retried.
    InsufficientQuota,
    /// A 2xx answer that is not a chat completion (not JSON, no choices, no content).
    Malformed,
    /// The provider's circuit breaker is open: the call was not made.
    CircuitOpen,
    /// A failure injected by the builtin `mock` model (`error_rate`).
    Injected,
    /// The egress policy refused the provider's address: nothing was sent.
    EgressDenied,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection error",
            Self::Status => "http error",
            Self::RateLimited => "rate limited",
            Self::InsufficientQuota => "insufficient quota",
            Self::Malformed => "malformed response",
            Self::CircuitOpen => "circuit open",
            Self::Injected => "injected failure",
            Self::EgressDenied => "egress refused",
        })
    }
}

/// A call that did not produce a completion.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} after {attempts} attempt(s): {message}")]
pub struct ProviderError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Whether calling again later may succeed (the retry loop gave up or was not allowed
    /// to go on). False for caller errors and `insufficient_quota`.
    pub retryable: bool,
    /// The HTTP status, when there was an HTTP answer.
    pub status: Option<u16>,
    /// The provider's error code (`error.code`, else `error.type`), when it sent one.
    pub code: Option<String>,
    /// The provider's error message or the transport's description.
    pub message: String,
    /// The wait the provider asked for (`Retry-After`), when it asked.
    pub retry_after: Option<Duration>,
    /// Attempts made (0 when the breaker rejected the call before the first one).
    pub attempts: u32,
}

impl ProviderError {
    /// An error of `kind` with a message; retryable as the kind implies, no status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = !matches!(
            kind,
            ErrorKind::InsufficientQuota | ErrorKind::Status | ErrorKind::EgressDenied
        );
        Self {
            kind,
            retryable,
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
            attempts: 0,
        }
    }

    /// Whether this failure says something about the provider's health, so the circuit
    /// breaker counts it. Caller errors (4xx other than 408/429) and `insufficient_quota`
    /// mean the provider answered coherently: they do not open the breaker. An egress
    /// refusal never reached the provider.
    pub fn is_provider_failure(&self) -> bool {
        match self.kind {
            ErrorKind::Timeout
            | ErrorKind::Connection
            | ErrorKind::RateLimited
            | ErrorKind::Malformed
            | ErrorKind::Injected => true,
            ErrorKind::Status => self.retryable,
            ErrorKind::InsufficientQuota | ErrorKind::CircuitOpen | ErrorKind::EgressDenied => {
                false
            }
        }
    }
}

impl From<EgressDenied> for ProviderError {
    fn from(denied: EgressDenied) -> Self {
        Self::new(ErrorKind::EgressDenied, denied.to_string())
    }
}
