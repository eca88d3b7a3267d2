//! Concurrency leases: how many requests of a tenant are in flight, counted on the
//! tenant's owner node.
//!
//! A lease is `{lease_id -> expires_at_ms}` under a key (one key per tenant). Acquiring
//! first forgets the key's expired leases, then grants when fewer than `limit` remain.
//! Releasing removes the lease. The TTL is what makes a lost release harmless: an ingress
//! node that crashes (or cannot reach the owner) while holding leases leaks them for at
//! most one TTL.
//!
//! The table sits behind a mutex rather than in an actor: every operation is a few hash
//! map steps, and acquire and release arrive from HTTP handlers and from the Router alike.

use colony_core::clock::now_ms;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Operations between two full sweeps of every key (a key is always swept on acquire; the
/// full sweep forgets keys of tenants that stopped calling with leases never released).
const FULL_SWEEP_EVERY: u64 = 1024;

/// What to do with a concurrency lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseOp {
    /// Take a slot when fewer than `limit` are held; it expires after `ttl_ms`.
    Acquire {
        /// Most live leases of the key.
        limit: u32,
        /// Lifetime of the lease if never released.
        ttl_ms: u64,
    },
    /// Give the slot back.
    Release,
}

/// What an acquire answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseOutcome {
    /// Granted; `in_flight` counts this lease too.
    Granted {
        /// Live leases of the key, this one included.
        in_flight: u32,
    },
    /// Refused: `limit` leases are live.
    Full {
        /// Live leases of the key.
        in_flight: u32,
        /// Milliseconds until the oldest live lease expires (the longest a caller may have
        /// to wait if nobody releases).
        expires_in_ms: u64,
    },
    /// Released (or was not held: already expired or released).
    Released,
}

/// The lease table of one node.
#[derive(Debug, Default)]
pub struct LeaseTable {
    keys: HashMap<String, HashMap<String, u64>>,
    ops: u64,
}

impl LeaseTable {
    /// Acquires lease `lease_id` under `key` when fewer than `limit` unexpired leases are
    /// held; it expires at `now_ms + ttl_ms`. Acquiring an id already held renews it.
    pub fn acquire(
        &mut self,
        key: &str,
        lease_id: &str,
        limit: u32,
        ttl_ms: u64,
        now_ms: u64,
    ) -> LeaseOutcome {
        self.tick(now_ms);
        let leases = self.keys.entry(key.to_string()).or_default();
        leases.retain(|_, exp| *exp > now_ms);
        let expires = now_ms.saturating_add(ttl_ms);
        let renew = leases.contains_key(lease_id);
        if renew || (leases.len() as u64) < u64::from(limit) {
            leases.insert(lease_id.to_string(), expires);
            return LeaseOutcome::Granted {
                in_flight: leases.len() as u32,
            };
        }
        let oldest = leases.values().min().copied().unwrap_or(now_ms);
        LeaseOutcome::Full {
            in_flight: leases.len() as u32,
            expires_in_ms: oldest.saturating_sub(now_ms),
        }
    }

    /// Releases `lease_id` under `key` (a no-op when it is not held).
    pub fn release(&mut self, key: &str, lease_id: &str, now_ms: u64) -> LeaseOutcome {
        self.tick(now_ms);
        if let Some(leases) = self.keys.get_mut(key) {
            leases.remove(lease_id);
            if leases.is_empty() {
                self.keys.remove(key);
            }
        }
        LeaseOutcome::Released
    }

    /// Live leases under `key` at `now_ms`.
    pub fn in_flight(&self, key: &str, now_ms: u64) -> usize {
        self.keys
            .get(key)
            .map_or(0, |l| l.values().filter(|exp| **exp > now_ms).count())
    }

    /// Keys with at least one lease entry (expired or not).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Forgets every expired lease and every key left empty.
    pub fn sweep(&mut self, now_ms: u64) {
        self.keys.retain(|_, leases| {
            leases.retain(|_, exp| *exp > now_ms);
            !leases.is_empty()
        });
    }

    /// Removes and returns the live leases of every key `moves` says to (the key's new
    /// owner after a membership change), as `(key, lease id, ms left)`; relative times,
    /// because the receiving node's clock is not this one's.
    pub fn take_where(
        &mut self,
        now_ms: u64,
        mut moves: impl FnMut(&str) -> bool,
    ) -> Vec<(String, String, u64)> {
        let keys: Vec<String> = self.keys.keys().filter(|k| moves(k)).cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            if let Some(leases) = self.keys.remove(&key) {
                for (id, exp) in leases {
                    if exp > now_ms {
                        out.push((key.clone(), id, exp - now_ms));
                    }
                }
            }
        }
        out
    }

    /// Takes over leases handed over by their old owner (`(key, lease id, ms left)`); a
    /// lease already held keeps the later expiry.
    pub fn merge(&mut self, now_ms: u64, leases: Vec<(String, String, u64)>) {
        for (key, id, left) in leases {
            let exp = now_ms.saturating_add(left);
            let e = self.keys.entry(key).or_default().entry(id).or_insert(exp);
            *e = (*e).max(exp);
        }
    }

    fn tick(&mut self, now_ms: u64) {
        self.ops += 1;
        if self.ops.is_multiple_of(FULL_SWEEP_EVERY) {
            self.sweep(now_ms);
        }
    }
}

