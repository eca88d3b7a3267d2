use super::*;
use crate::chain::verify_chain;
use colony_core::command::TenantPatch;
use colony_core::tenant::TierOverrides;
use colony_core::tier::default_tiers;
use proptest::prelude::*;

fn meta(at_ms: u64) -> ProposalMeta {
    ProposalMeta {
        at_ms,
        principal: "admin".into(),
        request_id: format!("r{at_ms}"),
    }
}

fn p(at_ms: u64, command: Command) -> Proposal {
    Proposal::new(meta(at_ms), command)
}

fn tenant(id: &str, tier: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: format!("Tenant {id}"),
        tier: tier.into(),
        overrides: TierOverrides::default(),
        status: TenantStatus::Active,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn key(id: &str, tenant: &str) -> ApiKey {
    ApiKey {
        id: id.into(),
        tenant: tenant.into(),
        name: None,
        secret_hash: colony_core::apikey::hash_secret(&format!("colony_{id}.secret")),
        created_at_ms: 0,
        expires_at_ms: None,
        revoked_at_ms: None,
    }
}

fn init() -> (State, Vec<AuditEntry>) {
    let mut s = State::default();
    let a = s.apply(&p(
        1,
        Command::InitCluster {
            admin_token_hash: "ab".into(),
            tiers: default_tiers(1),
        },
    ));
    assert!(a.result.is_ok());
    (s, a.audit.into_iter().collect())
}

#[test]
fn init_seeds_tiers_once() {
    let (mut s, audit) = init();
    assert_eq!(s.tiers.len(), 3);
    assert_eq!(audit[0].action, "cluster.init");
    let again = s.apply(&p(
        2,
        Command::InitCluster {
            admin_token_hash: "cd".into(),
            tiers: vec![],
        },
    ));
    assert!(matches!(again.result, Err(ApplyError::Conflict(_))));
    assert_eq!(s.admin_token_hash.as_deref(), Some("ab"));
}

#[test]
fn tenant_lifecycle_audits_every_mutation() {
    let (mut s, mut audit) = init();
    let mut run = |s: &mut State, at, c| {
        let a = s.apply(&p(at, c));
        audit.extend(a.audit.clone());
        a
    };
    assert!(run(
        &mut s,
        2,
        Command::CreateTenant {
            tenant: tenant("acme", "free"),
            key: key("key_1", "acme")
        }
    )
    .result
    .is_ok());
    let dup = run(
        &mut s,
        3,
        Command::CreateTenant {
            tenant: tenant("acme", "free"),
            key: key("key_2", "acme"),
        },
    );
    assert!(matches!(dup.result, Err(ApplyError::AlreadyExists { .. })));
    assert!(dup.changes.is_empty() && dup.audit.is_none());
    let bad_tier = run(
        &mut s,
        4,
        Command::CreateTenant {
            tenant: tenant("b", "gold"),
            key: key("key_3", "b"),
        },
    );
    assert_eq!(
        bad_tier.result,
        Err(ApplyError::NotFound {
            kind: "tier".into(),
            id: "gold".into()
        })
    );
    let upd = run(
        &mut s,
        5,
        Command::UpdateTenant {
            id: "acme".into(),
            patch: TenantPatch {
                tier: Some("pro".into()),
                ..Default::default()
            },
        },
    );
    assert!(
        matches!(upd.result, Ok(CommandOutput::Tenant(ref t)) if t.tier == "pro" && t.created_at_ms == 2 && t.updated_at_ms == 5)
    );
    let del_tier = run(&mut s, 6, Command::DeleteTier { name: "pro".into() });
    assert!(matches!(del_tier.result, Err(ApplyError::Conflict(_))));
    assert!(run(&mut s, 7, Command::DeleteTenant { id: "acme".into() })
        .result
        .is_ok());
    assert!(s.keys.is_empty() && s.tenants.is_empty());
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "cluster.init",
            "tenant.create",
            "tenant.update",
            "tenant.delete"
        ]
    );
    assert!(verify_chain(audit, s.audit_head).ok);
}

