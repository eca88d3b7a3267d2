//! Framing of gossip packets: encrypted and authenticated, with replay protection.
//!
//! Wire layout of every UDP datagram (version 2):
//!
//! ```text
//! [ 2 ][ key id: u8 ][ nonce: 12 ][ ChaCha20-Poly1305( sender: u64 | seq: u64 | unix ms: u64 | foca payload ) ][ tag: 16 ]
//! associated data = the version and key id bytes
//! key = HKDF-SHA256(cluster secret, salt "colony/gossip/v2", info "gossip key")
//! ```
//!
//! A packet is opened (and so authenticated) before anything in it is looked at. Then it is
//! dropped if its timestamp is more than [`WINDOW_MS`] from the receiver's clock, or if its
//! sender's sequence number was seen already or is more than 64 behind that sender's
//! highest (a replay), each counted. The sender is a random id per process start and its
//! sequence counts from 0, so nothing about the node shows on the wire.
//!
//! Version 1 (HMAC-SHA256 tag, payload in clear, no replay protection) is what nodes
//! before this one speak: [`Legacy`] lets a cluster move from it with rolling restarts.

use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::hkdf;
use sha2::Sha256;
use std::collections::HashMap;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC framing of nodes before encryption.
const WIRE_V1: u8 = 1;
/// The encrypted framing.
const WIRE_V2: u8 = 2;

/// v1 tag length.
const V1_TAG_LEN: usize = 16;
/// AEAD nonce length.
const NONCE_LEN: usize = 12;
/// AEAD tag length.
const TAG_LEN: usize = 16;
/// Sender, sequence and timestamp, inside the ciphertext.
const INNER_HEADER: usize = 24;

/// Bytes the framing adds around a foca payload (the larger of the two versions).
pub(crate) const FRAMING_OVERHEAD: usize = 2 + NONCE_LEN + INNER_HEADER + TAG_LEN;

/// How far a packet's timestamp may be from the receiver's clock.
pub const WINDOW_MS: u64 = 30_000;

/// Senders whose sequence windows are kept (authenticated ones only: without the key a
/// packet never gets this far). Past it the one heard from least recently is forgotten.
const MAX_SENDERS: usize = 4096;

/// The id of the key derived from the cluster secret.
const DERIVED_KEY_ID: u8 = 0;

/// Domain separation of v1 tags.
const V1_CONTEXT: &[u8] = b"colony/gossip/v1\0";

/// What to do with version 1 (pre-encryption) packets, for moving a running cluster to
/// encrypted gossip: `send` on every node (restart each; old and new nodes still talk),
/// then `accept` (new nodes send version 2, still read version 1), then `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Legacy {
    /// Only version 2, both ways (the default).
    #[default]
    Off,
    /// Send version 2, also accept version 1.
    Accept,
    /// Send version 1 (for clusters with older nodes), accept both.
    Send,
}

/// Why a datagram was dropped before reaching foca.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejection {
    #[error("datagram shorter than the framing")]
    TooShort,
    #[error("bad authentication tag")]
    BadTag,
    #[error("unknown wire version {0}")]
    UnknownVersion(u8),
    #[error("version 1 (unencrypted) packet refused (gossip.legacy = off)")]
    Legacy,
    #[error("timestamp outside the window")]
    Stale,
    #[error("replayed packet")]
    Replayed,
}

impl Rejection {
    /// Whether the packet was authentic but old or repeated (counted apart).
    pub(crate) fn is_replay(self) -> bool {
        matches!(self, Self::Stale | Self::Replayed)
    }
}

/// One sender's recent sequence numbers: the highest seen and which of the 64 below it.
#[derive(Debug, Clone, Copy)]
struct SeqWindow {
    highest: u64,
    below: u64,
    last_ms: u64,
}

impl SeqWindow {
    /// Accepts `seq` once; `false` for a repeat or one too far behind.
    fn accept(&mut self, seq: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.below = if shift >= 64 { 0 } else { self.below << shift };
            // The old highest is now `shift` behind.
            if shift <= 64 {
                self.below |= 1u64 << (shift - 1);
            }
            self.highest = seq;
            return true;
        }
        let behind = self.highest - seq;
        if behind == 0 || behind > 64 {
            return false;
        }
        let bit = 1u64 << (behind - 1);
        if self.below & bit != 0 {
            return false;
        }
        self.below |= bit;
        true
    }
}

/// Seals and opens gossip datagrams with the cluster secret's key.
pub(crate) struct PacketAuth {
    key: LessSafeKey,
    /// v1 MAC already fed with its context.
    v1: HmacSha256,
    legacy: Legacy,
    sender: u64,
    next_seq: u64,
    seen: HashMap<u64, SeqWindow>,
}

impl std::fmt::Debug for PacketAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("PacketAuth(..)")
    }
}

