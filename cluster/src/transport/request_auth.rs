//! Internal requests without TLS (loopback dev clusters): each carries an HMAC-SHA256
//! over its method, path, addressee, body digest, timestamp and a random nonce, under a
//! key derived from the cluster secret. The receiver accepts it only within
//! [`WINDOW`] of its own clock and only once (a replay cache of the nonces seen within
//! the window), so a captured request cannot be sent again, to this node or another.
//!
//! Header value: `v1.<unix ms>.<nonce, 32 hex>.<mac, 64 hex>`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

type HmacSha256 = Hmac<Sha256>;

/// How far a request's timestamp may be from the receiver's clock.
pub const WINDOW_MS: u64 = 30_000;

/// Most nonces remembered: requests within one window past this are refused (a node
/// takes far fewer internal requests; the cap bounds the cache's memory to ~50 MB).
pub const MAX_REMEMBERED: usize = 1_000_000;

/// Why a request's authentication was refused (said to the caller, who is a node or an
/// attacker: nothing secret in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No header, or not of the `v1.ts.nonce.mac` form.
    #[error("missing or malformed request authentication")]
    Malformed,
    /// The MAC does not match (wrong secret, or the request was altered).
    #[error("bad request authentication")]
    BadMac,
    /// The timestamp is outside the window.
    #[error("request authentication outside the time window")]
    Stale,
    /// The nonce was seen within the window: a replay.
    #[error("replayed request")]
    Replayed,
    /// Too many requests within one window to remember them all.
    #[error("too many internal requests to check for replays")]
    Busy,
}

/// Signs and checks internal requests with the key of one cluster secret.
pub struct RequestAuth {
    key: HmacSha256,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for RequestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestAuth").finish_non_exhaustive()
    }
}

/// Nonces seen within the window, oldest first.
#[derive(Default)]
struct Seen {
    set: HashSet<[u8; 16]>,
    order: VecDeque<(u64, [u8; 16])>,
}