#[test]
fn rotation_keeps_old_key_for_the_grace_period_then_revoke_is_idempotent() {
    let (mut s, _) = init();
    s.apply(&p(
        2,
        Command::CreateTenant {
            tenant: tenant("acme", "free"),
            key: key("key_1", "acme"),
        },
    ));
    let r = s.apply(&p(
        10,
        Command::RotateKey {
            old_key_id: "key_1".into(),
            grace_ms: 100,
            new_key: key("key_2", "acme"),
        },
    ));
    assert!(r.result.is_ok(), "{r:?}");
    let old_secret = "colony_key_1.secret";
    assert!(s.authenticate(old_secret, 109).is_ok());
    assert_eq!(
        s.authenticate(old_secret, 110).unwrap_err(),
        AuthFailure::Expired
    );
    assert!(s.authenticate("colony_key_2.secret", 10_000).is_ok());
    assert_eq!(
        s.authenticate("colony_key_2.wrong", 11).unwrap_err(),
        AuthFailure::Unknown
    );
    let rv = s.apply(&p(
        20,
        Command::RevokeKey {
            tenant: "acme".into(),
            key_id: "key_2".into(),
        },
    ));
    assert!(rv.audit.is_some());
    assert_eq!(
        s.authenticate("colony_key_2.secret", 21).unwrap_err(),
        AuthFailure::Revoked
    );
    let again = s.apply(&p(
        21,
        Command::RevokeKey {
            tenant: "acme".into(),
            key_id: "key_2".into(),
        },
    ));
    assert!(again.result.is_ok() && again.audit.is_none() && again.changes.is_empty());
    // Another tenant's key is not found through this tenant.
    let other = s.apply(&p(
        22,
        Command::RevokeKey {
            tenant: "other".into(),
            key_id: "key_1".into(),
        },
    ));
    assert!(matches!(other.result, Err(ApplyError::NotFound { .. })));
}

#[test]
fn suspended_tenants_cannot_authenticate() {
    let (mut s, _) = init();
    s.apply(&p(
        2,
        Command::CreateTenant {
            tenant: tenant("acme", "free"),
            key: key("key_1", "acme"),
        },
    ));
    s.apply(&p(
        3,
        Command::UpdateTenant {
            id: "acme".into(),
            patch: TenantPatch {
                status: Some(TenantStatus::Suspended),
                ..Default::default()
            },
        },
    ));
    assert_eq!(
        s.authenticate("colony_key_1.secret", 4).unwrap_err(),
        AuthFailure::Suspended
    );
}

#[test]
fn newer_formats_are_rejected_without_change() {
    let (mut s, _) = init();
    let mut prop = p(
        2,
        Command::DeleteTier {
            name: "free".into(),
        },
    );
    prop.format = COMMAND_FORMAT + 1;
    let a = s.apply(&prop);
    assert!(matches!(a.result, Err(ApplyError::Unsupported(_))));
    assert!(s.tiers.contains_key("free"));
}

#[test]
fn verify_detects_tampering_reordering_and_truncation() {
    let (mut s, mut audit) = init();
    for i in 0..5 {
        let a = s.apply(&p(
            2 + i,
            Command::CreateTenant {
                tenant: tenant(&format!("t{i}"), "free"),
                key: key(&format!("key_{i}"), &format!("t{i}")),
            },
        ));
        audit.extend(a.audit);
    }
    assert!(verify_chain(audit.clone(), s.audit_head).ok);

    let mut tampered = audit.clone();
    tampered[3].details = json!({"name": "evil"});
    let r = verify_chain(tampered, s.audit_head);
    assert_eq!(r.first_bad.as_ref().map(|b| b.seq), Some(4));

    let mut swapped = audit.clone();
    swapped.swap(1, 2);
    assert_eq!(
        verify_chain(swapped, s.audit_head).first_bad.map(|b| b.seq),
        Some(2)
    );

    let truncated = audit[..5].to_vec();
    let r = verify_chain(truncated, s.audit_head);
    assert!(!r.ok);
    assert_eq!(r.first_bad.map(|b| b.seq), Some(6));
}

fn arb_command() -> impl Strategy<Value = Command> {
    let id = prop::sample::select(vec!["a", "b", "c"]);
    let kid = prop::sample::select(vec!["key_1", "key_2", "key_3", "key_4"]);
    let tier = prop::sample::select(vec!["free", "pro", "gold"]);
    prop_oneof![
        (id.clone(), tier.clone(), kid.clone()).prop_map(|(i, t, k)| Command::CreateTenant {
            tenant: tenant(i, t),
            key: key(k, i)
        }),
        (id.clone(), tier.clone()).prop_map(|(i, t)| Command::UpdateTenant {
            id: i.into(),
            patch: TenantPatch {
                tier: Some(t.into()),
                ..Default::default()
            }
        }),
        id.clone()
            .prop_map(|i| Command::DeleteTenant { id: i.into() }),
        (id.clone(), kid.clone()).prop_map(|(i, k)| Command::IssueKey { key: key(k, i) }),
        (id.clone(), kid.clone(), kid.clone(), 0u64..50).prop_map(|(i, o, n, g)| {
            Command::RotateKey {
                old_key_id: o.into(),
                grace_ms: g,
                new_key: key(n, i),
            }
        }),
        (id.clone(), kid).prop_map(|(i, k)| Command::RevokeKey {
            tenant: i.into(),
            key_id: k.into()
        }),
        tier.clone()
            .prop_map(|t| Command::DeleteTier { name: t.into() }),
        tier.prop_map(|t| {
            let mut tier = default_tiers(0).remove(0);
            tier.name = t.into();
            Command::CreateTier { tier }
        }),
    ]
}

