//! Reads of the audit log: [`AuditQuery`] (filters and a cursor) and its pages, and the
//! verification of the whole hash chain against the state machine's head. Apart from the
//! store because these only read the `a/…` keys, never write them (bar a test helper),
//! and take no part in applying or snapshots.

use super::error::StoreError;
use super::keys::{audit_key, audit_seq, decode};
use super::store::StateMachineStore;
use colony_core::audit::AuditEntry;
use colony_state::chain::BadEntry;
use colony_state::{verify_chain, ChainReport};

/// Filters and cursor for [`StateMachineStore::audit_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries concerning this tenant.
    pub tenant: Option<String>,
    /// Only this action; a value ending in `.` or `*` is a prefix (`tenant.*` matches
    /// `tenant.create`, `*` matches everything).
    pub action: Option<String>,
    /// Only entries by this principal.
    pub principal: Option<String>,
    /// Only entries at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Only entries before this time (exclusive).
    pub until_ms: Option<u64>,
    /// Cursor: only entries with a greater sequence number (0 = from the start).
    pub after_seq: u64,
    /// At most this many entries (0 is treated as 1, so a cursor always moves).
    pub limit: usize,
}

/// One page of audit entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditPage {
    /// Matching entries in sequence order.
    pub entries: Vec<AuditEntry>,
    /// When the page is full, the sequence number of its last entry: pass it as
    /// [`AuditQuery::after_seq`] to get the next page. `None` when the scan reached the end.
    pub next_after_seq: Option<u64>,
}

impl AuditQuery {
    fn matches(&self, e: &AuditEntry) -> bool {
        if let Some(t) = &self.tenant {
            if e.tenant.as_deref() != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(p) = &self.principal {
            if &e.principal != p {
                return false;
            }
        }
        if let Some(a) = &self.action {
            let ok = if let Some(prefix) = a.strip_suffix('*') {
                e.action.starts_with(prefix)
            } else if a.ends_with('.') {
                e.action.starts_with(a.as_str())
            } else {
                &e.action == a
            };
            if !ok {
                return false;
            }
        }
        if self.since_ms.is_some_and(|s| e.at_ms < s) {
            return false;
        }
        if self.until_ms.is_some_and(|u| e.at_ms >= u) {
            return false;
        }
        true
    }
}

impl StateMachineStore {
    /// One page of audit entries matching `q`, in sequence order. Blocking (reads sled):
    /// call it from `spawn_blocking`.
    pub fn audit_page(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let limit = q.limit.max(1);
        let mut page = AuditPage::default();
        let Some(start) = q.after_seq.checked_add(1) else {
            return Ok(page);
        };
        // Entries are immutable once written, so no lock is needed to read them.
        for item in self.inner.sm.range(audit_key(start)..=audit_key(u64::MAX)) {
            let (key, value) = item?;
            let entry: AuditEntry = decode(&key, &value)?;
            if !q.matches(&entry) {
                continue;
            }
            page.entries.push(entry);
            if page.entries.len() == limit {
                page.next_after_seq = page.entries.last().map(|e| e.seq);
                break;
            }
        }
        Ok(page)
    }

    /// Recomputes the whole audit hash chain and checks that it ends at the state
    /// machine's head. An entry that cannot be decoded is reported as the first bad entry.
    /// Blocking: call it from `spawn_blocking`.
    pub fn audit_verify(&self) -> Result<ChainReport, StoreError> {
        // Only the entries up to the head taken now are checked, so commands applied
        // during the scan do not look like a chain running past its head.
        let head = self
            .inner
            .state
            .read()
            .map_err(|_| StoreError::Poisoned)?
            .audit_head;
        let mut undecodable: Option<(u64, String)> = None;
        let mut read_error: Option<sled::Error> = None;
        let range = if head.seq == 0 {
            // Nothing to read; an empty range keeps the code below uniform.
            self.inner.sm.range(audit_key(1)..audit_key(1))
        } else {
            self.inner.sm.range(audit_key(1)..=audit_key(head.seq))
        };
        let entries = range.map_while(|item| match item {
            Err(e) => {
                read_error = Some(e);
                None
            }
            Ok((key, value)) => match rmp_serde::from_slice::<AuditEntry>(&value) {
                Ok(entry) => Some(entry),
                Err(e) => {
                    let seq = audit_seq(&key).unwrap_or(0);
                    undecodable = Some((seq, format!("entry cannot be decoded: {e}")));
                    None
                }
            },
        });
        let report = verify_chain(entries, head);
        if let Some(e) = read_error {
            return Err(e.into());
        }
        match undecodable {
            // The chain broke before the bad entry: that is the first problem.
            Some((seq, _)) if report.first_bad.as_ref().is_some_and(|b| b.seq < seq) => Ok(report),
            // Otherwise verify_chain only saw a short chain; the real cause is the bad entry.
            Some((seq, reason)) => Ok(ChainReport {
                ok: false,
                entries_checked: report.entries_checked + 1,
                head_hash: report.head_hash,
                first_bad: Some(BadEntry { seq, reason }),
            }),
            None => Ok(report),
        }
    }

    /// Test helper: rewrites stored audit entry `seq` with `f`, leaving the chain head
    /// alone, to simulate tampering. Panics if the entry does not exist or cannot be read.
    #[cfg(any(test, feature = "testsuite"))]
    pub fn tamper_audit_entry_for_test(&self, seq: u64, f: impl FnOnce(&mut AuditEntry)) {
        let key = audit_key(seq);
        let mut entry: AuditEntry = match super::keys::get_decoded(&self.inner.sm, &key) {
            Ok(Some(e)) => e,
            Ok(None) => panic!("no audit entry {seq}"),
            Err(e) => panic!("cannot read audit entry {seq}: {e}"),
        };
        f(&mut entry);
        let written = super::keys::encode("audit entry", &entry)
            .and_then(|v| Ok(self.inner.sm.insert(key, v)?));
        if let Err(e) = written {
            panic!("cannot write audit entry {seq}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_filter_prefixes() {
        let e = AuditEntry {
            seq: 1,
            at_ms: 10,
            principal: "admin".into(),
            action: "tenant.create".into(),
            resource: "tenants/a".into(),
            tenant: Some("a".into()),
            request_id: "r".into(),
            details: serde_json::json!({}),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let q = |a: &str| AuditQuery {
            action: Some(a.into()),
            ..Default::default()
        };
        assert!(q("tenant.create").matches(&e));
        assert!(q("tenant.*").matches(&e));
        assert!(q("tenant.").matches(&e));
        assert!(q("*").matches(&e));
        assert!(!q("tenant").matches(&e));
        assert!(!q("tier.*").matches(&e));
        assert!(AuditQuery {
            since_ms: Some(10),
            until_ms: Some(11),
            ..Default::default()
        }
        .matches(&e));
        assert!(!AuditQuery {
            until_ms: Some(10),
            ..Default::default()
        }
        .matches(&e));
    }
}
