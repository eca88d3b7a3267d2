//! Rate-limit tiers: the limits, weights, concurrency and budget a tenant gets.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One limit of a tier: at most `limit` request units per `window_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowLimit {
    /// Request units allowed per window.
    pub limit: u64,
    /// Window length in seconds.
    pub window_secs: u64,
}

/// A named tier. Tenants reference tiers by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    /// Unique tier name, e.g. `free`.
    pub name: String,
    /// Limits per window; every one of them must allow a request.
    pub limits: Vec<WindowLimit>,
    /// Cost in request units of an endpoint (by route name); unlisted endpoints cost 1.
    #[serde(default)]
    pub endpoint_weights: BTreeMap<String, u32>,
    /// Maximum in-flight requests per tenant; `None` means unlimited.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Hard monthly budget in USD; `None` means no budget.
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
    /// When the tier was created (ms since the Unix epoch, stamped by the proposer).
    #[serde(default)]
    pub created_at_ms: u64,
    /// When the tier was last changed.
    #[serde(default)]
    pub updated_at_ms: u64,
}

impl Tier {
    /// Checks the tier's own values; returns (field, problem) for the first bad one.
    pub fn validate(&self) -> Result<(), (String, String)> {
        crate::ids::validate_id(&self.name).map_err(|m| ("/name".to_string(), m))?;
        validate_limits(&self.limits, "/limits")?;
        for (route, w) in &self.endpoint_weights {
            if *w == 0 {
                return Err((
                    format!("/endpoint_weights/{route}"),
                    "weight must be at least 1".into(),
                ));
            }
        }
        if self.concurrency == Some(0) {
            return Err((
                "/concurrency".into(),
                "must be at least 1 (omit it for no limit)".into(),
            ));
        }
        validate_budget(self.monthly_budget_usd, "/monthly_budget_usd")
    }
}

/// Checks a list of window limits; `at` is the JSON pointer of the list.
pub fn validate_limits(limits: &[WindowLimit], at: &str) -> Result<(), (String, String)> {
    for (i, l) in limits.iter().enumerate() {
        if l.limit == 0 {
            return Err((format!("{at}/{i}/limit"), "must be at least 1".into()));
        }
        if l.window_secs == 0 {
            return Err((format!("{at}/{i}/window_secs"), "must be at least 1".into()));
        }
    }
    Ok(())
}

/// Checks an optional budget: finite and not negative.
pub fn validate_budget(budget: Option<f64>, at: &str) -> Result<(), (String, String)> {
    match budget {
        Some(b) if !b.is_finite() || b < 0.0 => Err((
            at.to_string(),
            "must be a finite number of at least 0".into(),
        )),
        _ => Ok(()),
    }
}

/// The tiers a new cluster starts with; admins may change them.
pub fn default_tiers(now_ms: u64) -> Vec<Tier> {
    let minute = 60;
    let day = 24 * 60 * 60;
    let tier = |name: &str, limits: Vec<WindowLimit>, concurrency| Tier {
        name: name.to_string(),
        limits,
        endpoint_weights: BTreeMap::new(),
        concurrency: Some(concurrency),
        monthly_budget_usd: None,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    };
    let per = |limit, window_secs| WindowLimit { limit, window_secs };
    vec![
        tier("free", vec![per(100, minute), per(5_000, day)], 4),
        tier("pro", vec![per(1_000, minute)], 32),
        tier("enterprise", vec![per(10_000, minute)], 256),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_tiers() {
        let tiers = default_tiers(0);
        let names: Vec<_> = tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["free", "pro", "enterprise"]);
        assert_eq!(
            tiers[0].limits,
            vec![
                WindowLimit {
                    limit: 100,
                    window_secs: 60
                },
                WindowLimit {
                    limit: 5000,
                    window_secs: 86400
                }
            ]
        );
        assert_eq!(
            tiers[1].limits,
            vec![WindowLimit {
                limit: 1000,
                window_secs: 60
            }]
        );
        assert_eq!(
            tiers[2].limits,
            vec![WindowLimit {
                limit: 10000,
                window_secs: 60
            }]
        );
        assert!(tiers.iter().all(|t| t.validate().is_ok()));
    }

    #[test]
    fn validate_names_the_bad_field() {
        let mut t = default_tiers(0).remove(0);
        t.limits[1].window_secs = 0;
        assert_eq!(t.validate().unwrap_err().0, "/limits/1/window_secs");
        let mut t = default_tiers(0).remove(0);
        t.monthly_budget_usd = Some(f64::NAN);
        assert_eq!(t.validate().unwrap_err().0, "/monthly_budget_usd");
    }
}
