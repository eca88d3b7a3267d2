//! Audit entries and the canonical bytes of the hash chain.
//!
//! `hash = sha256(prev_hash || canonical_bytes(entry))`, where `prev_hash` is the raw 32 bytes
//! of the previous entry's hash (32 zero bytes before the first entry) and the canonical bytes
//! are the compact JSON object of the fields `seq, at_ms, principal, action, resource, tenant,
//! request_id, details` in that order, with object keys inside `details` sorted bytewise.
//! Anyone holding the entries from `GET /v1/audit` can recompute the chain.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// One audit entry as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, starting at 1.
    pub seq: u64,
    /// When the change was proposed (ms since the Unix epoch, stamped by the proposer).
    pub at_ms: u64,
    /// Who made the change, e.g. `admin`.
    pub principal: String,
    /// What was done, e.g. `tenant.create`.
    pub action: String,
    /// What it was done to, e.g. `tenants/acme`.
    pub resource: String,
    /// The tenant concerned, if any.
    pub tenant: Option<String>,
    /// The request id of the HTTP request that caused it.
    pub request_id: String,
    /// Structured details; never secrets.
    pub details: Value,
    /// Hex hash of the previous entry.
    pub prev_hash: String,
    /// Hex hash of this entry.
    pub hash: String,
}

impl AuditEntry {
    /// The bytes the chain hashes for this entry (everything but the hashes).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        let mut field = |name: &str, value: &Value, first: bool| {
            if !first {
                out.push(b',');
            }
            write_canonical(&Value::String(name.to_string()), &mut out);
            out.push(b':');
            write_canonical(value, &mut out);
        };
        field("seq", &Value::from(self.seq), true);
        field("at_ms", &Value::from(self.at_ms), false);
        field("principal", &Value::from(self.principal.as_str()), false);
        field("action", &Value::from(self.action.as_str()), false);
        field("resource", &Value::from(self.resource.as_str()), false);
        field(
            "tenant",
            &self.tenant.as_deref().map_or(Value::Null, Value::from),
            false,
        );
        field("request_id", &Value::from(self.request_id.as_str()), false);
        field("details", &self.details, false);
        out.push(b'}');
        out
    }

    /// The hash this entry should have after `prev`.
    pub fn compute_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(prev);
        h.update(self.canonical_bytes());
        h.finalize().into()
    }
}

/// Writes `v` as compact JSON with object keys sorted, independent of how the
/// `serde_json` build orders maps (the `preserve_order` feature would change it).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // Scalars have one compact serialization; writing into a Vec cannot fail.
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// Parses a hex hash into 32 bytes.
pub fn parse_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_hash).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(details: Value) -> AuditEntry {
        AuditEntry {
            seq: 1,
            at_ms: 1_700_000_000_000,
            principal: "admin".into(),
            action: "tenant.create".into(),
            resource: "tenants/acme".into(),
            tenant: Some("acme".into()),
            request_id: "r1".into(),
            details,
            prev_hash: hex::encode(GENESIS_HASH),
            hash: String::new(),
        }
    }

    #[test]
    fn canonical_bytes_are_sorted_and_compact() {
        let e = entry(json!({"z": 1, "a": {"y": [1, "x\"y"], "b": null}}));
        let text = String::from_utf8(e.canonical_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"seq":1,"at_ms":1700000000000,"principal":"admin","action":"tenant.create","resource":"tenants/acme","tenant":"acme","request_id":"r1","details":{"a":{"b":null,"y":[1,"x\"y"]},"z":1}}"#
        );
    }

    #[test]
    fn hash_depends_on_prev_and_content() {
        let e = entry(json!({}));
        let h0 = e.compute_hash(&GENESIS_HASH);
        assert_ne!(h0, e.compute_hash(&[1; 32]));
        let mut e2 = e.clone();
        e2.resource = "tenants/other".into();
        assert_ne!(h0, e2.compute_hash(&GENESIS_HASH));
        assert_eq!(parse_hash(&hex::encode(h0)), Some(h0));
        assert_eq!(parse_hash("zz"), None);
    }
}