proptest! {
    /// Two replicas applying the same log end in the same state with the same chain, the chain
    /// verifies, and a rejected command leaves the state exactly as it was.
    #[test]
    fn replicas_agree_and_chain_verifies(cmds in prop::collection::vec(arb_command(), 0..40)) {
        let (mut a, mut audit) = init();
        let (mut b, _) = init();
        for (i, c) in cmds.into_iter().enumerate() {
            let prop = p(100 + i as u64, c);
            let before = a.clone();
            let ra = a.apply(&prop);
            let rb = b.apply(&prop);
            prop_assert_eq!(&ra, &rb);
            if ra.result.is_err() {
                prop_assert_eq!(&a, &before);
            }
            // Every key belongs to an existing tenant.
            prop_assert!(a.keys.values().all(|k| a.tenants.contains_key(&k.tenant)));
            audit.extend(ra.audit);
        }
        prop_assert_eq!(&a, &b);
        let report = verify_chain(audit.clone(), a.audit_head);
        prop_assert!(report.ok, "{:?}", report);
        prop_assert_eq!(report.entries_checked, audit.len() as u64);
    }
}

mod evaluations {
    use super::*;
    use colony_core::evaluation::{CheckpointItem, EvaluationRecord, EvaluationStatus};

    fn record(id: &str, tenant: &str, total: u32) -> EvaluationRecord {
        EvaluationRecord {
            id: id.into(),
            tenant: tenant.into(),
            total,
            status: EvaluationStatus::Queued,
            owner: 7,
            epoch: 1,
            done: Default::default(),
            failed: 0,
            cached: 0,
            usage: Default::default(),
            error: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            finished_at_ms: None,
        }
    }

    fn item(index: u32, cost_nanos: u64) -> CheckpointItem {
        CheckpointItem {
            index,
            model: "m".into(),
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_nanos,
            error: false,
            cached: false,
            result: json!({"index": index}),
        }
    }

    fn with_tenant(budget: Option<f64>) -> State {
        let (mut s, _) = init();
        let mut t = tenant("acme", "free");
        t.overrides.monthly_budget_usd = budget;
        let a = s.apply(&p(
            2,
            Command::CreateTenant {
                tenant: t,
                key: key("k1", "acme"),
            },
        ));
        assert!(a.result.is_ok());
        s
    }

    fn output(a: &Applied) -> EvaluationRecord {
        match &a.result {
            Ok(CommandOutput::Evaluation(r)) => (**r).clone(),
            other => panic!("expected an evaluation, got {other:?}"),
        }
    }

    fn checkpoint(id: &str, epoch: u64, items: Vec<CheckpointItem>) -> Command {
        Command::CheckpointEvaluation {
            id: id.into(),
            epoch,
            items,
        }
    }

