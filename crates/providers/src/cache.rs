//! The provider response cache: one `sled::Tree` the caller owns (on the tenant's owner
//! node, DESIGN.md's state table), entries per tenant and never shared across tenants.
//!
//! - Key: the tenant id (length-prefixed, so tenant `a` can never see `ab`'s entries
//!   and a tenant's entries are one prefix) followed by [`CacheKey`], a SHA-256 of the
//!   provider kind, normalized base URL, model, params and messages as canonical JSON
//!   (object keys sorted, no whitespace), so equal requests hash alike whatever the
//!   order their params were written in.
//! - Value: JSON `{expires_at_ms, completion}`. An expired or undecodable entry is a miss
//!   and is removed when read; [`ResponseCache::purge_expired_at`] sweeps the rest.
//! - sled calls can block briefly (page-ins, log writes): the plain methods are
//!   blocking and take the time (`now_ms`, Unix milliseconds) so tests can inject it;
//!   async callers use [`ResponseCache::get`] and [`ResponseCache::put`], which run on
//!   `spawn_blocking`.

use crate::config::ProviderConfig;
use crate::message::{ChatMessage, Completion};
use colony_core::clock::now_ms;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::time::Duration;

/// Why the cache could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The sled tree failed.
    #[error("cache storage: {0}")]
    Storage(#[from] sled::Error),
    /// The entry could not be encoded.
    #[error("cache encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The blocking task running the sled call panicked or was cancelled.
    #[error("cache task: {0}")]
    Task(String),
}

/// Hash identifying one request (provider, model, params, messages) within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of `messages` sent to the provider `config` describes.
    pub fn new(config: &ProviderConfig, messages: &[ChatMessage]) -> Self {
        let mut doc = serde_json::Map::new();
        doc.insert("kind".into(), config.kind.as_str().into());
        doc.insert("base_url".into(), config.normalized_base_url().into());
        doc.insert("model".into(), config.model.clone().into());
        doc.insert("params".into(), config.params.clone().into());
        let msgs = messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect();
        doc.insert("messages".into(), serde_json::Value::Array(msgs));
        let mut text = String::from("colony-providers/cache/v1\n");
        canonical_json(&serde_json::Value::Object(doc), &mut text);
        Self(Sha256::digest(text.as_bytes()).into())
    }

    /// Hex form, for logs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Writes `v` as JSON with object keys sorted and no whitespace. Not relying on
/// `serde_json::Map` ordering: another crate in the build may turn on `preserve_order`.
pub fn canonical_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(child) = map.get(k) {
                    canonical_json(child, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        // Scalars print canonically already.
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    expires_at_ms: u64,
    completion: Completion,
}

/// Per-tenant cache of provider answers with a TTL, stored in a caller-owned sled tree.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    tree: sled::Tree,
    ttl: Duration,
}

fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + tenant.len() + 32);
    // Tenant ids are short; a u32 length cannot truncate one that fits in memory here.
    k.extend_from_slice(&(tenant.len() as u32).to_be_bytes());
    k.extend_from_slice(tenant.as_bytes());
    k
}

fn storage_key(tenant: &str, key: &CacheKey) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.extend_from_slice(&key.0);
    k
}

