//! Model prices: what a thousand input and output tokens cost.

use crate::evaluation::usd_to_nanos;
use serde::{Deserialize, Serialize};

/// The price of a model, per 1000 tokens, in US dollars as the admin gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Model name as providers report it (e.g. `gpt-4o-mini`); the key of the price.
    pub model: String,
    /// USD per 1000 input (prompt) tokens.
    pub input_per_1k_usd: f64,
    /// USD per 1000 output (completion) tokens.
    pub output_per_1k_usd: f64,
    /// When it was set (ms since the Unix epoch, stamped by the proposer).
    #[serde(default)]
    pub updated_at_ms: u64,
}

impl Price {
    /// Checks the values; returns (JSON pointer, problem) for the first bad one.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.model.is_empty() || self.model.len() > 200 {
            return Err(("/model".into(), "must be 1 to 200 bytes".into()));
        }
        for (field, v) in [
            ("/input_per_1k_usd", self.input_per_1k_usd),
            ("/output_per_1k_usd", self.output_per_1k_usd),
        ] {
            if usd_to_nanos(v).is_none() || v > 1_000.0 {
                return Err((
                    field.into(),
                    "must be a number from 0 to 1000 (USD per 1000 tokens)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Cost of a call in nano-dollars, rounded to the nearest nano-dollar per call.
    pub fn cost_nanos(&self, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        // Nano-dollars per 1000 tokens, then per call: integer maths after one rounding
        // of each price, so the same call always costs the same.
        let inp = usd_to_nanos(self.input_per_1k_usd).unwrap_or(0) as u128;
        let out = usd_to_nanos(self.output_per_1k_usd).unwrap_or(0) as u128;
        let total = inp * prompt_tokens as u128 + out * completion_tokens as u128;
        let nanos = (total + 500) / 1000;
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_integer_maths() {
        let p = Price {
            model: "m".into(),
            input_per_1k_usd: 0.15,
            output_per_1k_usd: 0.6,
            updated_at_ms: 0,
        };
        assert!(p.validate().is_ok());
        // 1000 in, 500 out: 0.15 + 0.30 USD.
        assert_eq!(p.cost_nanos(1000, 500), 450_000_000);
        assert_eq!(p.cost_nanos(0, 0), 0);
        let bad = Price {
            input_per_1k_usd: -1.0,
            ..p
        };
        assert_eq!(bad.validate().unwrap_err().0, "/input_per_1k_usd");
    }
}
