//! Providers that need no network, for tests, demos and dry runs of an evaluation.
//!
//! - `echo` answers with the rendered prompt.
//! - `mock` answers `params.responses[prompt]` if that map has the prompt, else
//!   `params.response` if set, else the rendered prompt: a pure function of the prompt
//!   and the params.
//!
//! The rendered prompt is the content of the last `user` message; with no user message,
//! all contents joined with `"\n"`. Both models report usage as whitespace-separated
//! token counts (prompt: every message's content; completion: the answer) so cost can be
//! computed, and both accept `latency_ms` (a sleep before answering, subject to the call
//! timeout) and `error_rate` in `[0, 1]` with `seed`: whether attempt `n` of a prompt
//! fails is decided by a hash of (seed, attempt, messages), so a run replays exactly.

use crate::error::{param, ConfigError, ErrorKind, ProviderError};
use crate::message::{ChatMessage, Usage};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// A builtin model and its knobs, parsed from a config's `model` and `params`.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinModel {
    mock: bool,
    latency: Duration,
    error_rate: f64,
    seed: u64,
    response: Option<String>,
    responses: serde_json::Map<String, serde_json::Value>,
}

impl BuiltinModel {
    /// Parses a provider config's `model` (`echo` or `mock`) and the knobs in its `params`.
    pub fn parse(
        model: &str,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, ConfigError> {
        let mock = match model {
            "echo" => false,
            "mock" => true,
            other => return Err(ConfigError::UnknownBuiltinModel(other.to_string())),
        };
        let p = params;
        let latency_ms = match p.get("latency_ms") {
            None => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| param("latency_ms", "must be a non-negative integer"))?,
        };
        let error_rate = match p.get("error_rate") {
            None => 0.0,
            Some(v) => v
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| param("error_rate", "must be a number in [0, 1]"))?,
        };
        let seed = match p.get("seed") {
            None => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| param("seed", "must be a non-negative integer"))?,
        };
        let response = match p.get("response") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| param("response", "must be a string"))?
                    .to_string(),
            ),
        };
        let responses = match p.get("responses") {
            None => serde_json::Map::new(),
            Some(v) => v
                .as_object()
                .filter(|m| m.values().all(|v| v.is_string()))
                .ok_or_else(|| param("responses", "must be an object of strings"))?
                .clone(),
        };
        Ok(Self {
            mock,
            latency: Duration::from_millis(latency_ms),
            error_rate,
            seed,
            response,
            responses,
        })
    }

    /// How long the model takes to answer.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// The answer to attempt `attempt` (0-based) of a call with `messages`.
    pub fn respond(
        &self,
        messages: &[ChatMessage],
        attempt: u32,
    ) -> Result<(String, Usage), ProviderError> {
        if self.fails(messages, attempt) {
            let mut err = ProviderError::new(
                ErrorKind::Injected,
                format!("mock failure (error_rate {})", self.error_rate),
            );
            err.status = Some(500);
            return Err(err);
        }
        let prompt = render_prompt(messages);
        let text = if self.mock {
            self.responses
                .get(&prompt)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .or_else(|| self.response.clone())
                .unwrap_or(prompt)
        } else {
            prompt
        };
        let usage = Usage {
            prompt_tokens: messages.iter().map(|m| count_tokens(&m.content)).sum(),
            completion_tokens: count_tokens(&text),
        };
        Ok((text, usage))
    }

    /// Whether attempt `attempt` of `messages` is an injected failure.
    pub fn fails(&self, messages: &[ChatMessage], attempt: u32) -> bool {
        if self.error_rate <= 0.0 {
            return false;
        }
        let mut h = Sha256::new();
        h.update(self.seed.to_le_bytes());
        h.update(attempt.to_le_bytes());
        for m in messages {
            // Length prefixes keep ("ab","c") and ("a","bc") apart.
            for part in [&m.role, &m.content] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 53 random bits give a uniform f64 in [0, 1).
        let unit = (u64::from_le_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
        unit < self.error_rate
    }
}

/// The prompt a builtin model sees: the last `user` message, else all contents joined
/// with `"\n"`.
pub fn render_prompt(messages: &[ChatMessage]) -> String {
    match messages.iter().rev().find(|m| m.role == "user") {
        Some(m) => m.content.clone(),
        None => messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Whitespace-separated tokens: a stand-in for a tokenizer that is stable and free.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn mock(params: serde_json::Value) -> BuiltinModel {
        BuiltinModel::parse("mock", params.as_object().unwrap()).unwrap()
    }

    #[test]
    fn echo_renders_last_user_message_or_everything() {
        let echo = BuiltinModel::parse("echo", &serde_json::Map::new()).unwrap();
        let msgs = [
            ChatMessage::system("be brief"),
            ChatMessage::user("first"),
            ChatMessage::new("assistant", "ok"),
            ChatMessage::user("what is 2 + 2"),
        ];
        let (text, usage) = echo.respond(&msgs, 0).unwrap();
        assert_eq!(text, "what is 2 + 2");
        assert_eq!(usage.prompt_tokens, 2 + 1 + 1 + 5);
        assert_eq!(usage.completion_tokens, 5);
        let (text, _) = echo
            .respond(
                &[ChatMessage::system("a"), ChatMessage::new("assistant", "b")],
                0,
            )
            .unwrap();
        assert_eq!(text, "a\nb");
    }

    #[test]
    fn mock_answers_from_params_deterministically() {
        let m = mock(json!({"responses": {"capital of France?": "Paris"}, "response": "dunno"}));
        let ask = |q: &str| m.respond(&[ChatMessage::user(q)], 0).unwrap().0;
        assert_eq!(ask("capital of France?"), "Paris");
        assert_eq!(ask("capital of Peru?"), "dunno");
        assert_eq!(
            mock(json!({}))
                .respond(&[ChatMessage::user("hi there")], 0)
                .unwrap()
                .0,
            "hi there"
        );
        // Same inputs, same outputs, every time and in every instance.
        let again =
            mock(json!({"responses": {"capital of France?": "Paris"}, "response": "dunno"}));
        for q in ["capital of France?", "x", ""] {
            let a = m.respond(&[ChatMessage::user(q)], 3);
            let b = again.respond(&[ChatMessage::user(q)], 3);
            assert_eq!(a.unwrap(), b.unwrap());
        }
    }

    #[test]
    fn error_rate_is_deterministic_and_roughly_right() {
        let m = mock(json!({"error_rate": 0.3, "seed": 7}));
        let same = mock(json!({"error_rate": 0.3, "seed": 7}));
        let other_seed = mock(json!({"error_rate": 0.3, "seed": 8}));
        let prompts: Vec<Vec<ChatMessage>> = (0..2000)
            .map(|i| vec![ChatMessage::user(format!("case {i}"))])
            .collect();
        let failures: Vec<bool> = prompts.iter().map(|p| m.fails(p, 0)).collect();
        let replay: Vec<bool> = prompts.iter().map(|p| same.fails(p, 0)).collect();
        assert_eq!(failures, replay);
        let other: Vec<bool> = prompts.iter().map(|p| other_seed.fails(p, 0)).collect();
        assert_ne!(failures, other);
        let rate = failures.iter().filter(|f| **f).count() as f64 / prompts.len() as f64;
        assert!((0.25..0.35).contains(&rate), "rate {rate}");
        // A retry is a different draw, so a retried call can succeed.
        let retried = prompts
            .iter()
            .filter(|p| m.fails(p, 0) && !m.fails(p, 1))
            .count();
        assert!(retried > 0);
        let err = m.respond(&prompts[failures.iter().position(|f| *f).unwrap()], 0);
        let err = err.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Injected);
        assert!(err.retryable);
        assert!(mock(json!({"error_rate": 1.0})).fails(&prompts[0], 0));
        assert!(!mock(json!({"error_rate": 0.0})).fails(&prompts[0], 0));
    }

    #[test]
    fn bad_knobs_are_config_errors() {
        for bad in [
            json!({"error_rate": 1.5}),
            json!({"error_rate": "high"}),
            json!({"latency_ms": -1}),
            json!({"response": 3}),
            json!({"responses": {"a": 1}}),
        ] {
            assert!(
                BuiltinModel::parse("mock", bad.as_object().unwrap()).is_err(),
                "{bad}"
            );
        }
        assert!(matches!(
            BuiltinModel::parse("gpt-4", &serde_json::Map::new()),
            Err(ConfigError::UnknownBuiltinModel(_))
        ));
    }
}
