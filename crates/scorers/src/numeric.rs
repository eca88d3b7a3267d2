//! Numeric answers: pull a number out of free text and compare it to the expected
//! value with Python `math.isclose` semantics.

use std::sync::LazyLock;

use regex::Regex;

// Optional sign, digits with optional thousands separators, optional fraction and
// exponent; or a bare fraction like ".5".
static NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?").ok()
});

/// Which number to take when the text has several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// The first number in the text.
    First,
    /// The last number in the text (the usual "final answer" convention).
    #[default]
    Last,
}

/// The first or last number in `text` (thousands separators removed), if any.
pub fn extract_number(text: &str, pick: Pick) -> Option<f64> {
    let re = NUMBER.as_ref()?;
    let m = match pick {
        Pick::First => re.find(text),
        Pick::Last => re.find_iter(text).last(),
    }?;
    let mut number = m.as_str();
    // "pages 2-3" ends with 3, not -3: a sign glued to a word or number is a dash.
    let glued = text[..m.start()]
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    if glued {
        number = number.trim_start_matches(['-', '+']);
    }
    number.replace(',', "").parse().ok()
}

/// Python `math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)`.
pub fn is_close(a: f64, b: f64, abs_tol: f64, rel_tol: f64) -> bool {
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    let diff = (a - b).abs();
    diff <= (rel_tol * b.abs()).max(rel_tol * a.abs()).max(abs_tol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_numbers() {
        assert_eq!(
            extract_number("The answer is 1,234.5 apples", Pick::Last),
            Some(1234.5)
        );
        assert_eq!(extract_number("3 then -4e2", Pick::Last), Some(-400.0));
        assert_eq!(extract_number("3 then -4e2", Pick::First), Some(3.0));
        assert_eq!(extract_number("none", Pick::First), None);
        assert_eq!(extract_number("about .5", Pick::First), Some(0.5));
        assert_eq!(extract_number("pages 2-3", Pick::Last), Some(3.0));
        assert_eq!(extract_number("x-1", Pick::Last), Some(1.0));
        assert_eq!(extract_number("it is -1", Pick::Last), Some(-1.0));
    }

    #[test]
    fn isclose_semantics() {
        assert!(is_close(1.0, 1.0 + 1e-12, 0.0, 1e-9));
        assert!(!is_close(1.0, 1.1, 0.0, 1e-9));
        assert!(is_close(1.0, 1.1, 0.2, 0.0));
        assert!(!is_close(f64::NAN, f64::NAN, 1.0, 1.0));
    }
}
