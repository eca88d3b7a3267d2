//! RFC 9457 problem details: the one error shape of the whole API.
//!
//! Every error maps to an [`ErrorCode`]; the code decides the HTTP status and the problem
//! `type` (`urn:colony:problem:<code>`), so handlers never pick statuses by hand.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every kind of error the API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not valid JSON.
    MalformedJson,
    /// A query or path parameter is malformed.
    BadRequest,
    /// The JSON is valid but a field is wrong (unknown, wrong type, bad value).
    InvalidField,
    /// No or unrecognised credentials.
    Unauthorized,
    /// Credentials recognised but not allowed here.
    Forbidden,
    /// No such resource (or not visible to the caller).
    NotFound,
    /// The method is not allowed on this resource.
    MethodNotAllowed,
    /// The resource exists already.
    AlreadyExists,
    /// The change conflicts with current state.
    Conflict,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// A rate or concurrency limit of the caller's tier is exhausted; retry later.
    TooManyRequests,
    /// The node cannot serve this now (no Raft leader, shutting down, ...).
    Unavailable,
    /// The request took longer than allowed.
    Timeout,
    /// A bug or storage failure; details are in the node's log.
    Internal,
}

impl ErrorCode {
    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedJson | Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::InvalidField => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::AlreadyExists | Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable slug used in the problem `type`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed-json",
            Self::BadRequest => "bad-request",
            Self::InvalidField => "invalid-field",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::AlreadyExists => "already-exists",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::TooManyRequests => "too-many-requests",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }

    /// A short human title.
    pub fn title(self) -> &'static str {
        match self {
            Self::MalformedJson => "Malformed JSON body",
            Self::BadRequest => "Bad request",
            Self::InvalidField => "Invalid field",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::AlreadyExists => "Already exists",
            Self::Conflict => "Conflict",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::TooManyRequests => "Too many requests",
            Self::Unavailable => "Service unavailable",
            Self::Timeout => "Timeout",
            Self::Internal => "Internal error",
        }
    }

    /// The code for a status produced outside our handlers (by the framework).
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::InvalidField,
            429 => Self::TooManyRequests,
            503 => Self::Unavailable,
            504 | 408 => Self::Timeout,
            _ => Self::Internal,
        }
    }
}

/// The body of a problem, as serialized.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemBody {
    /// `urn:colony:problem:<slug>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the kind of problem.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What exactly went wrong.
    pub detail: String,
    /// JSON pointer to the offending field of the request body, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The offending query or path parameter, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// The tier policy a 429 was answered for (e.g. `free-60s`), as named in the
    /// `RateLimit-Policy` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Seconds after which retrying may succeed (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// Every problem found, when a body has several (`pointer` names the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    #[serde(skip)]
    code: Option<ErrorCode>,
}

/// One of several problems of a request body.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    /// JSON pointer to the field.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

/// An API error, rendered as `application/problem+json`. Boxed so `Result<T, Problem>`
/// stays one pointer wide on the happy path.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemBody>);

impl std::ops::Deref for Problem {
    type Target = ProblemBody;
    fn deref(&self) -> &ProblemBody {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemBody {
        &mut self.0
    }
}

impl Problem {
    /// A problem of kind `code` with a detail message.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if code == ErrorCode::Internal {
            // Internal error text (storage paths, decode errors) stays in the log.
            tracing::error!(error = %detail, "internal error");
            detail = "internal error; the node's log has the cause (look for this request's \
                      x-request-id)"
                .into();
        }
        Self(Box::new(ProblemBody {
            type_uri: format!("urn:colony:problem:{}", code.slug()),
            title: code.title(),
            status: code.status().as_u16(),
            detail,
            pointer: None,
            parameter: None,
            policy: None,
            retry_after_secs: None,
            errors: None,
            code: Some(code),
        }))
    }

    /// An invalid body field at JSON pointer `pointer`.
    pub fn invalid_field(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let pointer = pointer.into();
        let detail = detail.into();
        let shown = if pointer.is_empty() {
            "/".to_string()
        } else {
            pointer.clone()
        };
        let mut p = Self::new(ErrorCode::InvalidField, format!("{shown}: {detail}"));
        p.pointer = Some(pointer);
        p
    }

    /// A bad query or path parameter.
    pub fn bad_parameter(name: &str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            ErrorCode::BadRequest,
            format!("parameter {name:?}: {}", detail.into()),
        );
        p.parameter = Some(name.to_string());
        p
    }

    /// A 404 for `kind` `id`.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{kind} {id:?} not found"))
    }

    /// Lists every problem of a body (the first is also `pointer` and `detail`).
    pub fn with_errors(mut self, errors: Vec<(String, String)>) -> Self {
        self.0.errors = Some(
            errors
                .into_iter()
                .map(|(pointer, detail)| FieldError { pointer, detail })
                .collect(),
        );
        self
    }

    /// Adds `Retry-After`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The error code, if this problem was built from one.
    pub fn code(&self) -> Option<ErrorCode> {
        self.code
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.status, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&*self.0).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, Problem>;
