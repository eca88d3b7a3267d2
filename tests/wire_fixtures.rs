//! Golden fixtures of every released wire version: Raft commands (as stored in the log),
//! the Router's payloads between nodes, the internal transport envelope, gossiped node
//! metadata and bucket state. Each fixture is the bytes an earlier binary wrote
//! (`tests/fixtures/wire-v1/<name>.msgpack`) with what they meant (`<name>.json`); this
//! binary must still decode every one to the same values (new optional fields may be
//! added: only the fields in the `.json` are compared).
//!
//! Fixtures are written once and never rewritten: `COLONY_WRITE_FIXTURES=1 cargo nextest
//! run -p colony --test wire_fixtures` adds the missing ones (for a new wire version, add
//! a new directory).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use colony_cluster::membership::{NodeMeta, NodeState};
use colony_core::apikey::ApiKey;
use colony_core::command::{Command, Proposal, ProposalMeta, TenantPatch};
use colony_core::evaluation::{CheckpointItem, EvaluationRecord, EvaluationStatus};
use colony_core::pricing::Price;
use colony_core::tenant::{Tenant, TenantStatus, TierOverrides};
use colony_core::tier::{Tier, WindowLimit};
use colony_limiter::wire::{
    BucketBatch, CheckBatch, CheckReply, HandoffAck, LeaseReply, LeaseRequest, PullReply,
    PullRequest, Wire, WireBucket, WireItem, WireOutcome,
};
use colony_limiter::{LeaseOp, LeaseOutcome};
use colony_ratelimit::{Algorithm, BucketState, Decision, Limit, Status};
use ractor::BytesConvertable;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/wire-v1")
}

/// How a fixture's bytes are decoded.
type Decode = fn(&[u8]) -> Result<Value, String>;