/// The key was not usable (never for a non-empty secret).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyError;

impl PacketAuth {
    /// Derives the gossip key from the cluster secret. The caller rejects empty secrets.
    pub(crate) fn new(secret: &[u8], legacy: Legacy) -> Result<Self, KeyError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"colony/gossip/v2").extract(secret);
        let okm = prk
            .expand(&[b"gossip key"], &CHACHA20_POLY1305)
            .map_err(|_| KeyError)?;
        let key = LessSafeKey::new(UnboundKey::from(okm));
        let mut v1 = HmacSha256::new_from_slice(secret).map_err(|_| KeyError)?;
        v1.update(V1_CONTEXT);
        Ok(Self {
            key,
            v1,
            legacy,
            sender: rand::random(),
            next_seq: 0,
            seen: HashMap::new(),
        })
    }

    /// The datagram carrying `payload`, sent at `now_ms`.
    pub(crate) fn seal(&mut self, payload: &[u8], now_ms: u64) -> Vec<u8> {
        if self.legacy == Legacy::Send {
            return self.seal_v1(payload);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(payload.len() + FRAMING_OVERHEAD);
        out.extend_from_slice(&[WIRE_V2, DERIVED_KEY_ID]);
        out.extend_from_slice(&nonce);
        let mut inner = Vec::with_capacity(INNER_HEADER + payload.len() + TAG_LEN);
        inner.extend_from_slice(&self.sender.to_be_bytes());
        inner.extend_from_slice(&seq.to_be_bytes());
        inner.extend_from_slice(&now_ms.to_be_bytes());
        inner.extend_from_slice(payload);
        let aad = [WIRE_V2, DERIVED_KEY_ID];
        // Sealing fails only for inputs over ChaCha20's 256 GiB limit.
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut inner,
            )
            .is_err()
        {
            return Vec::new();
        }
        out.extend_from_slice(&inner);
        out
    }

    fn seal_v1(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 1 + V1_TAG_LEN);
        out.push(WIRE_V1);
        out.extend_from_slice(payload);
        let mut mac = self.v1.clone();
        mac.update(&out);
        let tag = mac.finalize().into_bytes();
        out.extend_from_slice(&tag[..V1_TAG_LEN]);
        out
    }

    /// Opens a datagram received at `now_ms` and returns the foca payload inside it.
    pub(crate) fn open(&mut self, datagram: &[u8], now_ms: u64) -> Result<Vec<u8>, Rejection> {
        match datagram.first() {
            None => Err(Rejection::TooShort),
            Some(&WIRE_V2) => self.open_v2(datagram, now_ms),
            Some(&WIRE_V1) => {
                let payload = self.open_v1(datagram)?;
                if self.legacy == Legacy::Off {
                    return Err(Rejection::Legacy);
                }
                Ok(payload)
            }
            // Tag first would be better, but an unknown version has no tag we could check.
            Some(&other) => Err(Rejection::UnknownVersion(other)),
        }
    }

    fn open_v2(&mut self, datagram: &[u8], now_ms: u64) -> Result<Vec<u8>, Rejection> {
        if datagram.len() < FRAMING_OVERHEAD {
            return Err(Rejection::TooShort);
        }
        let (head, sealed) = datagram.split_at(2 + NONCE_LEN);
        if head[1] != DERIVED_KEY_ID {
            return Err(Rejection::BadTag);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&head[2..]);
        let mut buf = sealed.to_vec();
        let aad = [head[0], head[1]];
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| Rejection::BadTag)?;
        if plain.len() < INNER_HEADER {
            return Err(Rejection::TooShort);
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&plain[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        let (sender, seq, ts) = (word(0), word(1), word(2));
        if ts.abs_diff(now_ms) > WINDOW_MS {
            return Err(Rejection::Stale);
        }
        if !self.remember(sender, seq, now_ms) {
            return Err(Rejection::Replayed);
        }
        Ok(plain[INNER_HEADER..].to_vec())
    }

    /// Records `seq` of `sender`; `false` for a replay.
    fn remember(&mut self, sender: u64, seq: u64, now_ms: u64) -> bool {
        if let Some(w) = self.seen.get_mut(&sender) {
            w.last_ms = now_ms;
            return w.accept(seq);
        }
        if self.seen.len() >= MAX_SENDERS {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, w)| w.last_ms)
                .map(|(s, _)| *s);
            if let Some(s) = oldest {
                self.seen.remove(&s);
            }
        }
        self.seen.insert(
            sender,
            SeqWindow {
                highest: seq,
                below: 0,
                last_ms: now_ms,
            },
        );
        true
    }

    fn open_v1(&self, datagram: &[u8]) -> Result<Vec<u8>, Rejection> {
        if datagram.len() < 1 + V1_TAG_LEN {
            return Err(Rejection::TooShort);
        }
        let (body, tag) = datagram.split_at(datagram.len() - V1_TAG_LEN);
        let mut mac = self.v1.clone();
        mac.update(body);
        mac.verify_truncated_left(tag)
            .map_err(|_| Rejection::BadTag)?;
        Ok(body[1..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn auth(legacy: Legacy) -> PacketAuth {
        PacketAuth::new(b"secret", legacy).expect("key")
    }

    #[test]
    fn roundtrip_and_the_payload_is_not_in_clear() {
        let (mut a, mut b) = (auth(Legacy::Off), auth(Legacy::Off));
        let sealed = a.seal(b"hello gossip", NOW);
        assert!(sealed.len() <= 12 + FRAMING_OVERHEAD);
        assert!(!sealed.windows(5).any(|w| w == b"hello"), "encrypted");
        assert_eq!(
            b.open(&sealed, NOW + 5).as_deref(),
            Ok(&b"hello gossip"[..])
        );
        assert_eq!(b.open(&a.seal(b"", NOW), NOW).as_deref(), Ok(&b""[..]));
    }

    #[test]
    fn a_replayed_or_stale_packet_is_dropped() {
        let (mut a, mut b) = (auth(Legacy::Off), auth(Legacy::Off));
        let first = a.seal(b"x", NOW);
        assert!(b.open(&first, NOW).is_ok());
        assert_eq!(b.open(&first, NOW + 1), Err(Rejection::Replayed));
        let old = a.seal(b"x", NOW - WINDOW_MS - 1);
        assert_eq!(b.open(&old, NOW), Err(Rejection::Stale));
        assert!(Rejection::Replayed.is_replay() && Rejection::Stale.is_replay());
    }

    #[test]
    fn out_of_order_packets_within_the_window_pass_once() {
        let (mut a, mut b) = (auth(Legacy::Off), auth(Legacy::Off));
        let packets: Vec<Vec<u8>> = (0..100).map(|_| a.seal(b"p", NOW)).collect();
        assert!(b.open(&packets[99], NOW).is_ok());
        assert!(
            b.open(&packets[50], NOW).is_ok(),
            "49 behind: still in the window"
        );
        assert_eq!(b.open(&packets[50], NOW), Err(Rejection::Replayed));
        assert_eq!(
            b.open(&packets[10], NOW),
            Err(Rejection::Replayed),
            "too far behind"
        );
        assert!(b.open(&packets[98], NOW).is_ok());
    }

    #[test]
    fn another_secret_tampering_and_truncation_are_rejected() {
        let mut a = auth(Legacy::Off);
        let mut other = PacketAuth::new(b"other secret", Legacy::Off).expect("key");
        let sealed = a.seal(b"hello", NOW);
        assert_eq!(other.open(&sealed, NOW), Err(Rejection::BadTag));
        for i in 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let mut fresh = auth(Legacy::Off);
            assert!(fresh.open(&bad, NOW).is_err(), "flip at {i}");
        }
        assert_eq!(a.open(&sealed[..10], NOW), Err(Rejection::TooShort));
        assert_eq!(a.open(&[], NOW), Err(Rejection::TooShort));
        assert_eq!(a.open(&[9, 0, 0], NOW), Err(Rejection::UnknownVersion(9)));
    }

    #[test]
    fn version_1_is_refused_by_default_and_spoken_for_moving_a_cluster() {
        let mut old = auth(Legacy::Send);
        let v1 = old.seal(b"hello", NOW);
        assert_eq!(v1[0], WIRE_V1);
        assert!(
            v1.windows(5).any(|w| w == b"hello"),
            "version 1 is in clear"
        );
        assert_eq!(auth(Legacy::Off).open(&v1, NOW), Err(Rejection::Legacy));
        assert_eq!(
            auth(Legacy::Accept).open(&v1, NOW).as_deref(),
            Ok(&b"hello"[..])
        );
        // Accept-mode nodes send version 2, which send-mode nodes read.
        let v2 = auth(Legacy::Accept).seal(b"hi", NOW);
        assert_eq!(old.open(&v2, NOW).as_deref(), Ok(&b"hi"[..]));
        let forged = PacketAuth::new(b"other", Legacy::Send)
            .expect("key")
            .seal(b"x", NOW);
        assert_eq!(
            auth(Legacy::Accept).open(&forged, NOW),
            Err(Rejection::BadTag)
        );
    }

    #[test]
    fn the_sender_table_is_bounded() {
        let mut b = auth(Legacy::Off);
        for _ in 0..(MAX_SENDERS + 10) {
            let mut a = auth(Legacy::Off);
            assert!(b.open(&a.seal(b"x", NOW), NOW).is_ok());
        }
        assert!(b.seen.len() <= MAX_SENDERS);
    }
}
