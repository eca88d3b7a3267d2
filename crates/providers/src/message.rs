//! What goes to a provider (chat messages) and what comes back (a completion and its
//! token usage).

use serde::{Deserialize, Serialize};

/// One chat message, as in the OpenAI chat completions API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
}

/// Tokens a completion consumed, as reported by the provider (what cost is computed from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the answer.
    pub completion_tokens: u64,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// `choices[0].message.content`.
    pub text: String,
    /// Token usage, when the provider reports it.
    pub usage: Option<Usage>,
    /// `choices[0].finish_reason`, when the provider reports it.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Wall time of the successful attempt only (not of the retries before it).
    pub latency_ms: u64,
    /// Attempts made, including the successful one (1 = no retry).
    pub attempts: u32,
    /// Whether this answer came from the response cache instead of the provider.
    #[serde(default)]
    pub cached: bool,
}
