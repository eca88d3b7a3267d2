//! One breaker per tenant and provider identity, and the node's egress policy: every
//! evaluation of one tenant calling the same provider shares its breaker, so one
//! evaluation's failures protect the tenant's others, while another tenant's failures
//! (or a tenant deliberately failing calls to a shared provider) never open it.
//!
//! The map is bounded: at most [`MAX_BREAKERS`] breakers in all and
//! [`MAX_BREAKERS_PER_TENANT`] per tenant. When a new breaker would pass a bound, the
//! breakers in that scope (the tenant's, or all) that are closed and idle (no provider
//! holds them) are dropped: they carry nothing but the recent outcomes of a healthy
//! provider. If the scope is still full (every breaker open or in use), the provider
//! gets a breaker of its own that is not shared or listed in [`Registry::stats`], so
//! memory stays bounded whatever tenants submit.

use crate::breaker::{Breaker, BreakerConfig, BreakerState, BreakerStats};
use crate::config::{ProviderConfig, ProviderId};
use crate::egress::EgressPolicy;
use crate::error::ConfigError;
use crate::provider::Provider;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most breakers the registry keeps.
pub const MAX_BREAKERS: usize = 10_000;

/// Most breakers the registry keeps for one tenant.
pub const MAX_BREAKERS_PER_TENANT: usize = 1_000;

#[derive(Debug, Default)]
struct Breakers {
    by_tenant: HashMap<String, HashMap<ProviderId, Arc<Breaker>>>,
    total: usize,
}

/// Whether `b` may be dropped: closed, and held by nobody but the map.
fn evictable(b: &Arc<Breaker>) -> bool {
    Arc::strong_count(b) == 1 && b.state() == BreakerState::Closed
}

impl Breakers {
    /// Drops `tenant`'s evictable breakers.
    fn evict_tenant(&mut self, tenant: &str) {
        if let Some(map) = self.by_tenant.get_mut(tenant) {
            let before = map.len();
            map.retain(|_, b| !evictable(b));
            self.total -= before - map.len();
            if map.is_empty() {
                self.by_tenant.remove(tenant);
            }
        }
    }

    /// Drops every evictable breaker.
    fn evict_all(&mut self) {
        let mut total = 0;
        self.by_tenant.retain(|_, map| {
            map.retain(|_, b| !evictable(b));
            total += map.len();
            !map.is_empty()
        });
        self.total = total;
    }

    fn tenant_len(&self, tenant: &str) -> usize {
        self.by_tenant.get(tenant).map_or(0, HashMap::len)
    }
}

/// Breakers by tenant and provider identity, plus the egress policy providers obey.
#[derive(Debug)]
pub struct Registry {
    breaker_config: BreakerConfig,
    egress: Arc<EgressPolicy>,
    breakers: Mutex<Breakers>,
}

impl Registry {
    /// An empty registry whose breakers use `breaker_config` and whose providers may
    /// connect where `egress` allows. Fallible for API stability (each provider now
    /// builds its own HTTP client, so nothing here fails today).
    pub fn new(breaker_config: BreakerConfig, egress: EgressPolicy) -> Result<Self, ConfigError> {
        Ok(Self {
            breaker_config,
            egress: Arc::new(egress),
            breakers: Mutex::new(Breakers::default()),
        })
    }

    /// The egress policy providers are built with.
    pub fn egress(&self) -> &EgressPolicy {
        &self.egress
    }

    /// `tenant`'s breaker for `id`, created closed on first use (see the module docs for
    /// what happens when the registry is full).
    pub fn breaker(&self, tenant: &str, id: &ProviderId) -> Arc<Breaker> {
        // A poisoned map is still a valid map.
        let mut all = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = all.by_tenant.get(tenant).and_then(|m| m.get(id)) {
            return b.clone();
        }
        if all.tenant_len(tenant) >= MAX_BREAKERS_PER_TENANT {
            all.evict_tenant(tenant);
        }
        if all.total >= MAX_BREAKERS {
            all.evict_all();
        }
        let breaker = Arc::new(Breaker::new(self.breaker_config.clone()));
        if all.tenant_len(tenant) >= MAX_BREAKERS_PER_TENANT || all.total >= MAX_BREAKERS {
            tracing::warn!(
                tenant,
                provider = %id,
                "provider breaker registry is full; this provider's breaker is not shared"
            );
            return breaker;
        }
        all.by_tenant
            .entry(tenant.to_string())
            .or_default()
            .insert(id.clone(), breaker.clone());
        all.total += 1;
        breaker
    }

