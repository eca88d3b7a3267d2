//! The state machine: current records plus the deterministic apply of a proposal.

use crate::chain::AuditHead;
use colony_core::apikey::{key_id_of, secret_matches, ApiKey};
use colony_core::audit::AuditEntry;
use colony_core::command::{
    ApplyError, Command, CommandOutput, CommandResult, Proposal, ProposalMeta, COMMAND_FORMAT,
};
use colony_core::credential::{StoredCredential, MAX_PER_TENANT};
use colony_core::evaluation::{EvaluationRecord, UsageTotals};
use colony_core::pricing::Price;
use colony_core::tenant::{Tenant, TenantStatus};
use colony_core::tier::Tier;
use colony_core::versioned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A change to one record, for the storage layer to persist. `None` deletes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The admin token's hash.
    AdminTokenHash(String),
    /// A tier by name.
    Tier(String, Option<Tier>),
    /// A tenant by id.
    Tenant(String, Option<Tenant>),
    /// An API key by key id.
    Key(String, Option<ApiKey>),
    /// A model's price by model name.
    Price(String, Option<Price>),
    /// An evaluation by id.
    Evaluation(String, Option<EvaluationRecord>),
    /// One case result of an evaluation: (evaluation id, item index). Persisted but not
    /// held in [`State`]: results are read from storage.
    EvalResult(String, u32, Option<Value>),
    /// A tenant's usage of one model on one day.
    Usage(UsageKey, Option<UsageTotals>),
    /// An evaluation's spec, by evaluation id (written once, at submission).
    EvalSpec(String, Option<Value>),
    /// A tenant's provider credential by (tenant, name).
    Credential(String, String, Option<StoredCredential>),
}

/// Whose usage, which day (`YYYY-MM-DD`, UTC), which model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UsageKey {
    /// Tenant id.
    pub tenant: String,
    /// Day, `YYYY-MM-DD`.
    pub day: String,
    /// Model name.
    pub model: String,
}

/// The result of applying one proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// What the proposer is told.
    pub result: CommandResult,
    /// Records to persist (empty when rejected).
    pub changes: Vec<Change>,
    /// The audit entry appended (none when rejected or nothing changed).
    pub audit: Option<AuditEntry>,
}

/// Everything the state machine holds except the audit entries themselves, which the
/// storage layer keeps (only the chain head is needed to extend the chain).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// Hex sha256 of the admin token, once the cluster is initialised.
    pub admin_token_hash: Option<String>,
    /// Tiers by name.
    pub tiers: BTreeMap<String, Tier>,
    /// Tenants by id.
    pub tenants: BTreeMap<String, Tenant>,
    /// API keys by key id.
    pub keys: BTreeMap<String, ApiKey>,
    /// Model prices by model name.
    pub prices: BTreeMap<String, Price>,
    /// Evaluations by id (their case results live in storage only).
    pub evaluations: BTreeMap<String, EvaluationRecord>,
    /// Evaluation specs by evaluation id.
    pub eval_specs: BTreeMap<String, Value>,
    /// Usage by tenant, day and model.
    pub usage: BTreeMap<UsageKey, UsageTotals>,
    /// Tenants' provider credentials by (tenant, name), values sealed.
    pub credentials: BTreeMap<(String, String), StoredCredential>,
    /// The audit chain's last entry.
    pub audit_head: AuditHead,
}

/// Why a presented API key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Not a key of this cluster (malformed, unknown id, or wrong secret).
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// The tenant is suspended.
    Suspended,
}

/// What a command would do, before it is committed to the state.
pub(crate) struct Plan {
    pub(crate) output: CommandOutput,
    pub(crate) changes: Vec<Change>,
    pub(crate) audit: Option<AuditDraft>,
}

pub(crate) struct AuditDraft {
    pub(crate) action: &'static str,
    pub(crate) resource: String,
    pub(crate) tenant: Option<String>,
    pub(crate) details: Value,
}

pub(crate) fn not_found(kind: &str, id: &str) -> ApplyError {
    ApplyError::NotFound {
        kind: kind.into(),
        id: id.into(),
    }
}

pub(crate) fn exists(kind: &str, id: &str) -> ApplyError {
    ApplyError::AlreadyExists {
        kind: kind.into(),
        id: id.into(),
    }
}

