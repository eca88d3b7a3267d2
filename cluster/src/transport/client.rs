//! Outgoing internal calls: one pooled HTTP client, a timeout on every call.

use super::faults::Faults;
use super::request_auth::RequestAuth;
use super::wire::{self, AUTH_HEADER, CONTENT_TYPE, TO_HEADER};
use crate::raft::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Why an internal call failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Fault injection dropped this call before sending it (blocked peer, or loss).
    #[error("traffic to node {0} is blocked (or lost) by fault injection")]
    Blocked(NodeId),
    /// The peer could not be reached (connection refused, reset, DNS...).
    #[error("node {peer} at {addr} is unreachable: {reason}")]
    Unreachable {
        /// Peer id.
        peer: NodeId,
        /// Address tried.
        addr: String,
        /// Cause.
        reason: String,
        /// Whether the request may have reached the peer (not a connect failure).
        sent: bool,
    },
    /// No answer within the timeout.
    #[error("node {peer} did not answer within {timeout:?}")]
    Timeout {
        /// Peer id.
        peer: NodeId,
        /// The timeout.
        timeout: Duration,
    },
    /// The peer answered with an HTTP error.
    #[error("node {peer} answered {status}: {text}")]
    Status {
        /// Peer id.
        peer: NodeId,
        /// HTTP status.
        status: u16,
        /// Body text.
        text: String,
    },
    /// Another node answered at the peer's address (the peer's data was wiped and a new
    /// node took its address): the peer is gone, whatever the new node says.
    #[error("node {answered} answered at the address of node {peer}")]
    WrongNode {
        /// Peer id.
        peer: NodeId,
        /// The node that answered.
        answered: NodeId,
    },
    /// The peer's reply was larger than any internal reply may be.
    #[error("node {peer} answered with more than {max} bytes")]
    TooLarge {
        /// Peer id.
        peer: NodeId,
        /// The limit.
        max: usize,
    },
    /// The body could not be encoded or decoded.
    #[error("wire format: {0}")]
    Wire(#[from] wire::WireError),
}

impl TransportError {
    /// Whether the peer should be treated as down (back off rather than retry at once).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Blocked(_)
                | Self::Unreachable { .. }
                | Self::Timeout { .. }
                | Self::WrongNode { .. }
                | Self::TooLarge { .. }
                | Self::Status {
                    status: 503 | 421,
                    ..
                }
        )
    }
}

/// The peer client could not be built (its TLS configuration).
#[derive(Debug, thiserror::Error)]
#[error("building the peer client: {0}")]
pub struct PeerClientError(String);

/// Client for the internal listeners of other nodes.
#[derive(Debug, Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    self_id: NodeId,
    /// Signs each request (HMAC, timestamp, nonce), only without TLS (mutual TLS
    /// authenticates).
    auth: Option<Arc<RequestAuth>>,
    /// `https` with mutual TLS, `http` without.
    scheme: &'static str,
    faults: Faults,
}

impl PeerClient {
    /// A client for node `self_id`: with `tls` (the node-to-node client config: cluster
    /// CA, node certificate) it speaks HTTPS and authenticates by certificate; without,
    /// plain HTTP proving knowledge of `secret`.
    pub fn new(
        self_id: NodeId,
        secret: &str,
        faults: Faults,
        tls: Option<&colony_tls::rustls::ClientConfig>,
    ) -> Result<Self, PeerClientError> {
        // reqwest gets its TLS config from us, never from a system store (none in the image).
        let (scheme, auth, tls) = match tls {
            Some(config) => ("https", None, config.clone()),
            None => (
                "http",
                Some(Arc::new(RequestAuth::new(secret))),
                colony_tls::client::public_roots(colony_tls::client::ALPN_HTTP1)
                    .map_err(|e| PeerClientError(e.to_string()))?,
            ),
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| PeerClientError(e.to_string()))?;
        Ok(Self {
            http,
            self_id,
            auth,
            scheme,
            faults,
        })
    }

    /// This node's id.
    pub fn self_id(&self) -> NodeId {
        self.self_id
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// POSTs `body` to `path` on `peer` at `addr` and decodes the reply's body.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: NodeId,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        if self.faults.blocks_out(peer) || self.faults.drops_out() {
            return Err(TransportError::Blocked(peer));
        }
        // Injected delay counts against the call's timeout, as a slow link would.
        let delay = self.faults.delay_out();
        let timeout = if delay.is_zero() {
            timeout
        } else {
            tokio::time::sleep(delay.min(timeout)).await;
            match timeout.checked_sub(delay).filter(|t| !t.is_zero()) {
                Some(left) => left,
                None => return Err(TransportError::Timeout { peer, timeout }),
            }
        };
        let bytes = wire::encode(self.self_id, body)?;
        let url = format!("{}://{addr}{path}", self.scheme);
        let mut send = self.http.post(&url);
        if let Some(auth) = &self.auth {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let signed = auth.sign(path, &peer.to_string(), &bytes, now_ms, rand::random());
            send = send.header(AUTH_HEADER, signed);
        }
        let send = send
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(TO_HEADER, peer.to_string())
            .body(bytes)
            .timeout(timeout)
            .send();
        let resp = send
            .await
            .map_err(|e| self.classify(peer, addr, timeout, e))?;
        let status = resp.status();
        let body = self.read_capped(peer, addr, timeout, resp).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            return Err(TransportError::Status {
                peer,
                status: status.as_u16(),
                text,
            });
        }
        let reply = wire::decode::<Resp>(&body)?;
        if reply.from != peer {
            return Err(TransportError::WrongNode {
                peer,
                answered: reply.from,
            });
        }
        Ok(reply.body)
    }

    /// A reply's body, at most [`wire::MAX_BODY_BYTES`]: whatever answers at a member's
    /// address cannot make this node buffer more.
    async fn read_capped(
        &self,
        peer: NodeId,
        addr: &str,
        timeout: Duration,
        mut resp: reqwest::Response,
    ) -> Result<Vec<u8>, TransportError> {
        let too_large = || TransportError::TooLarge {
            peer,
            max: wire::MAX_BODY_BYTES,
        };
        if resp
            .content_length()
            .is_some_and(|n| n > wire::MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.classify(peer, addr, timeout, e))?
        {
            if body.len() + chunk.len() > wire::MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn classify(
        &self,
        peer: NodeId,
        addr: &str,
        timeout: Duration,
        e: reqwest::Error,
    ) -> TransportError {
        if e.is_timeout() {
            TransportError::Timeout { peer, timeout }
        } else {
            TransportError::Unreachable {
                peer,
                addr: addr.to_string(),
                reason: e.to_string(),
                sent: !e.is_connect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Whatever answers at a peer's address: here, an endless 200 body.
    async fn endless_peer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'a'; 1 << 20];
                    let frame =
                        [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                    while s.write_all(&frame).await.is_ok() {}
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_endless_reply_is_cut_at_the_body_limit() {
        let client = PeerClient::new(1, "secret", Faults::new(false), None).unwrap();
        let addr = endless_peer().await;
        let r: Result<u64, _> = client
            .call(2, &addr, "/x", &(), Duration::from_secs(60))
            .await;
        assert!(
            matches!(r, Err(TransportError::TooLarge { peer: 2, .. })),
            "{r:?}"
        );
    }
}
