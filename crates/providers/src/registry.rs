//! One breaker per provider identity, and one pooled HTTP client, for the whole node:
//! every evaluation calling the same provider shares its breaker, so one evaluation's
//! failures protect the others.

use crate::breaker::{Breaker, BreakerConfig, BreakerStats};
use crate::config::{ProviderConfig, ProviderId};
use crate::error::ConfigError;
use crate::provider::{http_client, Provider};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Breakers by provider identity, plus the HTTP client providers share.
#[derive(Debug)]
pub struct Registry {
    breaker_config: BreakerConfig,
    breakers: Mutex<HashMap<ProviderId, Arc<Breaker>>>,
    http: reqwest::Client,
}

impl Registry {
    /// An empty registry whose breakers use `breaker_config`.
    pub fn new(breaker_config: BreakerConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            breaker_config,
            breakers: Mutex::new(HashMap::new()),
            http: http_client()?,
        })
    }

    /// The breaker for `id`, created closed on first use.
    pub fn breaker(&self, id: &ProviderId) -> Arc<Breaker> {
        // A poisoned map is still a valid map.
        let mut map = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.clone())
            .or_insert_with(|| Arc::new(Breaker::new(self.breaker_config.clone())))
            .clone()
    }

    /// A provider for `config`, sharing this registry's breaker and HTTP client.
    pub fn provider(&self, config: ProviderConfig) -> Result<Provider, ConfigError> {
        let breaker = self.breaker(&config.id());
        Provider::with_client(config, breaker, self.http.clone())
    }

    /// Every breaker's state and counters, sorted by provider (for `/metrics`).
    pub fn stats(&self) -> Vec<(ProviderId, BreakerStats)> {
        let map = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = map.iter().map(|(id, b)| (id.clone(), b.stats())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