    #[test]
    fn results_are_recorded_once_and_only_at_the_current_epoch() {
        let mut s = with_tenant(None);
        let a = s.apply(&p(
            3,
            Command::SubmitEvaluation {
                max_live: None,
                max_stored: None,
                spec: json!({}),
                record: record("e1", "acme", 3),
            },
        ));
        assert_eq!(output(&a).status, EvaluationStatus::Queued);
        assert!(a.audit.is_some(), "submission is audited");

        let a = s.apply(&p(4, checkpoint("e1", 1, vec![item(0, 100), item(1, 200)])));
        let r = output(&a);
        assert_eq!(
            (r.status, r.done.len(), r.usage.cost_nanos),
            (EvaluationStatus::Running, 2, 300)
        );
        assert_eq!(
            a.changes
                .iter()
                .filter(|c| matches!(c, Change::EvalResult(..)))
                .count(),
            2
        );

        // Repeated checkpoint (a lost answer): nothing changes, nothing is billed twice.
        let a = s.apply(&p(5, checkpoint("e1", 1, vec![item(1, 200)])));
        assert!(a.changes.is_empty());
        assert_eq!(s.evaluations["e1"].usage.cost_nanos, 300);

        // Reassigned: the old owner's epoch is now stale.
        let a = s.apply(&p(
            6,
            Command::ReassignEvaluation {
                id: "e1".into(),
                epoch: 1,
                owner: 9,
            },
        ));
        assert_eq!((output(&a).owner, output(&a).epoch), (9, 2));
        let stale = s.apply(&p(7, checkpoint("e1", 1, vec![item(2, 1)])));
        assert!(matches!(stale.result, Err(ApplyError::Conflict(_))));
        let twice = s.apply(&p(
            7,
            Command::ReassignEvaluation {
                id: "e1".into(),
                epoch: 1,
                owner: 3,
            },
        ));
        assert!(twice.result.is_err(), "two reassignments cannot both win");

        let a = s.apply(&p(8, checkpoint("e1", 2, vec![item(1, 200), item(2, 50)])));
        let r = output(&a);
        assert_eq!(
            (r.status, r.done.len(), r.usage.cost_nanos),
            (EvaluationStatus::Completed, 3, 350)
        );
        assert_eq!(
            a.audit.as_ref().map(|e| e.action.as_str()),
            Some("evaluation.complete")
        );
        let usage: u64 = s.usage.values().map(|u| u.cost_nanos).sum();
        assert_eq!(
            usage, 350,
            "usage by day and model adds up to the evaluation's cost"
        );
        // Ended: no more checkpoints; cancel is a no-op.
        assert!(s.apply(&p(9, checkpoint("e1", 2, vec![]))).result.is_err());
        let c = s.apply(&p(
            9,
            Command::CancelEvaluation {
                tenant: "acme".into(),
                id: "e1".into(),
            },
        ));
        assert_eq!(output(&c).status, EvaluationStatus::Completed);
        assert!(c.changes.is_empty());
    }

    #[test]
    fn checkpoint_batching_does_not_change_the_totals() {
        let items: Vec<CheckpointItem> =
            (0..20).map(|i| item(i, 1_000 + u64::from(i) * 7)).collect();
        let mut one = with_tenant(None);
        one.apply(&p(
            3,
            Command::SubmitEvaluation {
                max_live: None,
                max_stored: None,
                spec: json!({}),
                record: record("e", "acme", 20),
            },
        ));
        one.apply(&p(4, checkpoint("e", 1, items.clone())));
        let mut many = with_tenant(None);
        many.apply(&p(
            3,
            Command::SubmitEvaluation {
                max_live: None,
                max_stored: None,
                spec: json!({}),
                record: record("e", "acme", 20),
            },
        ));
        for chunk in items.chunks(3).rev() {
            many.apply(&p(4, checkpoint("e", 1, chunk.to_vec())));
        }
        assert_eq!(one.evaluations["e"].usage, many.evaluations["e"].usage);
        assert_eq!(one.usage, many.usage);
    }

    #[test]
    fn a_spent_budget_stops_the_evaluation_and_the_soft_threshold_is_audited() {
        // $1 a month: 0.8 USD crosses the soft threshold, 1 USD stops it.
        let mut s = with_tenant(Some(1.0));
        s.apply(&p(
            3,
            Command::SubmitEvaluation {
                max_live: None,
                max_stored: None,
                spec: json!({}),
                record: record("e", "acme", 10),
            },
        ));
        let a = s.apply(&p(4, checkpoint("e", 1, vec![item(0, 850_000_000)])));
        assert_eq!(output(&a).status, EvaluationStatus::Running);
        assert_eq!(
            a.audit.as_ref().map(|e| e.action.as_str()),
            Some("tenant.budget_soft_threshold")
        );
        let a = s.apply(&p(5, checkpoint("e", 1, vec![item(1, 200_000_000)])));
        assert_eq!(output(&a).status, EvaluationStatus::BudgetExceeded);
        assert_eq!(
            a.audit.as_ref().map(|e| e.action.as_str()),
            Some("evaluation.budget_exceeded")
        );
        // A new evaluation this month is accepted but never runs.
        let b = s.apply(&p(
            6,
            Command::SubmitEvaluation {
                max_live: None,
                max_stored: None,
                spec: json!({}),
                record: record("e2", "acme", 1),
            },
        ));
        assert_eq!(output(&b).status, EvaluationStatus::BudgetExceeded);
    }