fn rmp<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<Value, String> {
    let v: T = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn proposal(bytes: &[u8]) -> Result<Value, String> {
    let p = Proposal::decode(bytes).map_err(|e| e.to_string())?;
    serde_json::to_value(p).map_err(|e| e.to_string())
}

fn wire<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<Value, String> {
    let Wire(body) = Wire::<T>::from_bytes(bytes.to_vec());
    serde_json::to_value(body?).map_err(|e| e.to_string())
}

fn envelope(bytes: &[u8]) -> Result<Value, String> {
    let env =
        colony_cluster::transport::wire::decode::<Proposal>(bytes).map_err(|e| e.to_string())?;
    Ok(
        json!({"from": env.from, "body": serde_json::to_value(env.body).map_err(|e| e.to_string())?}),
    )
}

fn meta(at: u64) -> ProposalMeta {
    ProposalMeta {
        at_ms: at,
        principal: "admin".into(),
        request_id: format!("req-{at}"),
    }
}

fn tier() -> Tier {
    Tier {
        name: "pro".into(),
        limits: vec![WindowLimit {
            limit: 1000,
            window_secs: 60,
        }],
        endpoint_weights: [("evaluations.submit".to_string(), 10)].into(),
        concurrency: Some(8),
        monthly_budget_usd: Some(25.5),
        created_at_ms: 1,
        updated_at_ms: 2,
    }
}

fn record() -> EvaluationRecord {
    EvaluationRecord {
        id: "ev_0123456789abcdef".into(),
        tenant: "acme".into(),
        total: 1,
        status: EvaluationStatus::Queued,
        owner: 7,
        epoch: 1,
        done: Default::default(),
        failed: 0,
        cached: 0,
        usage: Default::default(),
        error: None,
        created_at_ms: 10,
        updated_at_ms: 10,
        finished_at_ms: None,
    }
}

/// Every fixture of this wire version: name, how to decode it, and (when writing) the value
/// and its encoding by the current code.
fn fixtures() -> Vec<(String, Decode, Vec<u8>)> {
    let commands: Vec<(&str, Command)> = vec![
        (
            "init_cluster",
            Command::InitCluster {
                admin_token_hash: "ab".repeat(32),
                tiers: vec![tier()],
            },
        ),
        ("create_tier", Command::CreateTier { tier: tier() }),
        ("update_tier", Command::UpdateTier { tier: tier() }),
        ("delete_tier", Command::DeleteTier { name: "pro".into() }),
        (
            "create_tenant",
            Command::CreateTenant {
                tenant: Tenant {
                    id: "acme".into(),
                    name: "Acme".into(),
                    tier: "pro".into(),
                    overrides: TierOverrides {
                        concurrency: Some(2),
                        bypass_limits: true,
                        ..Default::default()
                    },
                    status: TenantStatus::Active,
                    created_at_ms: 3,
                    updated_at_ms: 3,
                },
                key: ApiKey {
                    id: "k1".into(),
                    tenant: "acme".into(),
                    name: Some("ci".into()),
                    secret_hash: "cd".repeat(32),
                    created_at_ms: 3,
                    expires_at_ms: Some(99),
                    revoked_at_ms: None,
                },
            },
        ),
        (
            "update_tenant",
            Command::UpdateTenant {
                id: "acme".into(),
                patch: TenantPatch {
                    name: Some("Acme Inc".into()),
                    status: Some(TenantStatus::Suspended),
                    ..Default::default()
                },
            },
        ),
        ("delete_tenant", Command::DeleteTenant { id: "acme".into() }),
        (
            "revoke_key",
            Command::RevokeKey {
                tenant: "acme".into(),
                key_id: "k1".into(),
            },
        ),
        (
            "set_price",
            Command::SetPrice {
                price: Price {
                    model: "gpt-4o-mini".into(),
                    input_per_1k_usd: 0.15,
                    output_per_1k_usd: 0.6,
                    updated_at_ms: 4,
                },
            },
        ),
        (
            "delete_price",
            Command::DeletePrice {
                model: "gpt-4o-mini".into(),
            },
        ),
        (
            "submit_evaluation",
            Command::SubmitEvaluation {
                // The cap is left out of the encoding when unset: these bytes are what
                // binaries from before it wrote.
                max_live: None,
                max_stored: None,
                record: record(),
                spec: json!({"providers": [{"id": "echo", "kind": "builtin", "model": "echo"}],
                    "prompt": "{{q}}", "cases": [{"vars": {"q": "x"}, "reference": "x"}],
                    "scorers": [{"type": "exact_match"}]}),
            },
        ),
        (
            "checkpoint_evaluation",
            Command::CheckpointEvaluation {
                id: "ev_0123456789abcdef".into(),
                epoch: 2,
                items: vec![CheckpointItem {
                    index: 0,
                    model: "echo".into(),
                    prompt_tokens: 3,
                    completion_tokens: 4,
                    cost_nanos: 5,
                    error: false,
                    cached: true,
                    result: json!({"output": "x", "passed": true}),
                }],
            },
        ),
        (
            "reassign_evaluation",
            Command::ReassignEvaluation {
                id: "ev_0123456789abcdef".into(),
                epoch: 2,
                owner: 9,
            },
        ),
        (
            "cancel_evaluation",
            Command::CancelEvaluation {
                tenant: "acme".into(),
                id: "ev_0123456789abcdef".into(),
            },
        ),
        (
            "fail_evaluation",
            Command::FailEvaluation {
                id: "ev_0123456789abcdef".into(),
                epoch: 2,
                error: "boom".into(),
            },
        ),
    ];
    let mut out: Vec<(String, Decode, Vec<u8>)> = commands
        .into_iter()
        .enumerate()
        .map(|(i, (name, c))| {
            (
                format!("proposal-{name}"),
                proposal as Decode,
                Proposal::new(meta(i as u64), c).encode().unwrap(),
            )
        })
        .collect();
    let limit = Limit {
        limit: 10,
        duration_ms: 1000,
        burst: Some(2),
    };
    let decision = Decision {
        status: Status::UnderLimit,
        limit: 10,
        remaining: 7,
        reset_after_ms: 300,
    };
    let bucket = {
        let mut slot = None;
        let window = Limit {
            burst: None,
            ..limit
        };
        colony_ratelimit::check(&mut slot, Algorithm::SlidingWindow, &window, 3, 5_000).unwrap();
        slot.unwrap()
    };
    out.push((
        "router-check_batch".into(),
        wire::<CheckBatch> as Decode,
        Wire(Ok(CheckBatch {
            request_id: "r1".into(),
            tenant_id: "acme".into(),
            from_node: 3,
            items: vec![WireItem {
                key: "4:acme/1:n/k".into(),
                algorithm: Algorithm::LeakyBucket,
                limit,
                hits: 2,
            }],
        }))
        .into_bytes(),
    ));
    out.push((
        "router-check_reply".into(),
        wire::<CheckReply> as Decode,
        Wire(Ok(CheckReply {
            results: vec![
                WireOutcome::Decision(decision),
                WireOutcome::Overloaded,
                WireOutcome::Unavailable,
                WireOutcome::Moved(4),
            ],
        }))
        .into_bytes(),
    ));
    out.push((
        "router-lease_request".into(),
        wire::<LeaseRequest> as Decode,
        Wire(Ok(LeaseRequest {
            request_id: "r2".into(),
            tenant_id: "acme".into(),
            from_node: 3,
            key: "lease/acme".into(),
            lease_id: "l1".into(),
            op: LeaseOp::Acquire {
                limit: 2,
                ttl_ms: 60_000,
            },
        }))
        .into_bytes(),
    ));
    out.push((
        "router-lease_reply".into(),
        wire::<LeaseReply> as Decode,
        Wire(Ok(LeaseReply {
            outcome: LeaseOutcome::Full {
                in_flight: 2,
                expires_in_ms: 10,
            },
        }))
        .into_bytes(),
    ));
    out.push((
        "router-pull_request".into(),
        wire::<PullRequest> as Decode,
        Wire(Ok(PullRequest {
            from_node: 5,
            keys: vec!["4:acme/1:n/k".into()],
        }))
        .into_bytes(),
    ));
    out.push((
        "router-pull_reply".into(),
        wire::<PullReply> as Decode,
        Wire(Ok(PullReply {
            answers: vec![
                colony_limiter::types::PullAnswer::State(bucket.clone()),
                colony_limiter::types::PullAnswer::Moved(6),
                colony_limiter::types::PullAnswer::Unknown,
                colony_limiter::types::PullAnswer::Busy,
            ],
        }))
        .into_bytes(),
    ));
    out.push((
        "router-bucket_batch".into(),
        wire::<BucketBatch> as Decode,
        Wire(Ok(BucketBatch {
            from_node: 5,
            buckets: vec![WireBucket {
                key: "4:acme/1:n/k".into(),
                state: bucket.clone(),
            }],
            leases: Vec::new(),
        }))
        .into_bytes(),
    ));
    out.push((
        "router-handoff_ack".into(),
        wire::<HandoffAck> as Decode,
        Wire(Ok(HandoffAck { installed: 1 })).into_bytes(),
    ));
    out.push((
        "bucket_state-sliding_window".into(),
        rmp::<BucketState> as Decode,
        rmp_serde::to_vec_named(&bucket).unwrap(),
    ));
    out.push((
        "gossip-node_meta".into(),
        rmp::<NodeMeta> as Decode,
        rmp_serde::to_vec_named(&NodeMeta {
            node_id: 42,
            http_addr: "10.0.0.1:8080".into(),
            raft_addr: "10.0.0.1:7948".into(),
            version: "0.1.0".into(),
            state: NodeState::Draining,
            cluster_addr: "10.0.0.1:7947".into(),
            features: vec!["bucket-handoff-v1".into()],
        })
        .unwrap(),
    ));
    out.push((
        "internal-forwarded_write".into(),
        envelope as Decode,
        colony_cluster::transport::wire::encode(
            3,
            &Proposal::new(meta(99), Command::DeleteTier { name: "pro".into() }),
        )
        .unwrap(),
    ));
    out
}

/// Whether every field of `expected` is in `actual` with the same value.
fn contains(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|x| contains(v, x))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| contains(x, y))
        }
        _ => expected == actual,
    }
}

