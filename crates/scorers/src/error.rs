//! Why a scorer configuration cannot be used.

/// A scorer spec that cannot be turned into a [`crate::Scorer`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `regex` scorer's pattern does not compile.
    #[error("invalid regex {pattern:?}: {source}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// What the regex compiler said.
        #[source]
        source: regex::Error,
    },
    /// The `json_schema` scorer's schema is malformed or uses unsupported keywords.
    #[error("invalid json schema at {path}: {message}")]
    Schema {
        /// JSON pointer (with `#`) to the offending keyword.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// A setting is over one of the limits that bound a scorer's cost (a regex
    /// pattern too long, or compiling to too large a program).
    #[error("{field} {message}")]
    Limit {
        /// The setting's name (`pattern` for the `regex` scorer).
        field: &'static str,
        /// Which limit, and by how much (follows the field's name: "is 5000 bytes
        /// long, over the limit of 1024 bytes").
        message: String,
    },
    /// A numeric setting is out of range (negative, NaN, ...).
    #[error("invalid {field}: {value} ({reason})")]
    Number {
        /// The setting's name.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range.
        reason: &'static str,
    },
}
