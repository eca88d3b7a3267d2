//! HMAC framing of gossip packets.
//!
//! Wire layout of every UDP datagram:
//!
//! ```text
//! [ version: u8 = 1 ][ foca payload ... ][ tag: 16 bytes ]
//! tag = HMAC-SHA256(cluster secret, CONTEXT || version || payload)[..16]
//! ```
//!
//! The tag is checked (in constant time) before foca sees a byte, so a sender without the
//! secret can neither join nor inject membership updates or metadata. What this does NOT
//! give: confidentiality (gossip is readable on the wire) and replay protection (a captured
//! packet can be re-sent; SWIM messages are idempotent or bounded by incarnations, so the
//! damage is limited to stale liveness hints).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Wire format version; the byte is covered by the tag.
const WIRE_V1: u8 = 1;

/// Truncated tag length: 128 bits is plenty against forgery of short-lived datagrams and
/// saves 16 bytes per packet.
pub(crate) const TAG_LEN: usize = 16;

/// Bytes the framing adds around a foca payload.
pub(crate) const FRAMING_OVERHEAD: usize = 1 + TAG_LEN;

/// Domain separation: the cluster secret may also key other Colony protocols, and a tag
/// computed for one of those must never verify as a gossip packet.
const CONTEXT: &[u8] = b"colony/gossip/v1\0";

/// Why a datagram was dropped before reaching foca.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejection {
    #[error("datagram shorter than the framing")]
    TooShort,
    #[error("bad authentication tag")]
    BadTag,
    #[error("unknown wire version {0}")]
    UnknownVersion(u8),
}

/// Seals and opens gossip datagrams with the cluster secret.
#[derive(Clone)]
pub(crate) struct PacketAuth {
    /// HMAC already keyed and fed with [`CONTEXT`]; cloned per packet.
    keyed: HmacSha256,
}

impl std::fmt::Debug for PacketAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("PacketAuth(..)")
    }
}

impl PacketAuth {
    /// Keys the MAC with the cluster secret. The caller rejects empty secrets: HMAC would
    /// accept them, but then anyone could forge packets.
    ///
    /// HMAC takes keys of any length (long ones are hashed), so the error is unreachable in
    /// practice; it is surfaced instead of unwrapped all the same.
    pub(crate) fn new(secret: &[u8]) -> Result<Self, hmac::digest::InvalidLength> {
        let mut keyed = HmacSha256::new_from_slice(secret)?;
        keyed.update(CONTEXT);
        Ok(Self { keyed })
    }

    /// `version || payload || tag`.
    pub(crate) fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + FRAMING_OVERHEAD);
        out.push(WIRE_V1);
        out.extend_from_slice(payload);
        let mut mac = self.keyed.clone();
        mac.update(&out);
        let tag = mac.finalize().into_bytes();
        out.extend_from_slice(&tag[..TAG_LEN]);
        out
    }

    /// Verifies a datagram and returns the foca payload inside it.
    pub(crate) fn open<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], Rejection> {
        if datagram.len() < FRAMING_OVERHEAD {
            return Err(Rejection::TooShort);
        }
        let (body, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut mac = self.keyed.clone();
        mac.update(body);
        // Tag first, version second: an unauthenticated sender learns nothing either way.
        mac.verify_truncated_left(tag)
            .map_err(|_| Rejection::BadTag)?;
        match body.split_first() {
            Some((&WIRE_V1, payload)) => Ok(payload),
            Some((&other, _)) => Err(Rejection::UnknownVersion(other)),
            None => Err(Rejection::TooShort),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let auth = PacketAuth::new(b"secret").unwrap();
        let sealed = auth.seal(b"hello");
        assert_eq!(sealed.len(), 5 + FRAMING_OVERHEAD);
        assert_eq!(auth.open(&sealed), Ok(&b"hello"[..]));
        // Empty payloads are framed fine too.
        assert_eq!(auth.open(&auth.seal(b"")), Ok(&b""[..]));
    }

    #[test]
    fn wrong_secret_and_tampering_are_rejected() {
        let auth = PacketAuth::new(b"secret").unwrap();
        let other = PacketAuth::new(b"other secret").unwrap();
        let sealed = auth.seal(b"hello");
        assert_eq!(other.open(&sealed), Err(Rejection::BadTag));

        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(auth.open(&bad), Err(Rejection::BadTag), "flip at {i}");
        }
        assert_eq!(auth.open(&sealed[..3]), Err(Rejection::TooShort));
        assert_eq!(auth.open(&sealed[1..]), Err(Rejection::BadTag));
    }
}
