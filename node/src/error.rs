//! How a node run ends badly, and which exit code that gives.

use crate::config::ConfigError;

/// How a node run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad configuration or environment the operator must fix: exit code 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else: exit code 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}
