//! Applying the evaluation commands: submission, checkpoints, reassignment, cancel, fail,
//! and the tenant's monthly budget.
//!
//! Exactly once: a checkpoint is accepted only at the evaluation's current epoch, and an
//! item already recorded is skipped, so a node wrongly declared dead (an old epoch) or a
//! repeated checkpoint (a lost answer) can never record or bill a result twice.

use crate::machine::{exists, not_found, AuditDraft, Change, Plan, State, UsageKey};
use colony_core::command::{ApplyError, CommandOutput};
use colony_core::evaluation::{
    day_of, month_of, usd_to_nanos, CheckpointItem, EvaluationRecord, EvaluationStatus, UsageTotals,
};
use colony_core::tenant::TenantStatus;
use serde_json::json;
use std::collections::BTreeMap;

/// Share of the monthly budget at which a soft-threshold event is audited.
pub const SOFT_BUDGET_RATIO: f64 = 0.8;

fn audit(
    action: &'static str,
    r: &EvaluationRecord,
    details: serde_json::Value,
) -> Option<AuditDraft> {
    Some(AuditDraft {
        action,
        resource: format!("evaluations/{}", r.id),
        tenant: Some(r.tenant.clone()),
        details,
    })
}

fn ended(r: &EvaluationRecord) -> ApplyError {
    ApplyError::Conflict(format!(
        "evaluation {:?} has ended ({})",
        r.id,
        r.status.as_str()
    ))
}

impl State {
    /// The tenant's monthly budget in nano-dollars, if any (tenant override, else tier).
    pub fn budget_nanos(&self, tenant: &str) -> Option<u64> {
        let t = self.tenants.get(tenant)?;
        let usd = t
            .overrides
            .monthly_budget_usd
            .or_else(|| self.tiers.get(&t.tier).and_then(|x| x.monthly_budget_usd))?;
        usd_to_nanos(usd)
    }

    /// What the tenant spent in `month` (`YYYY-MM`), in nano-dollars.
    pub fn month_spend_nanos(&self, tenant: &str, month: &str) -> u64 {
        let from = UsageKey {
            tenant: tenant.to_string(),
            day: format!("{month}-00"),
            model: String::new(),
        };
        let to = UsageKey {
            tenant: tenant.to_string(),
            day: format!("{month}-99"),
            model: String::new(),
        };
        self.usage
            .range(from..to)
            .fold(0u64, |acc, (_, u)| acc.saturating_add(u.cost_nanos))
    }

    /// How many evaluations the tenant stores, whatever their status.
    pub fn stored_evaluations(&self, tenant: &str) -> usize {
        self.evaluations
            .values()
            .filter(|r| r.tenant == tenant)
            .count()
    }

    /// How many of the tenant's evaluations are queued or running.
    pub fn live_evaluations(&self, tenant: &str) -> usize {
        self.evaluations
            .values()
            .filter(|r| r.tenant == tenant && !r.status.is_terminal())
            .count()
    }

    fn evaluation(&self, id: &str) -> Result<&EvaluationRecord, ApplyError> {
        self.evaluations
            .get(id)
            .ok_or_else(|| not_found("evaluation", id))
    }

    pub(crate) fn plan_submit(
        &self,
        at: u64,
        record: &EvaluationRecord,
        spec: &serde_json::Value,
        max_live: Option<u32>,
        max_stored: Option<u32>,
    ) -> Result<Plan, ApplyError> {
        let tenant = self
            .tenants
            .get(&record.tenant)
            .ok_or_else(|| not_found("tenant", &record.tenant))?;
        if tenant.status == TenantStatus::Suspended {
            return Err(ApplyError::Conflict(format!(
                "tenant {:?} is suspended",
                record.tenant
            )));
        }
        if self.evaluations.contains_key(&record.id) {
            return Err(exists("evaluation", &record.id));
        }
        if let Some(cap) = max_stored {
            let stored = self.stored_evaluations(&record.tenant);
            if stored >= cap as usize {
                return Err(ApplyError::Conflict(format!(
                    "tenant {:?} stores {stored} evaluations, the most allowed \
                     (evaluations.max_stored_per_tenant = {cap}); delete old ones \
                     (DELETE /v1/evaluations/{{id}})",
                    record.tenant
                )));
            }
        }
        if let Some(cap) = max_live {
            let live = self.live_evaluations(&record.tenant);
            if live >= cap as usize {
                return Err(ApplyError::Conflict(format!(
                    "tenant {:?} has {live} evaluations queued or running, the most allowed \
                     (evaluations.max_live_per_tenant = {cap}); wait for one to end or cancel one",
                    record.tenant
                )));
            }
        }
        let mut r = record.clone();
        r.status = EvaluationStatus::Queued;
        r.epoch = r.epoch.max(1);
        r.done = Default::default();
        r.failed = 0;
        r.cached = 0;
        r.usage = UsageTotals::default();
        r.created_at_ms = at;
        r.updated_at_ms = at;
        r.finished_at_ms = None;
        r.error = None;
        // Over budget already: accepted (so the tenant sees why) but never run.
        let month = month_of(&day_of(at)).to_string();
        if let Some(budget) = self.budget_nanos(&r.tenant) {
            if self.month_spend_nanos(&r.tenant, &month) >= budget {
                r.status = EvaluationStatus::BudgetExceeded;
                r.finished_at_ms = Some(at);
            }
        }
        let details = json!({
            "owner": r.owner.to_string(),
            "epoch": r.epoch,
            "items": r.total,
            "status": r.status.as_str(),
        });
        Ok(Plan {
            output: CommandOutput::Evaluation(Box::new(r.clone())),
            changes: vec![
                Change::EvalSpec(r.id.clone(), Some(spec.clone())),
                Change::Evaluation(r.id.clone(), Some(r.clone())),
            ],
            audit: audit("evaluation.submit", &r, details),
        })
    }

