//! Identifier generation and validation.

use rand::Rng;

/// Longest id a client may choose for a tenant or tier.
pub const MAX_ID_LEN: usize = 64;

/// A random id with a type prefix, e.g. `tn_3f9a0c1d2e4b5a6f`.
pub fn random_id(prefix: &str) -> String {
    let bytes: [u8; 8] = rand::rng().random();
    format!("{prefix}_{}", hex::encode(bytes))
}

/// A random request id (32 hex characters).
pub fn random_request_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// Checks a client-chosen id (tenant id, tier name): 1–64 characters of `a-z 0-9 - _ .`,
/// starting with a letter or digit. Returns a message saying what is wrong.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("must be at most {MAX_ID_LEN} characters"));
    }
    let first = id.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err("must start with a lowercase letter or a digit".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "contains {c:?}; allowed are lowercase letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_prefix_and_differ() {
        let a = random_id("tn");
        let b = random_id("tn");
        assert!(a.starts_with("tn_") && a.len() == 19);
        assert_ne!(a, b);
        assert!(validate_id(&a).is_ok());
    }

    #[test]
    fn validate_id_rejects_bad_ids() {
        assert!(validate_id("acme").is_ok());
        assert!(validate_id("acme-2.eu_west").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("Acme").is_err());
        assert!(validate_id("-acme").is_err());
        assert!(validate_id("ac me").is_err());
        assert!(validate_id(&"a".repeat(65)).is_err());
    }
}