/// Shared handle to a node's [`LeaseTable`]. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Leases(Arc<Mutex<LeaseTable>>);

impl Leases {
    /// Runs `f` on the table. A poisoned lock is taken over: the table holds plain maps
    /// that no panic can leave half-updated in a way that matters (at worst a lease
    /// lingers until its TTL).
    pub fn with<R>(&self, f: impl FnOnce(&mut LeaseTable) -> R) -> R {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut t)
    }
}

impl Leases {
    /// Applies a lease operation to this node's table, at this node's clock.
    pub fn apply(&self, key: &str, lease_id: &str, op: LeaseOp) -> LeaseOutcome {
        let now = now_ms();
        self.with(|t| match op {
            LeaseOp::Acquire { limit, ttl_ms } => t.acquire(key, lease_id, limit, ttl_ms, now),
            LeaseOp::Release => t.release(key, lease_id, now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_up_to_the_limit_and_release_frees_a_slot() {
        let mut t = LeaseTable::default();
        assert_eq!(
            t.acquire("k", "a", 2, 1000, 0),
            LeaseOutcome::Granted { in_flight: 1 }
        );
        assert_eq!(
            t.acquire("k", "b", 2, 1000, 10),
            LeaseOutcome::Granted { in_flight: 2 }
        );
        assert_eq!(
            t.acquire("k", "c", 2, 1000, 20),
            LeaseOutcome::Full {
                in_flight: 2,
                expires_in_ms: 980
            }
        );
        // Other keys are independent.
        assert_eq!(
            t.acquire("other", "c", 2, 1000, 20),
            LeaseOutcome::Granted { in_flight: 1 }
        );
        assert_eq!(t.release("k", "a", 30), LeaseOutcome::Released);
        assert_eq!(
            t.acquire("k", "c", 2, 1000, 40),
            LeaseOutcome::Granted { in_flight: 2 }
        );
        // Releasing twice, or an unknown lease, changes nothing.
        t.release("k", "a", 50);
        t.release("nope", "x", 50);
        assert_eq!(t.in_flight("k", 50), 2);
    }

    #[test]
    fn expired_leases_free_their_slot_and_are_forgotten() {
        let mut t = LeaseTable::default();
        t.acquire("k", "a", 1, 100, 0);
        assert!(matches!(
            t.acquire("k", "b", 1, 100, 99),
            LeaseOutcome::Full { .. }
        ));
        // At expiry time the lease is gone: a crashed holder leaks it for one TTL at most.
        assert_eq!(
            t.acquire("k", "b", 1, 100, 100),
            LeaseOutcome::Granted { in_flight: 1 }
        );
        t.acquire("gone", "x", 1, 10, 100);
        assert_eq!(t.keys(), 2);
        t.sweep(1000);
        assert_eq!(t.keys(), 0);
        assert_eq!(t.in_flight("k", 1000), 0);
    }

    #[test]
    fn leases_move_with_their_key_and_keep_their_remaining_time() {
        let mut old = LeaseTable::default();
        old.acquire("moving", "a", 2, 1000, 0);
        old.acquire("staying", "b", 2, 1000, 0);
        old.acquire("moving", "dead", 2, 10, 0);
        let moved = old.take_where(100, |k| k == "moving");
        assert_eq!(moved, vec![("moving".to_string(), "a".to_string(), 900)]);
        assert_eq!(
            (old.in_flight("moving", 100), old.in_flight("staying", 100)),
            (0, 1)
        );
        // The new owner's clock may read anything: the lease keeps its 900 ms.
        let mut new = LeaseTable::default();
        new.merge(50_000, moved);
        assert_eq!(new.in_flight("moving", 50_899), 1);
        assert_eq!(new.in_flight("moving", 50_900), 0);
        assert!(matches!(
            new.acquire("moving", "x", 1, 10, 50_100),
            LeaseOutcome::Full { .. }
        ));
    }

    #[test]
    fn acquiring_a_held_id_renews_it_without_taking_a_slot() {
        let mut t = LeaseTable::default();
        t.acquire("k", "a", 1, 100, 0);
        assert_eq!(
            t.acquire("k", "a", 1, 100, 50),
            LeaseOutcome::Granted { in_flight: 1 }
        );
        assert_eq!(t.in_flight("k", 120), 1, "renewed to 150");
    }
}
