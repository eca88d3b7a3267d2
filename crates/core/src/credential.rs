//! Provider credentials as named objects: what the Raft state stores of a tenant's
//! credential (its name, the hosts it may be sent to, and its value sealed with an AEAD
//! key derived from the cluster secret), and the checks on what a tenant may store.
//!
//! The value is sealed by the node that takes the `PUT`, before it is proposed, so the
//! Raft log, the sled files and a backup hold ciphertext only. The additional data binds
//! the ciphertext to its tenant and name: a sealed value copied to another tenant's
//! record does not open.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hkdf;
use serde::{Deserialize, Serialize};

/// Longest credential name.
pub const MAX_NAME_LEN: usize = 64;
/// Largest credential value (an API key or token), in bytes.
pub const MAX_VALUE_LEN: usize = 8 * 1024;
/// Most hosts one credential may be sent to.
pub const MAX_ALLOWED_HOSTS: usize = 16;
/// Most credentials one tenant may store.
pub const MAX_PER_TENANT: usize = 64;

/// Format marker of a sealed value (bumped if the sealing scheme changes).
const SEAL_V1: u8 = 1;

/// A tenant's credential as the state machine keeps it (never the plain value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// Owning tenant.
    pub tenant: String,
    /// Name, unique within the tenant (`[A-Za-z0-9._-]`, 1 to 64 characters).
    pub name: String,
    /// `host:port` pairs the value may be sent to (lowercase host).
    pub allowed_hosts: Vec<String>,
    /// Hex of version, nonce and ciphertext with its tag.
    pub sealed: String,
    /// PEM of a private CA the endpoint's certificate chains to (trusted alone for this
    /// credential's calls); absent for public endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// When it was first stored (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When its value or hosts last changed.
    pub updated_at_ms: u64,
}

/// Why a credential cannot be stored, or its value cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The name is empty, too long or has other characters.
    #[error("name must be 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ -")]
    Name,
    /// The value is empty, too long, or not a header-safe string.
    #[error("value must be 1 to {MAX_VALUE_LEN} bytes of visible ASCII (no spaces or control characters)")]
    Value,
    /// No host, too many, or one is not `host:port`.
    #[error("allowed_hosts: {0}")]
    Hosts(String),
    /// The sealed value does not open with this cluster's key (another cluster secret, or
    /// it was moved to another tenant or name).
    #[error("the stored value cannot be decrypted with this cluster's secret")]
    Open,
    /// The sealing key could not be derived.
    #[error("cannot derive the credential key")]
    Key,
    /// The sealed value is not in a known format.
    #[error("the stored value is malformed")]
    Malformed,
}

/// Checks a credential name.
pub fn check_name(name: &str) -> Result<(), CredentialError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CredentialError::Name)
    }
}

/// Checks a credential value: it goes into an `Authorization` header.
pub fn check_value(value: &str) -> Result<(), CredentialError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_VALUE_LEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(CredentialError::Value)
    }
}

