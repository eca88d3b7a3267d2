//! A real OpenAI-compatible HTTP server on 127.0.0.1:0 whose answers are scripted per
//! request, recording every request it received (any method, any path) and when; and a
//! raw TCP server answering one fixed byte string, for answers axum will not produce.

#![allow(dead_code, clippy::unwrap_used)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use colony_providers::{EgressPolicy, EgressRule};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rules from `providers.egress.allow`-style entries.
pub fn rules(entries: &[&str]) -> Vec<EgressRule> {
    let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
    EgressPolicy::parse(&entries).unwrap()
}

/// A policy allowing loopback (what the test servers listen on).
pub fn loopback() -> EgressPolicy {
    EgressPolicy::new(rules(&["127.0.0.0/8"]), vec![])
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A chat completion with this content and optional (prompt, completion) usage.
    Ok {
        content: String,
        usage: Option<(u64, u64)>,
    },
    /// Any status, body and headers.
    Raw {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Wait, then answer.
    Delay(Duration, Box<Reply>),
}

impl Reply {
    pub fn ok(content: &str) -> Self {
        Self::Ok {
            content: content.into(),
            usage: None,
        }
    }

    pub fn ok_with_usage(content: &str, prompt: u64, completion: u64) -> Self {
        Self::Ok {
            content: content.into(),
            usage: Some((prompt, completion)),
        }
    }

    pub fn status(status: u16) -> Self {
        Self::Raw {
            status,
            body: format!(
                r#"{{"error":{{"message":"scripted {status}","type":"server_error","code":null}}}}"#
            ),
            headers: vec![],
        }
    }

    pub fn rate_limited(retry_after: &str) -> Self {
        Self::Raw {
            status: 429,
            body: r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#.into(),
            headers: vec![("retry-after".into(), retry_after.into())],
        }
    }

    pub fn insufficient_quota() -> Self {
        Self::Raw {
            status: 429,
            body: r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#.into(),
            headers: vec![("retry-after".into(), "1".into())],
        }
    }

    /// A 200 whose body is not a chat completion.
    pub fn malformed(body: &str) -> Self {
        Self::Raw {
            status: 200,
            body: body.into(),
            headers: vec![],
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::Raw {
            status,
            body: String::new(),
            headers: vec![("location".into(), location.into())],
        }
    }

    /// Any status with an HTML body.
    pub fn html(status: u16, body: &str) -> Self {
        Self::Raw {
            status,
            body: body.into(),
            headers: vec![("content-type".into(), "text/html".into())],
        }
    }

    pub fn after(self, delay: Duration) -> Self {
        Self::Delay(delay, Box::new(self))
    }
}

/// What the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: serde_json::Value,
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// The running server; stops when dropped.
pub struct MockServer {
    pub base_url: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Starts a server answering `script` in order, then `Reply::ok("default")`.
    pub async fn start(script: Vec<Reply>) -> Self {
        Self::start_on(script, None).await
    }

    /// The same server over HTTPS with `tls` (see `colony_tls::server`).
    pub async fn start_tls(script: Vec<Reply>, tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start_on(script, Some(tls)).await
    }

    async fn start_on(script: Vec<Reply>, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            received: Mutex::new(Vec::new()),
        });
        // Every method and path: a client following a redirect here would be seen.
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            match tls {
                None => axum::serve(listener, app).await.unwrap(),
                Some(config) => {
                    let limits = colony_tls::listener::Limits::default();
                    let tls =
                        colony_tls::listener::TlsListener::new(listener, config, limits).unwrap();
                    axum::serve(tls, app).await.unwrap()
                }
            }
        });
        Self {
            base_url: format!("{scheme}://{addr}/v1"),
            addr,
            shared,
            task,
        }
    }

    /// `127.0.0.1:PORT`, as credentials and rules name it.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Appends answers to the script.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    /// Gaps between consecutive requests.
    pub fn gaps(&self) -> Vec<Duration> {
        let r = self.received();
        r.windows(2).map(|w| w[1].at - w[0].at).collect()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.received.lock().unwrap().push(Received {
        at: Instant::now(),
        method: method.to_string(),
        path: uri.path().to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let mut reply = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::ok("default"));
    loop {
        match reply {
            Reply::Delay(d, next) => {
                tokio::time::sleep(d).await;
                reply = *next;
            }
            Reply::Ok { content, usage } => {
                let mut v = serde_json::json!({
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": "test",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                });
                if let Some((p, c)) = usage {
                    v["usage"] = serde_json::json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
                }
                return (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    v.to_string(),
                )
                    .into_response();
            }
            Reply::Raw {
                status,
                body,
                headers,
            } => {
                let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
                for (k, v) in headers {
                    resp.headers_mut().insert(
                        HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        HeaderValue::from_str(&v).unwrap(),
                    );
                }
                return resp;
            }
        }
    }
}

/// A plain TCP server on 127.0.0.1:0 that reads each request and answers `response`
/// verbatim, then closes the connection; counts connections. Stops when dropped
/// (after its next connection).
pub struct RawServer {
    pub base_url: String,
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl RawServer {
    pub fn start(response: Vec<u8>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, stopped) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                read_request(&mut conn);
                let _ = conn.write_all(&response);
                let _ = conn.flush();
            }
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            addr,
            connections,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread ends.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// Reads one request's headers and its Content-Length body.
fn read_request(conn: &mut std::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A chunked HTTP/1.1 answer with `status` whose body is `chunks` chunks of `size` bytes
/// of `fill` (no Content-Length: the client only learns the size by reading).
pub fn chunked_response(status: u16, chunks: usize, size: usize, fill: u8) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..chunks {
        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(fill, size));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
