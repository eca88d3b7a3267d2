//! Request extractors that fail with problem+json naming what was wrong.

use crate::problem::{ErrorCode, Problem};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// A JSON body. Non-JSON content types get 415, syntax errors 400, and data errors
/// (unknown field, wrong type, missing field) 422 with a JSON pointer to the field.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                ErrorCode::UnsupportedMediaType,
                "the request body must be JSON: send `content-type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_problem)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: a request without a body (and without a content type) gives `None`.
impl<S, T> OptionalFromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let h = req.headers();
        let has_body = h.contains_key(header::TRANSFER_ENCODING)
            || h.get(header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        // A body without a content type still goes to the JSON extractor, which answers 415.
        if !has_body && !h.contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// Parses JSON bytes into `T`, pointing at the failing field on data errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let malformed = |e: serde_json::Error| {
        Problem::new(
            ErrorCode::MalformedJson,
            format!("the body is not valid JSON: {e}"),
        )
    };
    // Valid bodies (the hot path) parse without path tracking; only a failing body is
    // parsed again with it, to name the field.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let pointer = json_pointer(err.path());
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                Problem::invalid_field(pointer, strip_position(&inner))
            }
            _ => malformed(inner),
        }
    })?;
    // Trailing bytes after the value make the body invalid JSON as a whole.
    de.end().map_err(malformed)?;
    Ok(value)
}

/// Converts serde_path_to_error's path (`a.b[0].c`) into a JSON pointer (`/a/b/0/c`).
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

/// serde_json appends "at line L column C"; the pointer already says where.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Maps a body read failure (size limit, broken stream) to a problem.
fn body_problem(rej: BytesRejection) -> Problem {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than the configured limit (http.max_body_bytes)",
        )
    } else {
        Problem::new(ErrorCode::from_status(rej.status()), rej.body_text())
    }
}

/// Query parameters, failing with 400 naming the parameter.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // `consistent` is handled by the consistent-reads middleware for every route.
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                    .filter(|(k, _)| k != "consistent"),
            )
            .finish();
        let de = serde_urlencoded_deserializer(&query);
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|err| {
                let name = err.path().to_string();
                let detail = err.into_inner().to_string();
                if name == "." || name.is_empty() {
                    Problem::new(ErrorCode::BadRequest, format!("bad query string: {detail}"))
                } else {
                    Problem::bad_parameter(&name, detail)
                }
            })
    }
}

fn serde_urlencoded_deserializer(query: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        limits: Vec<Limit>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limit {
        limit: u64,
    }

    #[test]
    fn data_errors_point_at_the_field() {
        let p = parse_json::<Body>(br#"{"name":"x","limits":[{"limit":1},{"limit":"many"}]}"#)
            .unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.pointer.as_deref(), Some("/limits/1/limit"));
        let p = parse_json::<Body>(br#"{"name":"x","limits":[],"extra":1}"#).unwrap_err();
        assert_eq!(p.status, 422);
        assert!(p.detail.contains("unknown field `extra`"), "{}", p.detail);
        let p = parse_json::<Body>(br#"{"limits":[]}"#).unwrap_err();
        assert!(p.detail.contains("missing field `name`"), "{}", p.detail);
    }

    #[test]
    fn syntax_errors_are_400() {
        assert_eq!(parse_json::<Body>(b"{\"name\":").unwrap_err().status, 400);
        assert_eq!(
            parse_json::<Body>(b"{\"name\":\"x\",\"limits\":[]} trailing")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(parse_json::<Body>(b"").unwrap_err().status, 400);
    }
}
