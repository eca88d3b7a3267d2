//! The few Python `str` semantics the reference implementations rely on, so the
//! scorers split, strip and lowercase exactly as `str.split()`, `str.rstrip()` and
//! `str.lower()` do.
//!
//! Lowercasing uses Rust's `str::to_lowercase`, which applies the same full Unicode
//! mappings as CPython (including `İ` → `i̇` and the final-sigma rule). Checked over
//! every code point against Python 3.11 (Unicode 14): they differ only on 55 code
//! points that Python's Unicode does not assign yet (e.g. Garay, U+10D50..). The
//! same check of [`is_word_char`] (through SQuAD's article removal) found no
//! difference on any code point Python assigns.

use std::sync::LazyLock;

use regex::Regex;

/// Whether Python's `str.isspace()` holds for `c`: Unicode `White_Space` plus the
/// four ASCII separators U+001C..U+001F that Python also treats as whitespace.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()`: split on runs of whitespace, dropping empty pieces.
pub fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|t| !t.is_empty())
}

/// Python's `s.rstrip()`.
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Python's `s.lower()`.
pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// Python's `' '.join(s.split())`.
pub fn collapse_spaces(s: &str) -> String {
    split(s).collect::<Vec<_>>().join(" ")
}

// Python's `\w` for `str` patterns is `isalnum() or '_'`, i.e. letters and numbers
// by general category; Rust's `char::is_alphanumeric` also admits combining marks
// with `Other_Alphabetic`, so the category classes are used instead.
static WORD: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{N}_]$").ok());

/// Whether `c` is a word character for Python's `re` (`\w`, and so `\b`).
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let mut buf = [0u8; 4];
    WORD.as_ref()
        .is_some_and(|re| re.is_match(c.encode_utf8(&mut buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_python_whitespace() {
        let s = "a\u{1c}b\u{a0}c\u{3000}d  e\u{200b}f";
        assert_eq!(
            split(s).collect::<Vec<_>>(),
            ["a", "b", "c", "d", "e\u{200b}f"]
        );
    }

    #[test]
    fn lower_matches_python_special_cases() {
        assert_eq!(lower("İ"), "i\u{307}");
        assert_eq!(lower("ΟΔΟΣ"), "οδο\u{3c2}");
        assert_eq!(lower("ΣΑ"), "\u{3c3}α");
    }

    #[test]
    fn word_chars_follow_python() {
        assert!(is_word_char('é'));
        assert!(is_word_char('²'));
        assert!(is_word_char('_'));
        assert!(!is_word_char('\u{301}'));
        assert!(!is_word_char('-'));
    }
}
