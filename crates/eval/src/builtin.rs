//! The builtin providers' answers as pure functions of the work item: the node waits
//! the returned latency (it owns the clock) and records the answer like any other.
//!
//! - `echo` answers with the rendered prompt ([`RenderedPrompt::echo_text`]) at once.
//! - `mock` answers the same text after `params.latency_ms` (default 0), and fails with
//!   probability `params.error_rate` (default 0). Whether an attempt fails is decided
//!   by SHA-256 of the provider id, `params.seed`, the work key and the attempt
//!   number, so a run is reproducible on any node and a retry can succeed.
//!
//! Usage is counted in whitespace-separated words, a stand-in for tokens.

use sha2::{Digest, Sha256};

use crate::error::EvalError;
use crate::plan::WorkItem;
use crate::result::Usage;
use crate::spec::{ProviderKind, ProviderSpec, BUILTIN_MOCK};
use crate::validated::RenderedPrompt;

/// A builtin provider's answer to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinReply {
    /// The completion, or why the attempt failed.
    pub result: Result<String, String>,
    /// How long the node should take to answer, in milliseconds.
    pub latency_ms: u64,
    /// Words in the prompt and in the completion.
    pub usage: Usage,
}

/// The answer of builtin `provider` to attempt `attempt` (from 1) of `item`.
pub fn builtin_reply(
    provider: &ProviderSpec,
    prompt: &RenderedPrompt,
    item: &WorkItem,
    attempt: u32,
) -> Result<BuiltinReply, EvalError> {
    if provider.kind != ProviderKind::Builtin {
        return Err(EvalError::NotBuiltin(provider.id.clone()));
    }
    let text = prompt.echo_text();
    let prompt_tokens = words(&text);
    let mock = provider.model == BUILTIN_MOCK;
    let latency_ms = if mock {
        provider.params.latency_ms.unwrap_or(0)
    } else {
        0
    };
    let error_rate = if mock {
        provider.params.error_rate.unwrap_or(0.0)
    } else {
        0.0
    };
    let fails = error_rate > 0.0 && draw(provider, item, attempt) < error_rate;
    let (result, completion_tokens) = if fails {
        (Err(format!("mock error (attempt {attempt})")), 0)
    } else {
        let n = words(&text);
        (Ok(text), n)
    };
    Ok(BuiltinReply {
        result,
        latency_ms,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
        },
    })
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A uniform draw in [0, 1) fixed by the provider, its seed, the item and the attempt.
fn draw(provider: &ProviderSpec, item: &WorkItem, attempt: u32) -> f64 {
    let mut h = Sha256::new();
    h.update(b"colony-mock\0");
    h.update(provider.id.as_bytes());
    h.update([0]);
    h.update(provider.params.seed.unwrap_or(0).to_be_bytes());
    h.update(item.key().as_str().as_bytes());
    h.update([0]);
    h.update(attempt.to_be_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::plan::Plan;
    use crate::{validate, SpecLimits};
    use serde_json::json;

    fn spec(error_rate: f64) -> crate::ValidatedSpec {
        let body = json!({
            "providers": [
                {"id": "e", "kind": "builtin", "model": "echo"},
                {"id": "m", "kind": "builtin", "model": "mock", "params": {"latency_ms": 7, "error_rate": error_rate, "seed": 1}},
                {"id": "o", "kind": "openai", "base_url": "http://127.0.0.1:1", "model": "x"}
            ],
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say {{w}}"}],
            "cases": (0..200).map(|i| json!({"vars": {"w": i}})).collect::<Vec<_>>(),
            "scorers": [{"type": "regex", "pattern": "say"}]
        });
        validate(&body, &SpecLimits::default()).unwrap()
    }

    #[test]
    fn echo_and_mock_answer_the_prompt() {
        let s = spec(0.0);
        let item = Plan::new(&s).get(0).unwrap();
        let prompt = s.render(item.case_index).unwrap();
        let e = builtin_reply(s.provider("e").unwrap(), &prompt, &item, 1).unwrap();
        assert_eq!(e.result.as_deref(), Ok("be brief\nsay 0"));
        assert_eq!(e.latency_ms, 0);
        assert_eq!((e.usage.prompt_tokens, e.usage.completion_tokens), (4, 4));
        let m = builtin_reply(s.provider("m").unwrap(), &prompt, &item, 1).unwrap();
        assert_eq!((m.result, m.latency_ms), (e.result, 7));
        assert_eq!(
            builtin_reply(s.provider("o").unwrap(), &prompt, &item, 1),
            Err(EvalError::NotBuiltin("o".into()))
        );
    }

    #[test]
    fn mock_errors_are_deterministic_and_near_the_rate() {
        let s = spec(0.25);
        let m = s.provider("m").unwrap();
        let outcomes = |attempt| -> Vec<bool> {
            (0..200)
                .map(|i| {
                    let item = WorkItem {
                        case_index: i,
                        provider_id: "m".into(),
                        repeat: 0,
                    };
                    let prompt = s.render(i).unwrap();
                    builtin_reply(m, &prompt, &item, attempt)
                        .unwrap()
                        .result
                        .is_err()
                })
                .collect()
        };
        let first = outcomes(1);
        assert_eq!(first, outcomes(1));
        assert_ne!(first, outcomes(2));
        let failed = first.iter().filter(|f| **f).count();
        assert!((25..=75).contains(&failed), "{failed} of 200 failed");
        assert!(spec(1.0)
            .provider("m")
            .map(|m| {
                let item = Plan::new(&s).get(1).unwrap();
                builtin_reply(m, &s.render(0).unwrap(), &item, 1).unwrap()
            })
            .unwrap()
            .result
            .is_err());
    }
}