    #[test]
    fn a_tenant_at_its_live_evaluation_cap_is_refused_until_one_ends() {
        let mut s = with_tenant(None);
        let submit = |s: &mut State, at: u64, id: &str, cap: Option<u32>| {
            s.apply(&p(
                at,
                Command::SubmitEvaluation {
                    max_live: cap,
                    max_stored: None,
                    spec: json!({}),
                    record: record(id, "acme", 2),
                },
            ))
        };
        assert!(submit(&mut s, 3, "e1", Some(2)).result.is_ok());
        assert!(submit(&mut s, 4, "e2", Some(2)).result.is_ok());
        let refused = submit(&mut s, 5, "e3", Some(2));
        match &refused.result {
            Err(ApplyError::Conflict(m)) => {
                assert!(m.contains("evaluations.max_live_per_tenant"), "{m}")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(
            !s.evaluations.contains_key("e3"),
            "a refusal changes nothing"
        );
        // Without a cap (a proposal from an older binary) nothing is counted.
        assert!(submit(&mut s, 6, "e4", None).result.is_ok());
        // Once one ends there is room again (e1, e2 and e4 are live: cap 3 is full, 4 is not).
        let c = s.apply(&p(
            7,
            Command::CancelEvaluation {
                tenant: "acme".into(),
                id: "e1".into(),
            },
        ));
        assert!(c.result.is_ok());
        assert_eq!(s.live_evaluations("acme"), 2);
        assert!(submit(&mut s, 8, "e5", Some(3)).result.is_ok());
        assert!(submit(&mut s, 9, "e6", Some(3)).result.is_err());
    }

    #[test]
    fn a_tenant_at_its_stored_cap_deletes_ended_evaluations_to_submit_again() {
        let mut s = with_tenant(None);
        let submit = |s: &mut State, at: u64, id: &str| {
            s.apply(&p(
                at,
                Command::SubmitEvaluation {
                    max_live: None,
                    max_stored: Some(2),
                    spec: json!({}),
                    record: record(id, "acme", 2),
                },
            ))
        };
        assert!(submit(&mut s, 3, "e1").result.is_ok());
        assert!(submit(&mut s, 4, "e2").result.is_ok());
        s.apply(&p(5, checkpoint("e1", 1, vec![item(0, 1), item(1, 1)])));
        assert_eq!(s.evaluations["e1"].status, EvaluationStatus::Completed);
        match &submit(&mut s, 6, "e3").result {
            Err(ApplyError::Conflict(m)) => {
                assert!(m.contains("evaluations.max_stored_per_tenant"), "{m}")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let delete = |s: &mut State, at: u64, tenant: &str, id: &str| {
            s.apply(&p(
                at,
                Command::DeleteEvaluation {
                    tenant: tenant.into(),
                    id: id.into(),
                },
            ))
        };
        // Not another tenant's, not a running one.
        assert!(matches!(
            delete(&mut s, 7, "beta", "e1").result,
            Err(ApplyError::NotFound { .. })
        ));
        assert!(matches!(
            delete(&mut s, 8, "acme", "e2").result,
            Err(ApplyError::Conflict(_))
        ));
        let d = delete(&mut s, 9, "acme", "e1");
        assert!(d.result.is_ok());
        assert_eq!(
            d.audit.as_ref().map(|e| e.action.as_str()),
            Some("evaluation.delete")
        );
        assert!(!s.evaluations.contains_key("e1") && !s.eval_specs.contains_key("e1"));
        assert!(
            d.changes
                .iter()
                .any(|c| matches!(c, Change::EvalResult(id, 1, None) if id == "e1")),
            "every result goes: {:?}",
            d.changes
        );
        assert!(submit(&mut s, 10, "e3").result.is_ok());
    }

    #[test]
    fn tenants_cannot_cancel_each_others_evaluations_and_bad_items_change_nothing() {
        let mut s = with_tenant(None);
        s.apply(&p(
            3,
            Command::SubmitEvaluation {
                max_live: None,
                max_stored: None,
                spec: json!({}),
                record: record("e", "acme", 2),
            },
        ));
        let c = s.apply(&p(
            4,
            Command::CancelEvaluation {
                tenant: "beta".into(),
                id: "e".into(),
            },
        ));
        assert!(matches!(c.result, Err(ApplyError::NotFound { .. })));
        let bad = s.apply(&p(5, checkpoint("e", 1, vec![item(0, 1), item(5, 1)])));
        assert!(bad.result.is_err() && bad.changes.is_empty());
        assert!(s.evaluations["e"].done.is_empty());
        let c = s.apply(&p(
            6,
            Command::CancelEvaluation {
                tenant: "acme".into(),
                id: "e".into(),
            },
        ));
        assert_eq!(output(&c).status, EvaluationStatus::Cancelled);
        let f = s.apply(&p(
            7,
            Command::FailEvaluation {
                id: "e".into(),
                epoch: 1,
                error: "x".into(),
            },
        ));
        assert!(f.result.is_err(), "an ended evaluation cannot fail");
    }
}