/// Normalizes and checks `host:port` entries: lowercase, deduplicated, order kept.
pub fn normalize_hosts(hosts: &[String]) -> Result<Vec<String>, CredentialError> {
    if hosts.is_empty() {
        return Err(CredentialError::Hosts(
            "at least one host:port is required".into(),
        ));
    }
    if hosts.len() > MAX_ALLOWED_HOSTS {
        return Err(CredentialError::Hosts(format!(
            "at most {MAX_ALLOWED_HOSTS} hosts"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(hosts.len());
    for h in hosts {
        let h = h.trim().to_ascii_lowercase();
        if !is_host_port(&h) {
            return Err(CredentialError::Hosts(format!(
                "{h:?} is not host:port (e.g. api.openai.com:443 or [::1]:8000)"
            )));
        }
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}

/// Whether `s` is `host:port` with a DNS name, an IPv4 address or a bracketed IPv6 one.
pub fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    port_ok && host_ok
}

/// The AEAD key credentials are sealed with, derived from the cluster secret (HKDF-SHA256).
pub struct SealingKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// The HKDF output length request for the ChaCha20-Poly1305 key.
struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        CHACHA20_POLY1305.key_len()
    }
}

impl SealingKey {
    /// Derives the key from the cluster secret.
    pub fn derive(cluster_secret: &[u8]) -> Result<Self, CredentialError> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"colony credentials v1");
        let prk = salt.extract(cluster_secret);
        let mut bytes = [0u8; 32];
        // expand/fill fail only for output lengths over 255 hash lengths; 32 is fine.
        prk.expand(&[b"provider credential sealing key"], KeyLen)
            .and_then(|okm| okm.fill(&mut bytes))
            .map_err(|_| CredentialError::Key)?;
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| CredentialError::Key)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `value` for `tenant`'s credential `name` with a fresh random `nonce`.
    pub fn seal(&self, tenant: &str, name: &str, value: &str, nonce: [u8; NONCE_LEN]) -> String {
        let mut buf = value.as_bytes().to_vec();
        let aad = aad(tenant, name);
        // Sealing fails only for inputs over ChaCha20's 256 GiB limit; values are capped.
        let _ = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_slice()),
            &mut buf,
        );
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        hex::encode(out)
    }

    /// Opens a value sealed by [`Self::seal`] for the same tenant and name.
    pub fn open(&self, tenant: &str, name: &str, sealed: &str) -> Result<String, CredentialError> {
        let bytes = hex::decode(sealed).map_err(|_| CredentialError::Malformed)?;
        if bytes.len() < 1 + NONCE_LEN || bytes[0] != SEAL_V1 {
            return Err(CredentialError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[1..1 + NONCE_LEN]);
        let mut buf = bytes[1 + NONCE_LEN..].to_vec();
        let aad = aad(tenant, name);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_slice()),
                &mut buf,
            )
            .map_err(|_| CredentialError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| CredentialError::Malformed)
    }
}

fn aad(tenant: &str, name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(tenant.len() + name.len() + 1);
    v.extend_from_slice(tenant.as_bytes());
    v.push(0);
    v.extend_from_slice(name.as_bytes());
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_tenant_name_and_secret() {
        let key =
            SealingKey::derive(b"a cluster secret of enough entropy 0123456789abcdef").unwrap();
        let sealed = key.seal("t1", "openai", "sk-live-123", [3; NONCE_LEN]);
        assert!(
            !sealed.contains(&hex::encode("sk-live-123")),
            "no plain text"
        );
        assert_eq!(key.open("t1", "openai", &sealed).unwrap(), "sk-live-123");
        assert_eq!(
            key.open("t2", "openai", &sealed),
            Err(CredentialError::Open)
        );
        assert_eq!(key.open("t1", "other", &sealed), Err(CredentialError::Open));
        let other =
            SealingKey::derive(b"another cluster secret 0123456789abcdef0123456789").unwrap();
        assert_eq!(
            other.open("t1", "openai", &sealed),
            Err(CredentialError::Open)
        );
        assert_eq!(
            key.open("t1", "openai", "zz"),
            Err(CredentialError::Malformed)
        );
        let mut flipped = hex::decode(&sealed).unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            key.open("t1", "openai", &hex::encode(flipped)),
            Err(CredentialError::Open)
        );
    }

    #[test]
    fn names_values_and_hosts_are_checked() {
        assert!(check_name("openai-prod.1").is_ok());
        for bad in ["", "a/b", "../x", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_value("sk-abc").is_ok());
        for bad in [
            "",
            "a b",
            "a\r\nX-Injected: 1",
            &"k".repeat(MAX_VALUE_LEN + 1),
        ] {
            assert!(check_value(bad).is_err());
        }
        let hosts = normalize_hosts(&[
            "API.openai.com:443".into(),
            "api.openai.com:443".into(),
            "[::1]:8000".into(),
        ])
        .unwrap();
        assert_eq!(hosts, ["api.openai.com:443", "[::1]:8000"]);
        for bad in [
            "api.openai.com",
            "h:0",
            "h:99999",
            "a b:1",
            "::1:80",
            "h/x:1",
        ] {
            assert!(normalize_hosts(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(normalize_hosts(&[]).is_err());
    }
}