    /// A provider for `config` on behalf of `tenant`, with `tenant`'s breaker for its
    /// identity and this registry's egress policy.
    pub fn provider(&self, tenant: &str, config: ProviderConfig) -> Result<Provider, ConfigError> {
        // The breaker is taken last, so a refused config does not take a slot in the map.
        Provider::build(config, self.egress.clone(), |c| {
            self.breaker(tenant, &c.id())
        })
    }

    /// Every breaker's state and counters, sorted by tenant and provider (for `/metrics`).
    pub fn stats(&self) -> Vec<(String, ProviderId, BreakerStats)> {
        let all = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = all
            .by_tenant
            .iter()
            .flat_map(|(tenant, map)| {
                map.iter()
                    .map(move |(id, b)| (tenant.clone(), id.clone(), b.stats()))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn registry() -> Registry {
        Registry::new(BreakerConfig::default(), EgressPolicy::default()).unwrap()
    }

    fn id(n: usize) -> ProviderId {
        ProviderConfig::openai(format!("http://h:{}/v1", n % 60_000 + 1), format!("m{n}")).id()
    }

    #[test]
    fn breakers_are_per_tenant() {
        let reg = registry();
        let a = reg.breaker("acme", &id(1));
        assert!(Arc::ptr_eq(&a, &reg.breaker("acme", &id(1))));
        assert!(!Arc::ptr_eq(&a, &reg.breaker("globex", &id(1))));
        assert!(!Arc::ptr_eq(&a, &reg.breaker("acme", &id(2))));
        let stats = reg.stats();
        assert_eq!(stats.len(), 3);
        assert_eq!(stats[0].0, "acme");
        assert_eq!(stats[2].0, "globex");
    }

    #[test]
    fn the_map_is_bounded_and_keeps_breakers_in_use() {
        let reg = registry();
        let held = reg.breaker("acme", &id(0));
        for n in 1..MAX_BREAKERS_PER_TENANT + 50 {
            drop(reg.breaker("acme", &id(n)));
        }
        let acme = reg.stats().len();
        assert!(acme <= MAX_BREAKERS_PER_TENANT, "{acme}");
        // The breaker in use survived eviction and is still the shared one.
        assert!(Arc::ptr_eq(&held, &reg.breaker("acme", &id(0))));

        // Many tenants: the total stays bounded too.
        for t in 0..(MAX_BREAKERS / MAX_BREAKERS_PER_TENANT + 2) {
            for n in 0..MAX_BREAKERS_PER_TENANT {
                drop(reg.breaker(&format!("t{t}"), &id(n)));
            }
        }
        assert!(reg.stats().len() <= MAX_BREAKERS);
        assert!(Arc::ptr_eq(&held, &reg.breaker("acme", &id(0))));
    }

    #[test]
    fn when_full_of_breakers_in_use_a_new_one_is_private() {
        let reg = registry();
        let held: Vec<_> = (0..MAX_BREAKERS_PER_TENANT)
            .map(|n| reg.breaker("acme", &id(n)))
            .collect();
        let extra = reg.breaker("acme", &id(MAX_BREAKERS_PER_TENANT));
        assert!(!Arc::ptr_eq(
            &extra,
            &reg.breaker("acme", &id(MAX_BREAKERS_PER_TENANT))
        ));
        assert_eq!(reg.stats().len(), MAX_BREAKERS_PER_TENANT);
        // Another tenant is not affected.
        let other = reg.breaker("globex", &id(0));
        assert!(Arc::ptr_eq(&other, &reg.breaker("globex", &id(0))));
        drop(held);
    }
}