impl State {
    /// Applies one proposal. Deterministic: the same state and proposal give the same
    /// result, changes and audit entry on every replica. A rejected command changes nothing.
    pub fn apply(&mut self, proposal: &Proposal) -> Applied {
        // Raft entries reach the state machine decoded by openraft, so the version check
        // of the proposal format is here, and the same on every replica.
        if versioned::check_version::<Proposal>(proposal.format).is_err() {
            let err = ApplyError::Unsupported(format!(
                "command format {} is newer than this node supports ({COMMAND_FORMAT})",
                proposal.format
            ));
            return Applied {
                result: Err(err),
                changes: vec![],
                audit: None,
            };
        }
        match self.plan(&proposal.meta, &proposal.command) {
            Err(e) => Applied {
                result: Err(e),
                changes: vec![],
                audit: None,
            },
            Ok(plan) => {
                for change in &plan.changes {
                    self.commit(change.clone());
                }
                let audit = plan
                    .audit
                    .map(|draft| self.append_audit(&proposal.meta, draft));
                Applied {
                    result: Ok(plan.output),
                    changes: plan.changes,
                    audit,
                }
            }
        }
    }

    /// Applies a persisted record change (used when loading from storage, too).
    pub fn commit(&mut self, change: Change) {
        match change {
            Change::AdminTokenHash(h) => self.admin_token_hash = Some(h),
            Change::Tier(name, Some(t)) => {
                self.tiers.insert(name, t);
            }
            Change::Tier(name, None) => {
                self.tiers.remove(&name);
            }
            Change::Tenant(id, Some(t)) => {
                self.tenants.insert(id, t);
            }
            Change::Tenant(id, None) => {
                self.tenants.remove(&id);
            }
            Change::Key(id, Some(k)) => {
                self.keys.insert(id, k);
            }
            Change::Key(id, None) => {
                self.keys.remove(&id);
            }
            Change::Price(model, Some(p)) => {
                self.prices.insert(model, p);
            }
            Change::Price(model, None) => {
                self.prices.remove(&model);
            }
            Change::Evaluation(id, Some(e)) => {
                self.evaluations.insert(id, e);
            }
            Change::Evaluation(id, None) => {
                self.evaluations.remove(&id);
            }
            // Results are only persisted; the storage layer serves them.
            Change::EvalResult(..) => {}
            Change::Usage(k, Some(u)) => {
                self.usage.insert(k, u);
            }
            Change::Usage(k, None) => {
                self.usage.remove(&k);
            }
            Change::EvalSpec(id, Some(v)) => {
                self.eval_specs.insert(id, v);
            }
            Change::EvalSpec(id, None) => {
                self.eval_specs.remove(&id);
            }
            Change::Credential(tenant, name, Some(c)) => {
                self.credentials.insert((tenant, name), c);
            }
            Change::Credential(tenant, name, None) => {
                self.credentials.remove(&(tenant, name));
            }
        }
    }

