//! Middleware around every request: request id, tracing span, metrics, and turning any
//! error response the framework produced (404, 405, 413, ...) into problem+json.

use crate::problem::{ErrorCode, Problem, PROBLEM_JSON};
use crate::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use tracing::Instrument;

/// The header carrying the request id, in and out.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a client; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request id of the current request (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Takes the client's `x-request-id` if it is sane, else makes one; opens the request span;
/// records metrics; echoes the id on the response; converts framework errors to problems.
pub async fn around_request(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .unwrap_or_else(colony_core::ids::random_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    req.extensions_mut().insert(RequestId(id.clone()));

    // Tenant routes open a child `tenant` span once the key is resolved.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
    );
    app.metrics.http_in_flight.inc();
    let resp = next.run(req).instrument(span.clone()).await;
    app.metrics.http_in_flight.dec();
    let mut resp = problemize(resp).await;

    let status = resp.status();
    let elapsed = started.elapsed();
    app.metrics
        .http_requests
        .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
        .inc();
    app.metrics
        .http_latency
        .with_label_values(&[route.as_str(), method.as_str()])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request done"
            );
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    if app.lifecycle.is_draining() {
        // Clients stop reusing this connection now, while the node still answers, instead
        // of sending their next request into a socket the shutdown is about to close.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Error responses that are not problem+json yet (made by axum itself, e.g. 405 or a 404
/// for an unknown route) are rewritten as problems, keeping their headers (e.g. `Allow`).
async fn problemize(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Framework error bodies are short plain-text messages; cap what we read anyway.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = ErrorCode::from_status(status);
    let detail = if text.is_empty() {
        default_detail(code).to_string()
    } else {
        text
    };
    let mut problem = Problem::new(code, detail);
    problem.status = status.as_u16();
    let new = problem.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let (_, body) = new.into_parts();
    Response::from_parts(parts, Body::new(body))
}

fn default_detail(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "no such route; see the API overview in the README",
        ErrorCode::MethodNotAllowed => {
            "this route does not accept that method; the Allow header lists the ones it does"
        }
        _ => "the request could not be served",
    }
}

/// `?consistent=true` on a GET makes the read linearizable: before the handler reads the
/// local state, this node confirms (itself, or through the leader's read index) that it
/// has applied everything committed. Without it reads are local and may be slightly stale.
pub async fn consistent_reads(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let wanted = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "consistent")
            .map(|(_, v)| v.into_owned())
    });
    match wanted.as_deref() {
        None | Some("false") => next.run(req).await,
        Some("true") | Some("") => {
            if req.method() == axum::http::Method::GET {
                if let Err(e) = app.raft.ensure_linearizable().await {
                    return Problem::new(
                        ErrorCode::Unavailable,
                        format!("cannot serve a consistent read now: {e}"),
                    )
                    .with_retry_after(1)
                    .into_response();
                }
            }
            next.run(req).await
        }
        Some(other) => {
            Problem::bad_parameter("consistent", format!("{other:?} is not true or false"))
                .into_response()
        }
    }
}