impl ResponseCache {
    /// A cache in `tree` keeping answers for `ttl`.
    pub fn new(tree: sled::Tree, ttl: Duration) -> Self {
        Self { tree, ttl }
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// `tenant`'s cached answer for `key` at `now_ms`, if fresh (blocking). Expired or
    /// undecodable entries are removed. The answer has `cached: true`, `attempts: 0` and
    /// `latency_ms: 0`, and keeps the original usage so tokens saved can be reported.
    pub fn get_at(
        &self,
        tenant: &str,
        key: &CacheKey,
        now_ms: u64,
    ) -> Result<Option<Completion>, CacheError> {
        let k = storage_key(tenant, key);
        let Some(raw) = self.tree.get(&k)? else {
            return Ok(None);
        };
        match serde_json::from_slice::<Entry>(&raw) {
            Ok(entry) if entry.expires_at_ms > now_ms => {
                let mut c = entry.completion;
                c.cached = true;
                c.attempts = 0;
                c.latency_ms = 0;
                Ok(Some(c))
            }
            _ => {
                // Only remove what we read: a fresh entry written meanwhile stays.
                let _ = self.tree.compare_and_swap(&k, Some(raw), None::<&[u8]>)?;
                Ok(None)
            }
        }
    }

    /// Stores `tenant`'s answer for `key` as of `now_ms` (blocking).
    pub fn put_at(
        &self,
        tenant: &str,
        key: &CacheKey,
        completion: &Completion,
        now_ms: u64,
    ) -> Result<(), CacheError> {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let entry = Entry {
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            completion: completion.clone(),
        };
        self.tree
            .insert(storage_key(tenant, key), serde_json::to_vec(&entry)?)?;
        Ok(())
    }

    /// Removes every entry expired at `now_ms`; returns how many (blocking).
    pub fn purge_expired_at(&self, now_ms: u64) -> Result<usize, CacheError> {
        let mut removed = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            let expired =
                serde_json::from_slice::<Entry>(&v).map_or(true, |e| e.expires_at_ms <= now_ms);
            if expired
                && self
                    .tree
                    .compare_and_swap(&k, Some(v), None::<&[u8]>)?
                    .is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes all of `tenant`'s entries (e.g. when the tenant is deleted); returns how
    /// many (blocking).
    pub fn clear_tenant(&self, tenant: &str) -> Result<usize, CacheError> {
        let mut removed = 0;
        for item in self.tree.scan_prefix(tenant_prefix(tenant)) {
            let (k, _) = item?;
            self.tree.remove(k)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// [`Self::get_at`] now, on a blocking thread.
    pub async fn get(&self, tenant: &str, key: CacheKey) -> Result<Option<Completion>, CacheError> {
        let cache = self.clone();
        let tenant = tenant.to_string();
        tokio::task::spawn_blocking(move || cache.get_at(&tenant, &key, now_ms()))
            .await
            .map_err(|e| CacheError::Task(e.to_string()))?
    }

    /// [`Self::put_at`] now, on a blocking thread.
    pub async fn put(
        &self,
        tenant: &str,
        key: CacheKey,
        completion: Completion,
    ) -> Result<(), CacheError> {
        let cache = self.clone();
        let tenant = tenant.to_string();
        tokio::task::spawn_blocking(move || cache.put_at(&tenant, &key, &completion, now_ms()))
            .await
            .map_err(|e| CacheError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::message::Usage;
    use serde_json::json;

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("provider-cache").unwrap()
    }

    fn completion(text: &str) -> Completion {
        Completion {
            text: text.into(),
            usage: Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 1,
            }),
            finish_reason: Some("stop".into()),
            latency_ms: 12,
            attempts: 2,
            cached: false,
        }
    }

    fn config() -> ProviderConfig {
        ProviderConfig::openai("http://127.0.0.1:9/v1", "m")
            .with_param("temperature", json!(0.0))
            .with_param("stop", json!(["\n", "END"]))
    }

    #[test]
    fn key_is_stable_and_ignores_param_order_and_trailing_slash() {
        let msgs = [ChatMessage::user("hi")];
        let a = CacheKey::new(&config(), &msgs);
        let mut reordered = ProviderConfig::openai("http://127.0.0.1:9/v1/", "m");
        reordered.params.insert("stop".into(), json!(["\n", "END"]));
        reordered.params.insert("temperature".into(), json!(0.0));
        assert_eq!(a, CacheKey::new(&reordered, &msgs));
        // Pinned so a change to the key format is a deliberate one (it drops every entry).
        assert_eq!(a.to_hex(), CacheKey::new(&config(), &msgs).to_hex());
        assert_eq!(a.to_hex().len(), 64);
    }

    #[test]
    fn key_changes_with_every_input() {
        let msgs = [ChatMessage::user("hi")];
        let base = CacheKey::new(&config(), &msgs);
        let variants = [
            CacheKey::new(&config(), &[ChatMessage::user("hi!")]),
            CacheKey::new(&config(), &[ChatMessage::system("hi")]),
            CacheKey::new(&config(), &[ChatMessage::user("hi"), ChatMessage::user("")]),
            CacheKey::new(&config().with_param("temperature", json!(0.5)), &msgs),
            CacheKey::new(&config().with_param("seed", json!(1)), &msgs),
            CacheKey::new(
                &ProviderConfig {
                    model: "n".into(),
                    ..config()
                },
                &msgs,
            ),
            CacheKey::new(
                &ProviderConfig {
                    base_url: "http://127.0.0.1:10/v1".into(),
                    ..config()
                },
                &msgs,
            ),
            CacheKey::new(
                &ProviderConfig {
                    kind: crate::Kind::Builtin,
                    ..config()
                },
                &msgs,
            ),
        ];
        for v in variants {
            assert_ne!(base, v);
        }
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let mut out = String::new();
        canonical_json(&json!({"b": [{"z": 1, "a": null}], "a": "x\"y"}), &mut out);
        assert_eq!(out, r#"{"a":"x\"y","b":[{"a":null,"z":1}]}"#);
    }

    #[test]
    fn tenants_never_share_entries() {
        let cache = ResponseCache::new(tree(), Duration::from_secs(60));
        let key = CacheKey::new(&config(), &[ChatMessage::user("hi")]);
        cache
            .put_at("acme", &key, &completion("for acme"), 1_000)
            .unwrap();
        assert_eq!(cache.get_at("globex", &key, 1_000).unwrap(), None);
        // A tenant id that is a prefix of another's is still a different tenant.
        assert_eq!(cache.get_at("acm", &key, 1_000).unwrap(), None);
        assert_eq!(cache.get_at("acmee", &key, 1_000).unwrap(), None);
        cache
            .put_at("globex", &key, &completion("for globex"), 1_000)
            .unwrap();
        let got = cache.get_at("acme", &key, 1_001).unwrap().unwrap();
        assert_eq!(got.text, "for acme");
        assert!(got.cached);
        assert_eq!((got.attempts, got.latency_ms), (0, 0));
        assert_eq!(got.usage, completion("x").usage);
        assert_eq!(
            cache.get_at("globex", &key, 1_001).unwrap().unwrap().text,
            "for globex"
        );
        assert_eq!(cache.clear_tenant("acme").unwrap(), 1);
        assert_eq!(cache.get_at("acme", &key, 1_001).unwrap(), None);
        assert!(cache.get_at("globex", &key, 1_001).unwrap().is_some());
    }

    #[test]
    fn expired_entries_are_misses_and_are_removed() {
        let t = tree();
        let cache = ResponseCache::new(t.clone(), Duration::from_millis(500));
        let k1 = CacheKey::new(&config(), &[ChatMessage::user("one")]);
        let k2 = CacheKey::new(&config(), &[ChatMessage::user("two")]);
        cache.put_at("acme", &k1, &completion("1"), 10_000).unwrap();
        cache.put_at("acme", &k2, &completion("2"), 10_000).unwrap();
        assert!(cache.get_at("acme", &k1, 10_499).unwrap().is_some());
        assert_eq!(cache.get_at("acme", &k1, 10_500).unwrap(), None);
        assert_eq!(t.len(), 1, "the expired entry read was removed");
        assert_eq!(cache.purge_expired_at(10_499).unwrap(), 0);
        assert_eq!(cache.purge_expired_at(10_500).unwrap(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn garbage_values_are_misses() {
        let t = tree();
        let cache = ResponseCache::new(t.clone(), Duration::from_secs(1));
        let key = CacheKey::new(&config(), &[]);
        t.insert(storage_key("acme", &key), b"not json".to_vec())
            .unwrap();
        assert_eq!(cache.get_at("acme", &key, 0).unwrap(), None);
        assert!(t.is_empty());
    }

    #[tokio::test]
    async fn async_wrappers_round_trip() {
        let cache = ResponseCache::new(tree(), Duration::from_secs(60));
        let key = CacheKey::new(&config(), &[ChatMessage::user("hi")]);
        cache.put("acme", key, completion("x")).await.unwrap();
        assert_eq!(cache.get("acme", key).await.unwrap().unwrap().text, "x");
        assert_eq!(cache.get("other", key).await.unwrap(), None);
    }
}
