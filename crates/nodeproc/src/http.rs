//! A small blocking HTTP client over `ureq` with bounded timeouts. HTTP error statuses are
//! answers; only transport failures (refused, reset, timed out) are errors.

use serde_json::Value;
use std::time::Duration;

/// An HTTP answer of any status.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub text: String,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// A transport failure.
#[derive(Debug, Clone)]
pub struct TransportError {
    /// The connection was refused: the request never reached a server.
    pub refused: bool,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {}

/// A client whose every request (connect, send, receive) is bounded by `timeout`.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
}

/// CA certificates (PEM) every client made after [`trust_ca`] trusts for `https://`.
static TRUSTED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Trusts the CA of `pem` in every [`Client`] made from now on (a test cluster's own CA;
/// plain `http://` URLs are unaffected).
pub fn trust_ca(pem: &[u8]) -> Result<(), String> {
    colony_tls::pem::certificates(pem).map_err(|e| e.to_string())?;
    let mut trusted = TRUSTED.lock().unwrap_or_else(|p| p.into_inner());
    trusted.extend_from_slice(pem);
    trusted.push(b'\n');
    Ok(())
}

/// The TLS config of clients: the trusted CAs, when any.
pub fn tls_config() -> Option<std::sync::Arc<colony_tls::rustls::ClientConfig>> {
    let trusted = TRUSTED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if trusted.is_empty() {
        return None;
    }
    let cas = colony_tls::pem::certificates(&trusted).ok()?;
    colony_tls::server::api_client(&cas)
        .ok()
        .map(std::sync::Arc::new)
}

impl Client {
    /// A client with its own connection pool.
    pub fn new(timeout: Duration) -> Client {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(1)))
            .timeout(timeout);
        if let Some(tls) = tls_config() {
            builder = builder.tls_config(tls);
        }
        Client {
            agent: builder.build(),
        }
    }

    /// Sends a request with an optional bearer token and body.
    pub fn call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, TransportError> {
        self.call_with_id(method, url, token, body, None)
    }

    /// [`Client::call`] with an `x-request-id` (to find the request in the audit log).
    pub fn call_with_id(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
        request_id: Option<&str>,
    ) -> Result<Reply, TransportError> {
        let mut req = self.agent.request(method, url);
        if let Some(t) = token {
            req = req.set("authorization", &format!("Bearer {t}"));
        }
        if let Some(id) = request_id {
            req = req.set("x-request-id", id);
        }
        let res = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                return Err(TransportError {
                    refused: t.kind() == ureq::ErrorKind::ConnectionFailed,
                    message: t.to_string(),
                })
            }
        };
        let status = resp.status();
        let text = resp.into_string().map_err(|e| TransportError {
            refused: false,
            message: format!("reading the body: {e}"),
        })?;
        Ok(Reply { status, text })
    }

    /// `GET`.
    pub fn get(&self, url: &str, token: Option<&str>) -> Result<Reply, TransportError> {
        self.call("GET", url, token, None)
    }
}
