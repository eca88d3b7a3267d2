//! Plain text checks: substring, case-insensitive substring, prefix, regex search
//! and JSON well-formedness.
//!
//! Patterns come from tenants, so they are compiled with limits (shared with
//! [`crate::json_schema`]): at most [`MAX_PATTERN_LEN`] bytes of pattern, at most
//! [`REGEX_SIZE_LIMIT`] bytes of compiled program and a lazy DFA cache of at most
//! [`REGEX_DFA_SIZE_LIMIT`] bytes. Unicode classes are large (`\w` alone compiles
//! to about 50 KB), so counted repetitions of them hit the size limit quickly;
//! `(?-u:\w)` or `[A-Za-z0-9_]` are small.

use regex::{Regex, RegexBuilder};

use crate::pystr;

/// Largest compiled program a tenant pattern may produce, in bytes (`RegexBuilder::size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Largest lazy DFA cache a tenant pattern may use, in bytes (`RegexBuilder::dfa_size_limit`).
pub const REGEX_DFA_SIZE_LIMIT: usize = 1024 * 1024;

/// Longest tenant pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Why a tenant pattern was refused.
#[derive(Debug)]
pub(crate) enum PatternError {
    /// Longer than [`MAX_PATTERN_LEN`] (the length in bytes).
    TooLong(usize),
    /// Compiles to more than [`REGEX_SIZE_LIMIT`] bytes.
    TooBig,
    /// Does not compile.
    Invalid(regex::Error),
}

impl PatternError {
    /// A lowercase, one-line explanation that follows the word "pattern".
    pub(crate) fn detail(&self) -> String {
        match self {
            Self::TooLong(n) => {
                format!("is {n} bytes long, over the limit of {MAX_PATTERN_LEN} bytes")
            }
            Self::TooBig => format!(
                "compiles to more than the limit of {REGEX_SIZE_LIMIT} bytes \
                 (unicode classes such as \\w are large; (?-u:\\w) or [A-Za-z0-9_] are small)"
            ),
            Self::Invalid(e) => format!("does not compile: {e}"),
        }
    }
}

/// Compile a tenant pattern within [`MAX_PATTERN_LEN`], [`REGEX_SIZE_LIMIT`] and
/// [`REGEX_DFA_SIZE_LIMIT`].
pub(crate) fn compile_pattern(pattern: &str) -> Result<Regex, PatternError> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong(pattern.len()));
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => PatternError::TooBig,
            other => PatternError::Invalid(other),
        })
}

/// Whether `needle` occurs in `output`.
pub fn contains(output: &str, needle: &str) -> bool {
    output.contains(needle)
}

/// Python's `needle.lower() in output.lower()`.
pub fn icontains(output: &str, needle: &str) -> bool {
    pystr::lower(output).contains(&pystr::lower(needle))
}

/// Whether `output` starts with `prefix`.
pub fn starts_with(output: &str, prefix: &str) -> bool {
    output.starts_with(prefix)
}

/// Whether `re` matches anywhere in `output` (like Python's `re.search`).
pub fn regex_search(re: &Regex, output: &str) -> bool {
    re.is_match(output)
}

/// Whether `output` is one RFC 8259 JSON value (surrounding whitespace allowed;
/// `NaN`/`Infinity`, which Python's `json.loads` accepts, are not JSON and rejected).
pub fn json_valid(output: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(output).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(contains("hello world", "o w"));
        assert!(icontains("HELLO İstanbul", "i\u{307}stanbul"));
        assert!(starts_with("yes, indeed", "yes"));
        assert!(json_valid(" {\"a\": [1, 2.5, null]} "));
        assert!(!json_valid("{a: 1}"));
        assert!(!json_valid("NaN"));
    }

    #[test]
    fn patterns_are_compiled_within_limits() {
        assert!(compile_pattern(r"^\d{4}-\d{2}-\d{2}$").is_ok());
        assert!(compile_pattern(r"^[a-z]+$").is_ok());
        for bomb in [
            r"\w{5000}",
            r"(\w{100}){100}",
            r"\w{200}N",
            r"(a{200}){200}",
        ] {
            let e = compile_pattern(bomb).err();
            assert!(matches!(e, Some(PatternError::TooBig)), "{bomb}: {e:?}");
        }
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(matches!(
            compile_pattern(&long),
            Err(PatternError::TooLong(n)) if n == MAX_PATTERN_LEN + 1
        ));
        assert!(compile_pattern(&"a".repeat(MAX_PATTERN_LEN)).is_ok());
        assert!(matches!(
            compile_pattern("("),
            Err(PatternError::Invalid(_))
        ));
    }
}
