//! Tenants: who is isolated from whom, and which tier they get.

use crate::tier::{validate_budget, validate_limits, WindowLimit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a tenant may use the tenant API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Normal operation.
    #[default]
    Active,
    /// Keys are refused until an admin reactivates the tenant.
    Suspended,
}

/// Per-tenant values that replace the tier's.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierOverrides {
    /// Replaces the tier's limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Vec<WindowLimit>>,
    /// Replaces the tier's endpoint weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_weights: Option<BTreeMap<String, u32>>,
    /// Replaces the tier's concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Replaces the tier's monthly budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_budget_usd: Option<f64>,
    /// Trusted internal caller: the tier's rate and concurrency limits are not applied
    /// (the caller is still authenticated). Set by an admin through `tenant.update`, so
    /// it is audited like any other change. Defaults to false, so Raft log entries and
    /// snapshots written before the field existed read as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bypass_limits: bool,
}

impl TierOverrides {
    /// Checks the override values; `at` is the JSON pointer of the overrides object.
    pub fn validate(&self, at: &str) -> Result<(), (String, String)> {
        if let Some(limits) = &self.limits {
            validate_limits(limits, &format!("{at}/limits"))?;
        }
        if self.concurrency == Some(0) {
            return Err((format!("{at}/concurrency"), "must be at least 1".into()));
        }
        validate_budget(self.monthly_budget_usd, &format!("{at}/monthly_budget_usd"))
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Unique tenant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Name of the tenant's tier.
    pub tier: String,
    /// Values that replace the tier's.
    #[serde(default)]
    pub overrides: TierOverrides,
    /// Whether the tenant may use the API.
    #[serde(default)]
    pub status: TenantStatus,
    /// Creation time (ms since the Unix epoch, stamped by the proposer).
    pub created_at_ms: u64,
    /// Last change time.
    pub updated_at_ms: u64,
}

/// Longest tenant display name.
pub const MAX_NAME_LEN: usize = 200;

/// Checks a tenant display name.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}
