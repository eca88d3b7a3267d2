//! A real OpenAI-compatible HTTP server on 127.0.0.1:0 whose answers are scripted per
//! request, recording what it received and when.

#![allow(dead_code, clippy::unwrap_used)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    pub fn after(self, delay: Duration) -> Self {
        Self::Delay(delay, Box::new(self))
    }
}

/// What the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
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
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Starts a server answering `script` in order, then `Reply::ok("default")`.
    pub async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            shared,
            task,
        }
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

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.received.lock().unwrap().push(Received {
        at: Instant::now(),
        path: "/v1/chat/completions".into(),
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
