//! A spec's provider as a `colony-providers` client configuration.

use colony_eval::{ProviderKind, ProviderSpec};
use colony_providers::{ConfigError, Credential, ProviderConfig, RetryPolicy};
use std::time::Duration;

/// The client configuration of `spec` with the evaluation's timeout and retries, the
/// node's response-size cap, and the resolved credential (if the spec names one).
pub fn config_of(
    spec: &ProviderSpec,
    timeout_ms: u64,
    max_retries: u32,
    max_response_bytes: usize,
    credential: Option<Credential>,
) -> Result<ProviderConfig, ConfigError> {
    let mut config = match spec.kind {
        ProviderKind::Openai => {
            ProviderConfig::openai(spec.base_url.clone().unwrap_or_default(), &spec.model)
        }
        ProviderKind::Builtin => ProviderConfig::builtin(&spec.model),
    };
    if let Ok(serde_json::Value::Object(params)) = serde_json::to_value(&spec.params) {
        for (k, v) in params {
            if !v.is_null() {
                config = config.with_param(&k, v);
            }
        }
    }
    config = config
        .with_timeout(Duration::from_millis(timeout_ms))
        .with_retry(RetryPolicy {
            max_retries,
            ..RetryPolicy::default()
        });
    config.max_response_bytes = max_response_bytes;
    config.credential = credential;
    config.validate()?;
    Ok(config)
}
