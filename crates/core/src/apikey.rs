//! API keys and the admin token: secret generation, hashing and constant-time checks.
//!
//! Only `sha256(secret)` is ever stored or replicated; the secret is shown once.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of every tenant API key secret: `colony_<key id>.<random>`.
pub const API_KEY_PREFIX: &str = "colony_";

/// Shortest admin token accepted from the environment.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// A tenant API key as stored in the state machine (no secret, only its hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Key id, e.g. `key_3f9a0c1d2e4b5a6f`; public, part of the secret's text.
    pub id: String,
    /// The tenant the key authenticates as.
    pub tenant: String,
    /// Optional label chosen by the admin.
    #[serde(default)]
    pub name: Option<String>,
    /// Hex sha256 of the whole secret.
    pub secret_hash: String,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// After this time the key is refused; `None` means it does not expire.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// When the key was revoked, if it was.
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
}

impl ApiKey {
    /// Whether the key authenticates at `now_ms`.
    pub fn is_valid_at(&self, now_ms: u64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|e| now_ms < e)
    }
}

/// A freshly generated key: the secret (to show once) and the record to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The secret text the client sends as a bearer token.
    pub secret: String,
    /// Key id (the part of the secret before the dot, after the prefix).
    pub id: String,
    /// Hex sha256 of `secret`.
    pub secret_hash: String,
}

/// Generates a new API key secret with a fresh key id.
pub fn generate_api_key() -> NewKey {
    let id = crate::ids::random_id("key");
    let random: [u8; 24] = rand::rng().random();
    let secret = format!("{API_KEY_PREFIX}{id}.{}", hex::encode(random));
    let secret_hash = hash_secret(&secret);
    NewKey {
        secret,
        id,
        secret_hash,
    }
}

/// Generates an admin token.
pub fn generate_admin_token() -> String {
    let random: [u8; 24] = rand::rng().random();
    format!("colony_admin.{}", hex::encode(random))
}

/// Hex sha256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The key id a presented API key secret claims, if it has the right shape.
pub fn key_id_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(API_KEY_PREFIX)?;
    let (id, random) = rest.split_once('.')?;
    (!id.is_empty() && !random.is_empty()).then_some(id)
}

/// Whether `secret` hashes to `expected_hash_hex`, compared in constant time.
pub fn secret_matches(secret: &str, expected_hash_hex: &str) -> bool {
    let Ok(expected) = hex::decode(expected_hash_hex) else {
        return false;
    };
    let actual = Sha256::digest(secret.as_bytes());
    actual.as_slice().ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips() {
        let k = generate_api_key();
        assert_eq!(key_id_of(&k.secret), Some(k.id.as_str()));
        assert!(secret_matches(&k.secret, &k.secret_hash));
        assert!(!secret_matches(&format!("{}x", k.secret), &k.secret_hash));
        assert!(!secret_matches(&k.secret, "not hex"));
    }

    #[test]
    fn key_id_of_rejects_malformed() {
        assert_eq!(key_id_of("colony_key_1.abc"), Some("key_1"));
        assert_eq!(key_id_of("colony_key_1."), None);
        assert_eq!(key_id_of("colony_.abc"), None);
        assert_eq!(key_id_of("bearer"), None);
    }

    #[test]
    fn validity_honours_revocation_and_expiry() {
        let mut k = ApiKey {
            id: "key_1".into(),
            tenant: "t".into(),
            name: None,
            secret_hash: String::new(),
            created_at_ms: 0,
            expires_at_ms: Some(100),
            revoked_at_ms: None,
        };
        assert!(k.is_valid_at(99));
        assert!(!k.is_valid_at(100));
        k.expires_at_ms = None;
        assert!(k.is_valid_at(u64::MAX));
        k.revoked_at_ms = Some(5);
        assert!(!k.is_valid_at(0));
    }
}
