//! [`Effective`]: the limits in force for a tenant (its tier's values with its overrides
//! applied), what a request costs, and the tenant's [`Policy`]s: one bucket per limit.

use crate::policy::Policy;
use colony_core::tenant::Tenant;
use colony_core::tier::{Tier, WindowLimit};
use std::collections::BTreeMap;

/// The limits in force for a tenant: tier values with the tenant's overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// Where the limits come from: the tier name, or `custom` for overridden limits
    /// (used in policy names).
    pub source: String,
    /// Window limits.
    pub limits: Vec<WindowLimit>,
    /// Route weights.
    pub endpoint_weights: BTreeMap<String, u32>,
    /// Most in-flight requests.
    pub concurrency: Option<u32>,
    /// Monthly budget in USD.
    pub monthly_budget_usd: Option<f64>,
    /// Trusted caller: no rate or concurrency limits.
    pub bypass_limits: bool,
    /// Name of the concurrency policy: `<tier>-concurrency`, or `custom-concurrency`
    /// when the tenant overrides it (empty without a concurrency limit).
    pub concurrency_policy: String,
}

impl Effective {
    /// The effective limits of `tenant` whose tier is `tier` (`None` if it was deleted:
    /// then only the overrides apply).
    pub fn of(tenant: &Tenant, tier: Option<&Tier>) -> Self {
        let o = &tenant.overrides;
        let source = if o.limits.is_some() {
            "custom".to_string()
        } else {
            tenant.tier.clone()
        };
        Self {
            source,
            limits: o
                .limits
                .clone()
                .or_else(|| tier.map(|t| t.limits.clone()))
                .unwrap_or_default(),
            endpoint_weights: o
                .endpoint_weights
                .clone()
                .or_else(|| tier.map(|t| t.endpoint_weights.clone()))
                .unwrap_or_default(),
            concurrency: o.concurrency.or_else(|| tier.and_then(|t| t.concurrency)),
            monthly_budget_usd: o
                .monthly_budget_usd
                .or_else(|| tier.and_then(|t| t.monthly_budget_usd)),
            bypass_limits: o.bypass_limits,
            // Named only when there is a concurrency limit: most requests never need it.
            concurrency_policy: match (o.concurrency, tier.and_then(|t| t.concurrency)) {
                (Some(_), _) => "custom-concurrency".to_string(),
                (None, Some(_)) => format!("{}-concurrency", tenant.tier),
                (None, None) => String::new(),
            },
        }
    }

    /// Cost of one request to `route`: its weight, 1 if unlisted.
    pub fn cost(&self, route: &str) -> u64 {
        self.endpoint_weights
            .get(route)
            .map_or(1, |w| u64::from(*w).max(1))
    }

    /// One policy per limit, named `<source>-<window>s` (with `-<n>` for a repeated window).
    pub fn policies(&self, tenant_id: &str) -> Vec<Policy> {
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        self.limits
            .iter()
            .map(|l| {
                let n = seen.entry(l.window_secs).or_default();
                let (name, key) = if *n == 0 {
                    (
                        format!("{}-{}s", self.source, l.window_secs),
                        format!("tier/{}:{tenant_id}/{}s", tenant_id.len(), l.window_secs),
                    )
                } else {
                    (
                        format!("{}-{}s-{n}", self.source, l.window_secs),
                        format!(
                            "tier/{}:{tenant_id}/{}s/{n}",
                            tenant_id.len(),
                            l.window_secs
                        ),
                    )
                };
                *n += 1;
                Policy {
                    name,
                    key,
                    limit: l.limit,
                    window_secs: l.window_secs,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::policy_header;
    use colony_core::tenant::TierOverrides;

    fn tenant(tier: &str, overrides: TierOverrides) -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            tier: tier.into(),
            overrides,
            status: Default::default(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn policies_are_named_after_the_tier_and_window() {
        let tiers = colony_core::tier::default_tiers(0);
        let eff = Effective::of(&tenant("free", TierOverrides::default()), Some(&tiers[0]));
        let ps = eff.policies("acme");
        let names: Vec<_> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["free-60s", "free-86400s"]);
        assert_eq!(ps[0].key, "tier/4:acme/60s");
        assert_eq!(
            policy_header(&ps),
            r#""free-60s";q=100;w=60, "free-86400s";q=5000;w=86400"#
        );
        assert_eq!(eff.cost("whoami"), 1);
    }

    #[test]
    fn overrides_replace_tier_values_and_repeated_windows_get_distinct_keys() {
        let tiers = colony_core::tier::default_tiers(0);
        let o = TierOverrides {
            limits: Some(vec![
                WindowLimit {
                    limit: 5,
                    window_secs: 60,
                },
                WindowLimit {
                    limit: 9,
                    window_secs: 60,
                },
            ]),
            endpoint_weights: Some(BTreeMap::from([("whoami".to_string(), 3)])),
            bypass_limits: true,
            ..Default::default()
        };
        let eff = Effective::of(&tenant("free", o), Some(&tiers[0]));
        assert!(eff.bypass_limits);
        assert_eq!(eff.cost("whoami"), 3);
        assert_eq!(eff.concurrency, Some(4));
        let ps = eff.policies("acme");
        assert_eq!(ps[0].name, "custom-60s");
        assert_eq!(ps[1].name, "custom-60s-1");
        assert_ne!(ps[0].key, ps[1].key);
    }
}