    pub(crate) fn plan_checkpoint(
        &self,
        at: u64,
        id: &str,
        epoch: u64,
        items: &[CheckpointItem],
    ) -> Result<Plan, ApplyError> {
        let old = self.evaluation(id)?;
        if old.status.is_terminal() {
            return Err(ended(old));
        }
        if epoch != old.epoch {
            return Err(ApplyError::Conflict(format!(
                "stale epoch {epoch} for evaluation {id:?}: it is at epoch {} on node {}",
                old.epoch, old.owner
            )));
        }
        let mut r = old.clone();
        let day = day_of(at);
        let month = month_of(&day).to_string();
        let spent_before = self.month_spend_nanos(&r.tenant, &month);
        let mut changes = Vec::new();
        let mut by_model: BTreeMap<String, UsageTotals> = BTreeMap::new();
        let mut added = 0u64;
        for it in items {
            if it.index >= r.total {
                return Err(ApplyError::Conflict(format!(
                    "item {} is out of range: evaluation {id:?} has {} items",
                    it.index, r.total
                )));
            }
            if !r.done.insert(it.index) {
                continue; // recorded by an earlier checkpoint: exactly once
            }
            let u = UsageTotals {
                prompt_tokens: it.prompt_tokens,
                completion_tokens: it.completion_tokens,
                cost_nanos: it.cost_nanos,
                cases: 1,
            };
            r.usage.add(&u);
            by_model.entry(it.model.clone()).or_default().add(&u);
            added = added.saturating_add(it.cost_nanos);
            r.failed += u32::from(it.error);
            r.cached += u32::from(it.cached);
            changes.push(Change::EvalResult(
                r.id.clone(),
                it.index,
                Some(it.result.clone()),
            ));
        }
        for (model, u) in by_model {
            let key = UsageKey {
                tenant: r.tenant.clone(),
                day: day.clone(),
                model,
            };
            let mut total = self.usage.get(&key).copied().unwrap_or_default();
            total.add(&u);
            changes.push(Change::Usage(key, Some(total)));
        }
        let spent_after = spent_before.saturating_add(added);
        if r.status == EvaluationStatus::Queued && !r.done.is_empty() {
            r.status = EvaluationStatus::Running;
        }
        let mut audit_draft = None;
        if r.done.len() >= r.total {
            r.status = EvaluationStatus::Completed;
            r.finished_at_ms = Some(at);
            audit_draft = audit(
                "evaluation.complete",
                &r,
                json!({
                    "items": r.total,
                    "failed": r.failed,
                    "prompt_tokens": r.usage.prompt_tokens,
                    "completion_tokens": r.usage.completion_tokens,
                    "cost_usd": r.usage.cost_usd(),
                }),
            );
        } else if let Some(budget) = self.budget_nanos(&r.tenant) {
            let soft = (budget as f64 * SOFT_BUDGET_RATIO) as u64;
            if spent_after >= budget {
                r.status = EvaluationStatus::BudgetExceeded;
                r.finished_at_ms = Some(at);
                audit_draft = audit(
                    "evaluation.budget_exceeded",
                    &r,
                    json!({"month": month, "spent_nanos": spent_after, "budget_nanos": budget}),
                );
            } else if spent_before < soft && spent_after >= soft {
                audit_draft = Some(AuditDraft {
                    action: "tenant.budget_soft_threshold",
                    resource: format!("tenants/{}", r.tenant),
                    tenant: Some(r.tenant.clone()),
                    details: json!({
                        "month": month,
                        "spent_nanos": spent_after,
                        "budget_nanos": budget,
                        "ratio": SOFT_BUDGET_RATIO,
                    }),
                });
            }
        }
        if r == *old {
            // Nothing new (a repeated checkpoint): nothing to write.
            return Ok(Plan {
                output: CommandOutput::Evaluation(Box::new(r)),
                changes: vec![],
                audit: None,
            });
        }
        r.updated_at_ms = at;
        changes.push(Change::Evaluation(r.id.clone(), Some(r.clone())));
        Ok(Plan {
            output: CommandOutput::Evaluation(Box::new(r)),
            changes,
            audit: audit_draft,
        })
    }

