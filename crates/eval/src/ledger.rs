//! Records each work item's result exactly once: a second result for the same item
//! (a retried checkpoint, a replayed message) is refused, and so is a result for an
//! item outside the plan.

use thiserror::Error;

use crate::plan::{Plan, WorkItem, WorkKey};
use crate::result::CaseResult;

/// Why a result was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LedgerError {
    /// The item is not in the plan (unknown case, provider or repeat).
    #[error("work item {0} is not in the plan")]
    NotInPlan(WorkKey),
    /// The item already has a result; the first one is kept.
    #[error("work item {0} is already recorded")]
    AlreadyRecorded(WorkKey),
}

/// The results of one evaluation so far, one slot per work item.
#[derive(Debug, Clone)]
pub struct Ledger {
    plan: Plan,
    slots: Vec<Option<CaseResult>>,
    recorded: usize,
}

impl Ledger {
    /// An empty ledger for `plan`.
    pub fn new(plan: Plan) -> Ledger {
        Ledger {
            slots: vec![None; plan.len()],
            plan,
            recorded: 0,
        }
    }

    /// Records `result` unless its item is unknown or already recorded.
    pub fn record(&mut self, result: CaseResult) -> Result<(), LedgerError> {
        let item = result.work_item();
        let seq = self
            .plan
            .seq(&item)
            .ok_or_else(|| LedgerError::NotInPlan(item.key()))?;
        match self.slots.get_mut(seq) {
            Some(slot @ None) => {
                *slot = Some(result);
                self.recorded += 1;
                Ok(())
            }
            _ => Err(LedgerError::AlreadyRecorded(item.key())),
        }
    }

    /// Whether `item` has a result.
    pub fn is_recorded(&self, item: &WorkItem) -> bool {
        self.plan
            .seq(item)
            .and_then(|seq| self.slots.get(seq))
            .is_some_and(Option::is_some)
    }

    /// Number of results recorded.
    pub fn recorded(&self) -> usize {
        self.recorded
    }

    /// Number of work items in the plan.
    pub fn total(&self) -> usize {
        self.slots.len()
    }

    /// Whether every work item has a result.
    pub fn is_complete(&self) -> bool {
        self.recorded == self.slots.len()
    }

    /// The items still without a result, in plan order.
    pub fn pending(&self) -> impl Iterator<Item = WorkItem> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .filter_map(|(seq, _)| self.plan.get(seq))
    }

    /// The recorded results in plan order.
    pub fn results(&self) -> impl Iterator<Item = &CaseResult> {
        self.slots.iter().flatten()
    }

    /// The recorded results in plan order, consuming the ledger.
    pub fn into_results(self) -> Vec<CaseResult> {
        self.slots.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::result::{score_case, ProviderOutput};
    use crate::{validate, SpecLimits};
    use serde_json::json;

    #[test]
    fn each_item_once() {
        let body = json!({
            "providers": [{"id": "a", "kind": "builtin", "model": "echo"},
                          {"id": "b", "kind": "builtin", "model": "echo"}],
            "prompt": "x",
            "cases": [{}, {}],
            "scorers": [{"type": "json_valid"}]
        });
        let spec = validate(&body, &SpecLimits::default()).unwrap();
        let mut ledger = Ledger::new(Plan::new(&spec));
        let result = |case, provider: &str| {
            score_case(
                &spec,
                case,
                provider,
                0,
                Ok(ProviderOutput::precomputed("1")),
                None,
            )
            .unwrap()
        };
        assert_eq!(ledger.total(), 4);
        ledger.record(result(1, "b")).unwrap();
        ledger.record(result(0, "a")).unwrap();
        assert_eq!(
            ledger.record(result(1, "b")),
            Err(LedgerError::AlreadyRecorded("1/0/b".parse().unwrap()))
        );
        let mut stray = result(0, "a");
        stray.repeat = 1;
        assert_eq!(
            ledger.record(stray),
            Err(LedgerError::NotInPlan("0/1/a".parse().unwrap()))
        );
        let pending: Vec<String> = ledger.pending().map(|i| i.key().to_string()).collect();
        assert_eq!(pending, ["0/0/b", "1/0/a"]);
        assert!(!ledger.is_complete());
        ledger.record(result(1, "a")).unwrap();
        ledger.record(result(0, "b")).unwrap();
        assert!(ledger.is_complete());
        let keys: Vec<String> = ledger.results().map(|r| r.key().to_string()).collect();
        assert_eq!(keys, ["0/0/a", "0/0/b", "1/0/a", "1/0/b"]);
        assert_eq!(ledger.into_results().len(), 4);
    }
}
