//! The OpenAI chat completions wire format (also served by vLLM, Ollama, llama.cpp
//! server and LiteLLM): the request body, reading an answer, reading an error, and one
//! HTTP attempt. Retrying is the caller's job ([`crate::provider`]).
//!
//! What comes back from a provider URL is chosen by the tenant, so an answer says as
//! little as it can about what answered: redirects are not followed (and their
//! `Location` is not reported), bodies are read up to a cap, and an error body that is
//! not a provider's JSON error is reported by its size only, never echoed.

use crate::config::ProviderConfig;
use crate::error::{ErrorKind, ProviderError};
use crate::message::{ChatMessage, Usage};
use crate::retry::{parse_retry_after, parse_retry_after_ms, status_is_retryable};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// What one successful answer carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `choices[0].message.content`.
    pub text: String,
    /// `usage`, if present and well-formed.
    pub usage: Option<Usage>,
    /// `choices[0].finish_reason`.
    pub finish_reason: Option<String>,
}

/// The OpenAI error code for an exhausted account (sent with HTTP 429).
pub const INSUFFICIENT_QUOTA: &str = "insufficient_quota";

/// Longest provider error message kept, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// Longest provider error code or type kept, in characters.
const MAX_ERROR_CODE_CHARS: usize = 100;

/// `s` cut to at most `max` characters (on a character boundary), control characters
/// turned into spaces so a provider cannot forge log lines.
fn clip(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The request body: `model`, `messages`, then every param as a top-level field
/// (temperature, max_tokens, seed, top_p, stop and anything else the server accepts).
pub fn request_body(config: &ProviderConfig, messages: &[ChatMessage]) -> Vec<u8> {
    let mut body = config.params.clone();
    body.insert("model".into(), Value::String(config.model.clone()));
    let msgs = messages
        .iter()
        .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
        .collect();
    body.insert("messages".into(), Value::Array(msgs));
    // Serializing a Value cannot fail (string keys only).
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

fn malformed(message: impl Into<String>, status: u16) -> ProviderError {
    let mut e = ProviderError::new(ErrorKind::Malformed, message);
    e.status = Some(status);
    e
}

/// Reads a 2xx body: JSON with `choices[0].message.content` a string. Anything else is
/// [`ErrorKind::Malformed`]; a missing or ill-typed `usage` is just `None`.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Answer, ProviderError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("body is not JSON: {e}"), status))?;
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| malformed("no choices in the answer", status))?;
    let text = choice
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("choices[0].message.content is not a string", status))?
        .to_string();
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let usage = v.get("usage").and_then(|u| {
        Some(Usage {
            prompt_tokens: u.get("prompt_tokens")?.as_u64()?,
            completion_tokens: u.get("completion_tokens")?.as_u64()?,
        })
    });
    Ok(Answer {
        text,
        usage,
        finish_reason,
    })
}

/// Reads an error answer. Understands OpenAI's `{"error": {"message", "type", "code"}}`,
/// vLLM's top-level `{"message", "type", "code"}` and Ollama's `{"error": "text"}`;
/// `retry_after` is what the headers asked for (see [`retry_after`]). The message is
/// clipped to [`MAX_ERROR_MESSAGE_CHARS`]; any other body is described by its size only
/// (`HTTP 503 with a non-JSON body (17 bytes)`), never echoed.
pub fn parse_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> ProviderError {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let obj = v
        .as_ref()
        .map(|v| v.get("error").filter(|e| e.is_object()).unwrap_or(v));
    let field = |name: &str| -> Option<String> {
        match obj?.get(name)? {
            Value::String(s) => Some(clip(s, MAX_ERROR_CODE_CHARS)),
            Value::Number(n) => Some(clip(&n.to_string(), MAX_ERROR_CODE_CHARS)),
            _ => None,
        }
    };
    let code = field("code");
    let kind_field = field("type");
    let provider_message = match obj.and_then(|o| o.get("message")) {
        Some(Value::String(m)) => Some(m.as_str()),
        _ => v
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str),
    };
    let message = match (provider_message, &v) {
        (Some(m), _) => clip(m, MAX_ERROR_MESSAGE_CHARS),
        (None, Some(_)) => format!(
            "HTTP {status} with a JSON body without an error message ({} bytes)",
            body.len()
        ),
        (None, None) => format!("HTTP {status} with a non-JSON body ({} bytes)", body.len()),
    };
    let quota = [&code, &kind_field]
        .iter()
        .any(|c| c.as_deref() == Some(INSUFFICIENT_QUOTA));
    let kind = if quota {
        ErrorKind::InsufficientQuota
    } else if status == 429 {
        ErrorKind::RateLimited
    } else {
        ErrorKind::Status
    };
    ProviderError {
        kind,
        retryable: !quota && status_is_retryable(status),
        status: Some(status),
        // Prefer the specific code; fall back to the type (OpenAI often sets only one).
        code: code.or(kind_field),
        message,
        retry_after,
        attempts: 0,
    }
}