    /// The keys of one tenant, in key id order.
    pub fn keys_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a ApiKey> + 'a {
        self.keys.values().filter(move |k| k.tenant == tenant)
    }

    /// Resolves a presented API key secret to its tenant and key.
    pub fn authenticate(
        &self,
        secret: &str,
        now_ms: u64,
    ) -> Result<(&Tenant, &ApiKey), AuthFailure> {
        let id = key_id_of(secret).ok_or(AuthFailure::Unknown)?;
        let key = self.keys.get(id).ok_or(AuthFailure::Unknown)?;
        if !secret_matches(secret, &key.secret_hash) {
            return Err(AuthFailure::Unknown);
        }
        if key.revoked_at_ms.is_some() {
            return Err(AuthFailure::Revoked);
        }
        if !key.is_valid_at(now_ms) {
            return Err(AuthFailure::Expired);
        }
        let tenant = self.tenants.get(&key.tenant).ok_or(AuthFailure::Unknown)?;
        if tenant.status == TenantStatus::Suspended {
            return Err(AuthFailure::Suspended);
        }
        Ok((tenant, key))
    }

    fn append_audit(&mut self, meta: &ProposalMeta, d: AuditDraft) -> AuditEntry {
        let mut entry = AuditEntry {
            seq: self.audit_head.seq + 1,
            at_ms: meta.at_ms,
            principal: meta.principal.clone(),
            action: d.action.to_string(),
            resource: d.resource,
            tenant: d.tenant,
            request_id: meta.request_id.clone(),
            details: d.details,
            prev_hash: hex::encode(self.audit_head.hash),
            hash: String::new(),
        };
        let hash = entry.compute_hash(&self.audit_head.hash);
        entry.hash = hex::encode(hash);
        self.audit_head = AuditHead {
            seq: entry.seq,
            hash,
        };
        entry
    }

    fn plan(&self, meta: &ProposalMeta, cmd: &Command) -> Result<Plan, ApplyError> {
        let at = meta.at_ms;
        let audit = |action, resource: String, tenant: Option<&str>, details| {
            Some(AuditDraft {
                action,
                resource,
                tenant: tenant.map(str::to_string),
                details,
            })
        };
        Ok(match cmd {
            Command::InitCluster {
                admin_token_hash,
                tiers,
            } => {
                if self.admin_token_hash.is_some() {
                    return Err(ApplyError::Conflict(
                        "the cluster is already initialised".into(),
                    ));
                }
                let mut changes = vec![Change::AdminTokenHash(admin_token_hash.clone())];
                changes.extend(
                    tiers
                        .iter()
                        .map(|t| Change::Tier(t.name.clone(), Some(t.clone()))),
                );
                let names: Vec<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
                Plan {
                    output: CommandOutput::Initialized,
                    changes,
                    audit: audit(
                        "cluster.init",
                        "cluster".into(),
                        None,
                        json!({ "tiers": names }),
                    ),
                }
            }
            Command::CreateTier { tier } => {
                if self.tiers.contains_key(&tier.name) {
                    return Err(exists("tier", &tier.name));
                }
                let mut t = tier.clone();
                t.created_at_ms = at;
                t.updated_at_ms = at;
                Plan {
                    output: CommandOutput::Tier(t.clone()),
                    changes: vec![Change::Tier(t.name.clone(), Some(t.clone()))],
                    audit: audit(
                        "tier.create",
                        format!("tiers/{}", t.name),
                        None,
                        tier_details(&t),
                    ),
                }
            }
            Command::UpdateTier { tier } => {
                let old = self
                    .tiers
                    .get(&tier.name)
                    .ok_or_else(|| not_found("tier", &tier.name))?;
                let mut t = tier.clone();
                t.created_at_ms = old.created_at_ms;
                t.updated_at_ms = at;
                Plan {
                    output: CommandOutput::Tier(t.clone()),
                    changes: vec![Change::Tier(t.name.clone(), Some(t.clone()))],
                    audit: audit(
                        "tier.update",
                        format!("tiers/{}", t.name),
                        None,
                        tier_details(&t),
                    ),
                }
            }
            Command::DeleteTier { name } => {
                if !self.tiers.contains_key(name) {
                    return Err(not_found("tier", name));
                }
                let users = self.tenants.values().filter(|t| &t.tier == name).count();
                if users > 0 {
                    return Err(ApplyError::Conflict(format!(
                        "tier {name:?} is used by {users} tenant(s); move them to another tier first"
                    )));
                }
                Plan {
                    output: CommandOutput::Deleted,
                    changes: vec![Change::Tier(name.clone(), None)],
                    audit: audit("tier.delete", format!("tiers/{name}"), None, json!({})),
                }
            }
            Command::CreateTenant { tenant, key } => {
                if self.tenants.contains_key(&tenant.id) {
                    return Err(exists("tenant", &tenant.id));
                }
                if !self.tiers.contains_key(&tenant.tier) {
                    return Err(not_found("tier", &tenant.tier));
                }
                if self.keys.contains_key(&key.id) {
                    return Err(exists("key", &key.id));
                }
                let mut t = tenant.clone();
                t.created_at_ms = at;
                t.updated_at_ms = at;
                let mut k = key.clone();
                k.tenant = t.id.clone();
                k.created_at_ms = at;
                Plan {
                    output: CommandOutput::Tenant(t.clone()),
                    changes: vec![
                        Change::Tenant(t.id.clone(), Some(t.clone())),
                        Change::Key(k.id.clone(), Some(k.clone())),
                    ],
                    audit: audit(
                        "tenant.create",
                        format!("tenants/{}", t.id),
                        Some(&t.id),
                        json!({ "name": t.name, "tier": t.tier, "key_id": k.id }),
                    ),
                }
            }
            Command::UpdateTenant { id, patch } => {
                let old = self
                    .tenants
                    .get(id)
                    .ok_or_else(|| not_found("tenant", id))?;
                if let Some(tier) = &patch.tier {
                    if !self.tiers.contains_key(tier) {
                        return Err(not_found("tier", tier));
                    }
                }
                let mut t = old.clone();
                if let Some(n) = &patch.name {
                    t.name = n.clone();
                }
                if let Some(tier) = &patch.tier {
                    t.tier = tier.clone();
                }
                if let Some(o) = &patch.overrides {
                    t.overrides = o.clone();
                }
                if let Some(s) = patch.status {
                    t.status = s;
                }
                t.updated_at_ms = at;
                let mut details = serde_json::to_value(patch).unwrap_or(Value::Null);
                let mut changes = vec![Change::Tenant(id.clone(), Some(t.clone()))];
                // Suspending a tenant stops its running evaluations: its keys no longer
                // authenticate, so nobody could cancel them, and they would go on spending.
                if t.status == TenantStatus::Suspended && old.status != TenantStatus::Suspended {
                    let stopped = self.cancel_running_of(id, at);
                    if let Value::Object(m) = &mut details {
                        m.insert(
                            "evaluations_cancelled".into(),
                            json!(stopped.iter().map(|r| r.id.clone()).collect::<Vec<_>>()),
                        );
                    }
                    changes.extend(
                        stopped
                            .into_iter()
                            .map(|r| Change::Evaluation(r.id.clone(), Some(r))),
                    );
                }
                Plan {
                    output: CommandOutput::Tenant(t),
                    changes,
                    audit: audit("tenant.update", format!("tenants/{id}"), Some(id), details),
                }
            }
            Command::DeleteTenant { id } => {
                if !self.tenants.contains_key(id) {
                    return Err(not_found("tenant", id));
                }
                let mut changes = vec![Change::Tenant(id.clone(), None)];
                let key_ids: Vec<String> = self.keys_of(id).map(|k| k.id.clone()).collect();
                changes.extend(key_ids.iter().map(|k| Change::Key(k.clone(), None)));
                changes.extend(
                    self.credentials
                        .keys()
                        .filter(|(t, _)| t == id)
                        .map(|(t, n)| Change::Credential(t.clone(), n.clone(), None)),
                );
                // Its running evaluations stop with it: nobody could follow or cancel them,
                // and a new tenant reusing the id must not inherit them.
                changes.extend(
                    self.cancel_running_of(id, at)
                        .into_iter()
                        .map(|r| Change::Evaluation(r.id.clone(), Some(r))),
                );
                Plan {
                    output: CommandOutput::Deleted,
                    changes,
                    audit: audit(
                        "tenant.delete",
                        format!("tenants/{id}"),
                        Some(id),
                        json!({ "keys_removed": key_ids }),
                    ),
                }
            }
            Command::IssueKey { key } => {
                if !self.tenants.contains_key(&key.tenant) {
                    return Err(not_found("tenant", &key.tenant));
                }
                if self.keys.contains_key(&key.id) {
                    return Err(exists("key", &key.id));
                }
                let mut k = key.clone();
                k.created_at_ms = at;
                Plan {
                    output: CommandOutput::Key(k.clone()),
                    changes: vec![Change::Key(k.id.clone(), Some(k.clone()))],
                    audit: audit(
                        "key.issue",
                        format!("tenants/{}/keys/{}", k.tenant, k.id),
                        Some(&k.tenant),
                        json!({ "key_id": k.id, "name": k.name, "expires_at_ms": k.expires_at_ms }),
                    ),
                }
            }
            Command::RotateKey {
                old_key_id,
                grace_ms,
                new_key,
            } => {
                let old = self
                    .keys
                    .get(old_key_id)
                    .filter(|k| k.tenant == new_key.tenant)
                    .ok_or_else(|| not_found("key", old_key_id))?;
                if !old.is_valid_at(at) {
                    return Err(ApplyError::Conflict(format!(
                        "key {old_key_id:?} is revoked or expired and cannot be rotated"
                    )));
                }
                if self.keys.contains_key(&new_key.id) {
                    return Err(exists("key", &new_key.id));
                }
                let mut old = old.clone();
                let grace_end = at.saturating_add(*grace_ms);
                old.expires_at_ms = Some(old.expires_at_ms.map_or(grace_end, |e| e.min(grace_end)));
                let mut new = new_key.clone();
                new.created_at_ms = at;
                Plan {
                    output: CommandOutput::Rotated {
                        old: old.clone(),
                        new: new.clone(),
                    },
                    changes: vec![
                        Change::Key(old.id.clone(), Some(old.clone())),
                        Change::Key(new.id.clone(), Some(new.clone())),
                    ],
                    audit: audit(
                        "key.rotate",
                        format!("tenants/{}/keys/{}", old.tenant, old.id),
                        Some(&old.tenant),
                        json!({
                            "old_key_id": old.id,
                            "new_key_id": new.id,
                            "old_expires_at_ms": old.expires_at_ms,
                        }),
                    ),
                }
            }
            Command::RevokeKey { tenant, key_id } => {
                let key = self
                    .keys
                    .get(key_id)
                    .filter(|k| &k.tenant == tenant)
                    .ok_or_else(|| not_found("key", key_id))?;
                if key.revoked_at_ms.is_some() {
                    // Revoking twice is a no-op: nothing changes, so nothing is audited.
                    return Ok(Plan {
                        output: CommandOutput::Key(key.clone()),
                        changes: vec![],
                        audit: None,
                    });
                }
                let mut k = key.clone();
                k.revoked_at_ms = Some(at);
                Plan {
                    output: CommandOutput::Key(k.clone()),
                    changes: vec![Change::Key(k.id.clone(), Some(k.clone()))],
                    audit: audit(
                        "key.revoke",
                        format!("tenants/{tenant}/keys/{key_id}"),
                        Some(tenant),
                        json!({ "key_id": key_id }),
                    ),
                }
            }
            Command::SetPrice { price } => {
                let mut p = price.clone();
                p.updated_at_ms = at;
                Plan {
                    output: CommandOutput::Price(p.clone()),
                    changes: vec![Change::Price(p.model.clone(), Some(p.clone()))],
                    audit: audit(
                        "price.set",
                        format!("pricing/{}", p.model),
                        None,
                        json!({
                            "input_per_1k_usd": p.input_per_1k_usd,
                            "output_per_1k_usd": p.output_per_1k_usd,
                        }),
                    ),
                }
            }
            Command::DeletePrice { model } => {
                if !self.prices.contains_key(model) {
                    return Err(not_found("price", model));
                }
                Plan {
                    output: CommandOutput::Deleted,
                    changes: vec![Change::Price(model.clone(), None)],
                    audit: audit("price.delete", format!("pricing/{model}"), None, json!({})),
                }
            }
            Command::SubmitEvaluation {
                record,
                spec,
                max_live,
                max_stored,
            } => self.plan_submit(at, record, spec, *max_live, *max_stored)?,
            Command::CheckpointEvaluation { id, epoch, items } => {
                self.plan_checkpoint(at, id, *epoch, items)?
            }
            Command::ReassignEvaluation { id, epoch, owner } => {
                self.plan_reassign(at, id, *epoch, *owner)?
            }
            Command::CancelEvaluation { tenant, id } => self.plan_cancel(at, tenant, id)?,
            Command::DeleteEvaluation { tenant, id } => self.plan_delete(tenant, id)?,
            Command::PutCredential { credential } => {
                let c = credential;
                if !self.tenants.contains_key(&c.tenant) {
                    return Err(not_found("tenant", &c.tenant));
                }
                let k = (c.tenant.clone(), c.name.clone());
                let old = self.credentials.get(&k);
                let count = self
                    .credentials
                    .keys()
                    .filter(|(t, _)| *t == c.tenant)
                    .count();
                if old.is_none() && count >= MAX_PER_TENANT {
                    return Err(ApplyError::Conflict(format!(
                        "tenant {:?} has {count} credentials, the most allowed",
                        c.tenant
                    )));
                }
                let mut stored = c.clone();
                stored.created_at_ms = old.map_or(at, |o| o.created_at_ms);
                stored.updated_at_ms = at;
                Plan {
                    output: CommandOutput::Credential(stored.clone()),
                    changes: vec![Change::Credential(k.0, k.1, Some(stored.clone()))],
                    // Never the value, sealed or not.
                    audit: audit(
                        if old.is_some() {
                            "credential.update"
                        } else {
                            "credential.create"
                        },
                        format!("tenants/{}/credentials/{}", c.tenant, c.name),
                        Some(&c.tenant),
                        // The CA it trusts, by fingerprint (a change of trust is audited).
                        json!({
                            "allowed_hosts": stored.allowed_hosts,
                            "ca_pem_sha256": stored.ca_pem.as_ref().map(|p| {
                                use sha2::Digest;
                                hex::encode(sha2::Sha256::digest(p.as_bytes()))
                            }),
                        }),
                    ),
                }
            }
            Command::DeleteCredential { tenant, name } => {
                let k = (tenant.clone(), name.clone());
                if !self.credentials.contains_key(&k) {
                    return Err(not_found("credential", name));
                }
                Plan {
                    output: CommandOutput::Deleted,
                    changes: vec![Change::Credential(k.0, k.1, None)],
                    audit: audit(
                        "credential.delete",
                        format!("tenants/{tenant}/credentials/{name}"),
                        Some(tenant),
                        json!({}),
                    ),
                }
            }
            Command::FailEvaluation { id, epoch, error } => {
                self.plan_fail(at, id, *epoch, error)?
            }
        })
    }
}

fn tier_details(t: &Tier) -> Value {
    json!({
        "limits": t.limits,
        "endpoint_weights": t.endpoint_weights,
        "concurrency": t.concurrency,
        "monthly_budget_usd": t.monthly_budget_usd,
    })
}

#[cfg(test)]
mod tests;
