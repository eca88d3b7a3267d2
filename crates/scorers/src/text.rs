//! Plain text checks: substring, case-insensitive substring, prefix, regex search
//! and JSON well-formedness.

use regex::Regex;

use crate::pystr;

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
}