#[test]
fn every_released_payload_still_decodes_to_the_same_values() {
    let dir = dir();
    let write = std::env::var("COLONY_WRITE_FIXTURES").is_ok_and(|v| v == "1");
    let mut checked = 0;
    for (name, decode, current) in fixtures() {
        let bin = dir.join(format!("{name}.msgpack"));
        let txt = dir.join(format!("{name}.json"));
        if !bin.exists() {
            assert!(
                write,
                "fixture {name} is missing: run with COLONY_WRITE_FIXTURES=1 to add it"
            );
            std::fs::create_dir_all(&dir).unwrap();
            let value = decode(&current).unwrap();
            std::fs::write(&bin, &current).unwrap();
            std::fs::write(&txt, serde_json::to_string_pretty(&value).unwrap() + "\n").unwrap();
        }
        let bytes = std::fs::read(&bin).unwrap();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&txt).unwrap()).unwrap();
        let decoded =
            decode(&bytes).unwrap_or_else(|e| panic!("fixture {name} no longer decodes: {e}"));
        assert!(
            contains(&expected, &decoded),
            "fixture {name} decodes differently:\nexpected {expected}\ngot      {decoded}"
        );
        checked += 1;
    }
    // Every fixture on disk is one this binary knows how to read.
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "msgpack"))
        })
        .count();
    assert_eq!(
        on_disk, checked,
        "a fixture on disk is not checked by this test"
    );
}