impl RequestAuth {
    /// The request key of cluster secret `secret` (derived: the secret itself is not the
    /// key, so this key says nothing about the gossip or credential keys).
    pub fn new(secret: &str) -> Self {
        let derived = Sha256::digest(format!("colony internal request auth v1:{secret}"));
        // HMAC takes a key of any length: this cannot fail.
        let key = match HmacSha256::new_from_slice(&derived) {
            Ok(k) => k,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        Self {
            key,
            seen: Mutex::new(Seen::default()),
        }
    }

    fn mac(&self, path: &str, to: &str, ts: u64, nonce: &[u8; 16], body: &[u8]) -> HmacSha256 {
        let mut m = self.key.clone();
        m.update(b"POST\n");
        m.update(path.as_bytes());
        m.update(b"\n");
        m.update(to.as_bytes());
        m.update(b"\n");
        m.update(ts.to_string().as_bytes());
        m.update(b"\n");
        m.update(nonce);
        m.update(b"\n");
        m.update(&Sha256::digest(body));
        m
    }

    /// The header value for a POST of `body` to `path` on node `to`, at `now_ms`.
    pub fn sign(&self, path: &str, to: &str, body: &[u8], now_ms: u64, nonce: [u8; 16]) -> String {
        let tag = self
            .mac(path, to, now_ms, &nonce, body)
            .finalize()
            .into_bytes();
        format!("v1.{now_ms}.{}.{}", hex::encode(nonce), hex::encode(tag))
    }

    /// Checks `header` for a POST of `body` to `path` on this node (`to`) at `now_ms`;
    /// remembers its nonce so it is accepted once.
    pub fn verify(
        &self,
        header: &str,
        path: &str,
        to: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<(), Refused> {
        let mut parts = header.split('.');
        let (Some("v1"), Some(ts), Some(nonce), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Refused::Malformed);
        };
        let ts: u64 = ts.parse().map_err(|_| Refused::Malformed)?;
        let nonce: [u8; 16] = hex::decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(Refused::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| Refused::Malformed)?;
        // The window before the MAC (it touches no state, and spares hashing the body of
        // an old request); the MAC before the cache, so nothing unauthenticated enters it.
        if ts.abs_diff(now_ms) > WINDOW_MS {
            return Err(Refused::Stale);
        }
        self.mac(path, to, ts, &nonce, body)
            .verify_slice(&tag)
            .map_err(|_| Refused::BadMac)?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Forget what fell out of the window (its timestamp would be refused as stale).
        while let Some((t, n)) = seen.order.front().copied() {
            if t + 2 * WINDOW_MS >= now_ms {
                break;
            }
            seen.order.pop_front();
            seen.set.remove(&n);
        }
        if seen.set.contains(&nonce) {
            return Err(Refused::Replayed);
        }
        if seen.set.len() >= MAX_REMEMBERED {
            return Err(Refused::Busy);
        }
        seen.set.insert(nonce);
        seen.order.push_back((now_ms, nonce));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn a_signed_request_is_accepted_once() {
        let a = RequestAuth::new("secret");
        let h = a.sign("/raft/v1/vote", "7", b"body", NOW, [1; 16]);
        assert_eq!(a.verify(&h, "/raft/v1/vote", "7", b"body", NOW + 5), Ok(()));
        assert_eq!(
            a.verify(&h, "/raft/v1/vote", "7", b"body", NOW + 10),
            Err(Refused::Replayed)
        );
    }

    #[test]
    fn anything_changed_or_signed_with_another_secret_is_refused() {
        let a = RequestAuth::new("secret");
        let h = a.sign("/internal/v1/write", "7", b"body", NOW, [2; 16]);
        let check = |path: &str, to: &str, body: &[u8]| a.verify(&h, path, to, body, NOW);
        assert_eq!(check("/raft/v1/vote", "7", b"body"), Err(Refused::BadMac));
        assert_eq!(
            check("/internal/v1/write", "8", b"body"),
            Err(Refused::BadMac)
        );
        assert_eq!(
            check("/internal/v1/write", "7", b"bodY"),
            Err(Refused::BadMac)
        );
        let other = RequestAuth::new("another secret");
        let forged = other.sign("/internal/v1/write", "7", b"body", NOW, [3; 16]);
        assert_eq!(
            a.verify(&forged, "/internal/v1/write", "7", b"body", NOW),
            Err(Refused::BadMac)
        );
        for bad in [
            "",
            "v1",
            "v2.1.00.00",
            "v1.x.00.00",
            "v1.1.zz.00",
            "v1.1.00.00.00",
        ] {
            assert_eq!(
                a.verify(bad, "/internal/v1/write", "7", b"body", NOW),
                Err(Refused::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn outside_the_window_is_stale_and_old_nonces_are_forgotten() {
        let a = RequestAuth::new("secret");
        let old = a.sign("/p", "1", b"", NOW - WINDOW_MS - 1, [4; 16]);
        assert_eq!(a.verify(&old, "/p", "1", b"", NOW), Err(Refused::Stale));
        let future = a.sign("/p", "1", b"", NOW + WINDOW_MS + 1, [5; 16]);
        assert_eq!(a.verify(&future, "/p", "1", b"", NOW), Err(Refused::Stale));
        for i in 0..100u8 {
            let h = a.sign("/p", "1", b"", NOW, [i; 16]);
            assert_eq!(a.verify(&h, "/p", "1", b"", NOW), Ok(()));
        }
        // Three windows later, the cache has let them go (they would be stale anyway).
        let later = NOW + 3 * WINDOW_MS;
        let h = a.sign("/p", "1", b"", later, [200; 16]);
        assert_eq!(a.verify(&h, "/p", "1", b"", later), Ok(()));
        let seen = a.seen.lock().expect("lock");
        assert_eq!(seen.set.len(), 1);
    }
}
