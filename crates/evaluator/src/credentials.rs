//! Which key a spec's `"credential": "name"` stands for: the tenant's own credential
//! (sealed in the Raft state, opened here with the cluster's key) or, failing that, an
//! operator credential from the node config that names the tenant. Nothing a tenant
//! sends can name an environment variable or a file: operator credentials were read
//! once at start.

use colony_core::credential::{SealingKey, StoredCredential};
use colony_providers::Credential;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A credential the operator configured (`[[providers.credentials]]`), value loaded.
#[derive(Clone)]
pub struct OperatorCredential {
    /// Name specs use.
    pub name: String,
    /// The key itself.
    pub value: String,
    /// `host:port` pairs it may be sent to.
    pub allowed_hosts: Vec<String>,
    /// Tenant ids that may use it; `*` for every tenant.
    pub tenants: Vec<String>,
    /// PEM of the private CA its endpoint's certificate chains to, if any.
    pub ca_pem: Option<String>,
}

// Hand-written so the value never reaches a log line.
impl std::fmt::Debug for OperatorCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorCredential")
            .field("name", &self.name)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl OperatorCredential {
    fn serves(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant)
    }
}

/// Why a named credential cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Neither the tenant nor the operator has one by that name for this tenant.
    #[error("no credential named {0:?} (store one with PUT /v1/credentials/{0})")]
    Unknown(String),
    /// The tenant's stored value does not open (the cluster secret changed).
    #[error("credential {0:?} cannot be decrypted with this cluster's secret; store it again")]
    Sealed(String),
}

/// Everything needed to resolve credential names on this node.
#[derive(Debug, Clone)]
pub struct Credentials {
    key: Arc<SealingKey>,
    operator: Arc<Vec<OperatorCredential>>,
}

impl Credentials {
    /// Resolver with the cluster's sealing key and the operator's credentials.
    pub fn new(key: Arc<SealingKey>, operator: Vec<OperatorCredential>) -> Self {
        Self {
            key,
            operator: Arc::new(operator),
        }
    }

    /// The credential `name` for `tenant`, given the state's stored credentials.
    pub fn resolve(
        &self,
        stored: &BTreeMap<(String, String), StoredCredential>,
        tenant: &str,
        name: &str,
    ) -> Result<Credential, LookupError> {
        if let Some(c) = stored.get(&(tenant.to_string(), name.to_string())) {
            let value = self
                .key
                .open(tenant, name, &c.sealed)
                .map_err(|_| LookupError::Sealed(name.to_string()))?;
            return Ok(Credential {
                name: name.to_string(),
                value,
                allowed_hosts: c.allowed_hosts.clone(),
                ca_pem: c.ca_pem.clone(),
            });
        }
        self.operator
            .iter()
            .find(|c| c.name == name && c.serves(tenant))
            .map(|c| Credential {
                name: c.name.clone(),
                value: c.value.clone(),
                allowed_hosts: c.allowed_hosts.clone(),
                ca_pem: c.ca_pem.clone(),
            })
            .ok_or_else(|| LookupError::Unknown(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_tenant_gets_its_own_or_an_operator_credential_meant_for_it_and_nothing_else() {
        let key = Arc::new(SealingKey::derive(b"0123456789abcdef0123456789abcdef").unwrap());
        let mut stored = BTreeMap::new();
        stored.insert(
            ("t1".to_string(), "mine".to_string()),
            StoredCredential {
                tenant: "t1".into(),
                name: "mine".into(),
                allowed_hosts: vec!["h:443".into()],
                sealed: key.seal("t1", "mine", "sk-t1", [1; 12]),
                ca_pem: Some("CA".into()),
                created_at_ms: 0,
                updated_at_ms: 0,
            },
        );
        let creds = Credentials::new(
            key,
            vec![OperatorCredential {
                name: "shared".into(),
                value: "sk-op".into(),
                allowed_hosts: vec!["api.openai.com:443".into()],
                tenants: vec!["t1".into()],
                ca_pem: None,
            }],
        );
        let mine = creds.resolve(&stored, "t1", "mine").unwrap();
        assert_eq!(mine.value, "sk-t1");
        // The credential's private CA goes with it to the provider client.
        assert_eq!(mine.ca_pem.as_deref(), Some("CA"));
        assert_eq!(
            creds.resolve(&stored, "t1", "shared").unwrap().value,
            "sk-op"
        );
        // Another tenant can name neither.
        assert_eq!(
            creds.resolve(&stored, "t2", "mine").unwrap_err(),
            LookupError::Unknown("mine".into())
        );
        assert!(creds.resolve(&stored, "t2", "shared").is_err());
        // An environment variable's name is just an unknown credential.
        assert!(creds.resolve(&stored, "t1", "COLONY_ADMIN_TOKEN").is_err());
    }
}