    pub(crate) fn plan_reassign(
        &self,
        at: u64,
        id: &str,
        epoch: u64,
        owner: u64,
    ) -> Result<Plan, ApplyError> {
        let old = self.evaluation(id)?;
        if old.status.is_terminal() {
            return Err(ended(old));
        }
        if epoch != old.epoch {
            return Err(ApplyError::Conflict(format!(
                "evaluation {id:?} is at epoch {}, not {epoch}",
                old.epoch
            )));
        }
        let mut r = old.clone();
        r.owner = owner;
        r.epoch = epoch + 1;
        r.updated_at_ms = at;
        let details = json!({
            "from": old.owner.to_string(),
            "to": owner.to_string(),
            "epoch": r.epoch,
            "done": r.done.len(),
        });
        Ok(Plan {
            output: CommandOutput::Evaluation(Box::new(r.clone())),
            changes: vec![Change::Evaluation(r.id.clone(), Some(r.clone()))],
            audit: audit("evaluation.reassign", &r, details),
        })
    }

    pub(crate) fn plan_cancel(&self, at: u64, tenant: &str, id: &str) -> Result<Plan, ApplyError> {
        let old = self
            .evaluations
            .get(id)
            .filter(|r| r.tenant == tenant)
            .ok_or_else(|| not_found("evaluation", id))?;
        if old.status.is_terminal() {
            return Ok(Plan {
                output: CommandOutput::Evaluation(Box::new(old.clone())),
                changes: vec![],
                audit: None,
            });
        }
        let mut r = old.clone();
        r.status = EvaluationStatus::Cancelled;
        r.updated_at_ms = at;
        r.finished_at_ms = Some(at);
        let details = json!({"done": r.done.len(), "items": r.total});
        Ok(Plan {
            output: CommandOutput::Evaluation(Box::new(r.clone())),
            changes: vec![Change::Evaluation(r.id.clone(), Some(r.clone()))],
            audit: audit("evaluation.cancel", &r, details),
        })
    }

    /// Deletes an ended evaluation of `tenant` with its spec and results; one still
    /// queued or running is refused (cancel it first).
    pub(crate) fn plan_delete(&self, tenant: &str, id: &str) -> Result<Plan, ApplyError> {
        let r = self
            .evaluations
            .get(id)
            .filter(|r| r.tenant == tenant)
            .ok_or_else(|| not_found("evaluation", id))?;
        if !r.status.is_terminal() {
            return Err(ApplyError::Conflict(format!(
                "evaluation {id:?} is {}: cancel it before deleting it",
                r.status.as_str()
            )));
        }
        let mut changes: Vec<Change> = (0..r.total)
            .map(|i| Change::EvalResult(r.id.clone(), i, None))
            .collect();
        changes.push(Change::EvalSpec(r.id.clone(), None));
        changes.push(Change::Evaluation(r.id.clone(), None));
        let details = json!({"status": r.status.as_str(), "items": r.total, "done": r.done.len()});
        Ok(Plan {
            output: CommandOutput::Deleted,
            changes,
            audit: audit("evaluation.delete", r, details),
        })
    }

    /// `tenant`'s evaluations that have not ended, as cancelled at `at`.
    pub(crate) fn cancel_running_of(&self, tenant: &str, at: u64) -> Vec<EvaluationRecord> {
        self.evaluations
            .values()
            .filter(|r| r.tenant == tenant && !r.status.is_terminal())
            .map(|old| {
                let mut r = old.clone();
                r.status = EvaluationStatus::Cancelled;
                r.error = Some("tenant suspended".into());
                r.updated_at_ms = at;
                r.finished_at_ms = Some(at);
                r
            })
            .collect()
    }

    pub(crate) fn plan_fail(
        &self,
        at: u64,
        id: &str,
        epoch: u64,
        error: &str,
    ) -> Result<Plan, ApplyError> {
        let old = self.evaluation(id)?;
        if old.status.is_terminal() {
            return Err(ended(old));
        }
        if epoch != old.epoch {
            return Err(ApplyError::Conflict(format!(
                "stale epoch {epoch} for evaluation {id:?}"
            )));
        }
        let mut r = old.clone();
        r.status = EvaluationStatus::Failed;
        r.error = Some(error.to_string());
        r.updated_at_ms = at;
        r.finished_at_ms = Some(at);
        let details = json!({"error": error, "done": r.done.len()});
        Ok(Plan {
            output: CommandOutput::Evaluation(Box::new(r.clone())),
            changes: vec![Change::Evaluation(r.id.clone(), Some(r.clone()))],
            audit: audit("evaluation.fail", &r, details),
        })
    }
}
