//! The run plan: every `(case, provider, repeat)` an evaluation must record, in one
//! stable order, each with a stable [`WorkKey`].
//!
//! Order: repeat first, then case, then provider in spec order; so the first pass over
//! all cases finishes before any repeat starts, and the providers' answers to one case
//! are next to each other. The same spec always gives the same plan, on any node.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::validated::ValidatedSpec;

/// One provider call (or precomputed output) to score.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkItem {
    /// Index into the spec's `cases`.
    pub case_index: usize,
    /// The provider's id.
    pub provider_id: String,
    /// Which repetition, from 0.
    pub repeat: u32,
}

impl WorkItem {
    /// The item's stable key.
    pub fn key(&self) -> WorkKey {
        WorkKey(format!(
            "{}/{}/{}",
            self.case_index, self.repeat, self.provider_id
        ))
    }
}

/// A work item's identity as a string, `case/repeat/provider` (e.g. `17/0/gpt-4o`);
/// provider ids cannot contain `/`, so the key parses back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkKey(String);

impl WorkKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The work item the key names.
    pub fn item(&self) -> Result<WorkItem, BadWorkKey> {
        let bad = || BadWorkKey(self.0.clone());
        let mut parts = self.0.splitn(3, '/');
        let case_index = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let repeat = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let provider_id = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
        Ok(WorkItem {
            case_index,
            provider_id: provider_id.to_string(),
            repeat,
        })
    }
}

impl fmt::Display for WorkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for WorkKey {
    type Err = BadWorkKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = WorkKey(s.to_string());
        // Only canonical spellings (no `+1`, `01`) are keys.
        if key.item()?.key() == key {
            Ok(key)
        } else {
            Err(BadWorkKey(s.to_string()))
        }
    }
}

/// Text that is not a `case/repeat/provider` key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a work key: {0:?}")]
pub struct BadWorkKey(pub String);

/// Every work item of a spec, in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    cases: usize,
    repeat: u32,
    providers: Vec<String>,
}

impl Plan {
    /// The plan of a validated spec.
    pub fn new(spec: &ValidatedSpec) -> Plan {
        Plan {
            cases: spec.spec().cases.len(),
            repeat: spec.spec().repeat(),
            providers: spec.providers().iter().map(|p| p.id.clone()).collect(),
        }
    }

    /// Number of work items.
    pub fn len(&self) -> usize {
        self.cases * self.repeat as usize * self.providers.len()
    }

    /// Whether the plan has no work.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at position `seq` in plan order.
    pub fn get(&self, seq: usize) -> Option<WorkItem> {
        if seq >= self.len() {
            return None;
        }
        let p = self.providers.len();
        let provider_id = self.providers[seq % p].clone();
        let case_index = (seq / p) % self.cases;
        let repeat = u32::try_from(seq / p / self.cases).ok()?;
        Some(WorkItem {
            case_index,
            provider_id,
            repeat,
        })
    }

    /// The position of `item` in plan order, or `None` when it is not in the plan.
    pub fn seq(&self, item: &WorkItem) -> Option<usize> {
        let p = self
            .providers
            .iter()
            .position(|id| *id == item.provider_id)?;
        if item.case_index >= self.cases || item.repeat >= self.repeat {
            return None;
        }
        Some((item.repeat as usize * self.cases + item.case_index) * self.providers.len() + p)
    }

    /// Every item in plan order.
    pub fn items(&self) -> impl Iterator<Item = WorkItem> + '_ {
        (0..self.len()).filter_map(|seq| self.get(seq))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{validate, SpecLimits};
    use proptest::prelude::*;
    use serde_json::json;

    fn spec(cases: usize, providers: usize, repeat: u32) -> ValidatedSpec {
        let body = json!({
            "providers": (0..providers).map(|i| json!({"id": format!("p{i}"), "kind": "builtin", "model": "echo"})).collect::<Vec<_>>(),
            "prompt": "x",
            "cases": (0..cases).map(|_| json!({})).collect::<Vec<_>>(),
            "scorers": [{"type": "json_valid"}],
            "repeat": repeat,
        });
        validate(&body, &SpecLimits::default()).unwrap()
    }

    #[test]
    fn order_is_repeat_case_provider() {
        let plan = Plan::new(&spec(2, 2, 2));
        let keys: Vec<String> = plan.items().map(|i| i.key().to_string()).collect();
        assert_eq!(
            keys,
            ["0/0/p0", "0/0/p1", "1/0/p0", "1/0/p1", "0/1/p0", "0/1/p1", "1/1/p0", "1/1/p1"]
        );
        assert_eq!(plan.len(), 8);
        assert_eq!(plan.get(8), None);
    }

    #[test]
    fn keys_round_trip_and_reject_junk() {
        let item = WorkItem {
            case_index: 17,
            provider_id: "gpt-4o.mini".into(),
            repeat: 3,
        };
        let key: WorkKey = "17/3/gpt-4o.mini".parse().unwrap();
        assert_eq!(key, item.key());
        assert_eq!(key.item().unwrap(), item);
        for junk in ["", "1/2", "a/0/p", "1/0/", "01/0/p", "+1/0/p", "1/-1/p"] {
            assert!(junk.parse::<WorkKey>().is_err(), "{junk:?}");
        }
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"17/3/gpt-4o.mini\"");
    }

    #[test]
    fn items_outside_the_plan_have_no_seq() {
        let plan = Plan::new(&spec(2, 1, 1));
        for (case_index, provider_id, repeat) in [(2, "p0", 0), (0, "p1", 0), (0, "p0", 1)] {
            let item = WorkItem {
                case_index,
                provider_id: provider_id.into(),
                repeat,
            };
            assert_eq!(plan.seq(&item), None);
        }
    }

    proptest! {
        #[test]
        fn plan_is_deterministic_and_seq_inverts_get(
            cases in 1usize..6, providers in 1usize..4, repeat in 1u32..4
        ) {
            let s = spec(cases, providers, repeat);
            let a: Vec<WorkItem> = Plan::new(&s).items().collect();
            let b: Vec<WorkItem> = Plan::new(&s.clone()).items().collect();
            prop_assert_eq!(&a, &b);
            let plan = Plan::new(&s);
            prop_assert_eq!(a.len(), cases * providers * repeat as usize);
            let mut keys = std::collections::BTreeSet::new();
            for (seq, item) in a.iter().enumerate() {
                prop_assert_eq!(plan.seq(item), Some(seq));
                prop_assert!(keys.insert(item.key()));
            }
        }
    }
}