/// The wait the answer's headers ask for: `retry-after-ms` (OpenAI), else `Retry-After`.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    get("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| get("retry-after").and_then(|v| parse_retry_after(v, now)))
}

fn transport(e: &reqwest::Error, timeout: Duration) -> ProviderError {
    // The resolver refused the name's addresses: nothing was sent.
    if let Some(denied) = crate::egress::find_denied(e) {
        return ProviderError::from(denied.clone());
    }
    if e.is_timeout() {
        ProviderError::new(
            ErrorKind::Timeout,
            format!("no answer within {} ms", timeout.as_millis()),
        )
    } else {
        // Connect failures, resets and truncated bodies: the provider may be restarting.
        ProviderError::new(ErrorKind::Connection, e.to_string())
    }
}

/// The error for a 3xx answer: redirects are not followed, and where it pointed is not
/// reported.
pub fn redirect_error(status: u16) -> ProviderError {
    let mut e = ProviderError::new(
        ErrorKind::Status,
        format!("redirects are not followed (HTTP {status})"),
    );
    e.status = Some(status);
    e.retryable = false;
    e
}

/// Reads the body of `resp`, or `None` when it is larger than `max` bytes (judged from
/// `Content-Length` before reading, then while reading).
async fn read_capped(
    resp: &mut reqwest::Response,
    max: usize,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, ProviderError> {
    let declared = resp.content_length();
    if declared.is_some_and(|len| len > u64::try_from(max).unwrap_or(u64::MAX)) {
        return Ok(None);
    }
    let hint = declared
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0)
        .min(max)
        .min(64 * 1024);
    let mut buf = Vec::with_capacity(hint);
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&e, timeout))? {
        // buf.len() <= max always holds, so this cannot underflow.
        if chunk.len() > max - buf.len() {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

/// One POST to `url` with `body`, bounded by `timeout`, reading at most `max_bytes` of
/// the answer; `bearer` is sent as `Authorization: Bearer` (the caller checked that it
/// may go to this host).
pub(crate) async fn attempt(
    http: &reqwest::Client,
    url: &url::Url,
    bearer: Option<&str>,
    body: Vec<u8>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Answer, ProviderError> {
    let mut req = http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .timeout(timeout);
    if let Some(key) = bearer {
        req = req.bearer_auth(key);
    }
    let mut resp = req.send().await.map_err(|e| transport(&e, timeout))?;
    let status = resp.status().as_u16();
    if (300..400).contains(&status) {
        return Err(redirect_error(status));
    }
    let wait = retry_after(resp.headers(), SystemTime::now());
    let body = read_capped(&mut resp, max_bytes, timeout).await?;
    let success = (200..300).contains(&status);
    match body {
        Some(bytes) if success => parse_answer(status, &bytes),
        Some(bytes) => Err(parse_error(status, &bytes, wait)),
        None if success => {
            let mut e = malformed(
                format!("response body larger than {max_bytes} bytes"),
                status,
            );
            e.retryable = false;
            Err(e)
        }
        None => {
            let mut e = parse_error(status, b"", wait);
            e.message = format!("HTTP {status} with a body larger than {max_bytes} bytes");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn body_has_model_messages_and_passes_params_through() {
        let c = ProviderConfig::openai("http://h/v1/", "llama")
            .with_param("temperature", json!(0.2))
            .with_param("max_tokens", json!(16))
            .with_param("repetition_penalty", json!(1.1));
        assert_eq!(c.endpoint(), "http://h/v1/chat/completions");
        let v: Value =
            serde_json::from_slice(&request_body(&c, &[ChatMessage::user("q")])).unwrap();
        assert_eq!(
            v,
            json!({"model": "llama", "messages": [{"role": "user", "content": "q"}],
                   "temperature": 0.2, "max_tokens": 16, "repetition_penalty": 1.1})
        );
    }

    #[test]
    fn answers_are_read_or_malformed() {
        let ok = parse_answer(
            200,
            br#"{"choices":[{"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],
                "usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#,
        )
        .unwrap();
        assert_eq!(ok.text, "4");
        assert_eq!(ok.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            ok.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 1
            })
        );
        let no_usage = parse_answer(200, br#"{"choices":[{"message":{"content":""}}]}"#).unwrap();
        assert_eq!(no_usage.usage, None);
        for bad in [
            &b"<html>bad gateway</html>"[..],
            br#"{"choices":[]}"#,
            br#"{"object":"chat.completion"}"#,
            br#"{"choices":[{"message":{"content":null}}]}"#,
        ] {
            let e = parse_answer(200, bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Malformed);
            assert!(e.retryable);
        }
    }

    #[test]
    fn errors_are_classified() {
        let quota = parse_error(
            429,
            br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
            Some(Duration::from_secs(1)),
        );
        assert_eq!(quota.kind, ErrorKind::InsufficientQuota);
        assert!(!quota.retryable);
        assert_eq!(quota.code.as_deref(), Some(INSUFFICIENT_QUOTA));

        let limited = parse_error(
            429,
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
            None,
        );
        assert_eq!(
            (limited.kind, limited.retryable),
            (ErrorKind::RateLimited, true)
        );
        assert_eq!(limited.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(limited.message, "slow down");

        let vllm = parse_error(
            400,
            br#"{"object":"error","message":"bad","type":"BadRequestError","code":400}"#,
            None,
        );
        assert_eq!((vllm.kind, vllm.retryable), (ErrorKind::Status, false));
        assert_eq!(vllm.code.as_deref(), Some("400"));

        let ollama = parse_error(404, br#"{"error":"model 'x' not found"}"#, None);
        assert_eq!(ollama.message, "model 'x' not found");
        assert!(!ollama.retryable);

        let html = parse_error(503, b"<html>down</html>", None);
        assert_eq!(
            (html.kind, html.retryable, html.status),
            (ErrorKind::Status, true, Some(503))
        );
        assert_eq!(html.message, "HTTP 503 with a non-JSON body (17 bytes)");

        let other_json = parse_error(500, br#"{"detail":"internal stack trace"}"#, None);
        assert_eq!(
            other_json.message,
            "HTTP 500 with a JSON body without an error message (33 bytes)"
        );
    }

    #[test]
    fn provider_messages_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(300);
        let body = json!({"error": {"message": long, "code": "x".repeat(500)}}).to_string();
        let e = parse_error(400, body.as_bytes(), None);
        assert_eq!(e.message.chars().count(), MAX_ERROR_MESSAGE_CHARS);
        assert!(e.message.chars().all(|c| c == 'é'));
        assert_eq!(e.code.unwrap().len(), MAX_ERROR_CODE_CHARS);
        let forged = parse_error(400, br#"{"error":"a\nINFO forged log line"}"#, None);
        assert_eq!(forged.message, "a INFO forged log line");
    }

    #[test]
    fn redirects_are_errors_without_their_location() {
        let e = redirect_error(302);
        assert_eq!(
            (e.kind, e.retryable, e.status),
            (ErrorKind::Status, false, Some(302))
        );
        assert_eq!(e.message, "redirects are not followed (HTTP 302)");
        assert!(!e.is_provider_failure());
    }

    #[test]
    fn retry_after_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        let now = SystemTime::now();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(150)));
    }
}
