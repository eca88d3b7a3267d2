//! The sled Raft storage: openraft's own storage suite, plus Colony-specific behaviour
//! (persistence across reopen, snapshots, audit queries and verification, log truncation
//! and purge) and the single-node network.

// Tests fail loudly on unexpected errors; the suite's builder must return openraft's large
// `StorageError`.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use colony_cluster::raft::log_store::LogStore;
use colony_cluster::raft::state_machine::{AuditQuery, StateMachineStore};
use colony_cluster::raft::types::{NodeId, NodeInfo, TypeConfig};
use colony_cluster::transport::raft_network::HttpNetwork;
use colony_core::apikey::{hash_secret, ApiKey};
use colony_core::command::{
    ApplyError, Command, CommandOutput, CommandResult, Proposal, ProposalMeta,
};
use colony_core::tenant::{Tenant, TenantStatus, TierOverrides};
use colony_core::tier::default_tiers;
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{
    Entry, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageError,
    StorageIOError, Vote,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// openraft's storage suite

/// Builds a log store and state machine on a fresh temporary sled database each time (the
/// suite builds two at once for its snapshot transfer test).
struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore> for SledBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachineStore), StorageError<NodeId>> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| StorageIOError::write(&e))?;
        let log = LogStore::new(&db).map_err(|e| StorageIOError::write(&e))?;
        let sm = StateMachineStore::open(&db).map_err(|e| StorageIOError::write(&e))?;
        Ok(((), log, sm))
    }
}

/// A plain test: the suite starts its own tokio runtimes.
#[test]
fn openraft_storage_suite() -> Result<(), StorageError<NodeId>> {
    Suite::test_all(SledBuilder)
}

// ---------------------------------------------------------------------------------------
// helpers

/// A directory removed on drop, for tests that reopen a database.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "colony-cluster-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open_db(dir: &Path) -> sled::Db {
    sled::Config::new().path(dir).open().unwrap()
}

fn temp_db() -> sled::Db {
    sled::Config::new().temporary(true).open().unwrap()
}

fn proposal(at_ms: u64, principal: &str, command: Command) -> Proposal {
    Proposal::new(
        ProposalMeta {
            at_ms,
            principal: principal.into(),
            request_id: format!("req-{at_ms}"),
        },
        command,
    )
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
        secret_hash: hash_secret(&format!("colony_{id}.secret")),
        created_at_ms: 0,
        expires_at_ms: None,
        revoked_at_ms: None,
    }
}

fn normal(index: u64, p: Proposal) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(p),
    }
}

fn blank(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Blank,
    }
}

fn membership(index: u64) -> Entry<TypeConfig> {
    let voters: BTreeSet<NodeId> = [1].into();
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], None)),
    }
}

/// The commands of a small but varied history, from log index 2 (after membership at 0 and
/// the leader's blank at 1, as in a real single-node cluster). Eight audited commands and
/// one rejected one.
fn history() -> Vec<Entry<TypeConfig>> {
    let cmds = vec![
        (
            "admin",
            Command::InitCluster {
                admin_token_hash: "ab".into(),
                tiers: default_tiers(1),
            },
        ),
        (
            "admin",
            Command::CreateTenant {
                tenant: tenant("acme", "free"),
                key: key("key_a1", "acme"),
            },
        ),
        (
            "admin",
            Command::CreateTenant {
                tenant: tenant("beta", "pro"),
                key: key("key_b1", "beta"),
            },
        ),
        (
            "node:7",
            Command::IssueKey {
                key: key("key_a2", "acme"),
            },
        ),
        // Rejected: the tier is in use; nothing changes and nothing is audited.
        (
            "admin",
            Command::DeleteTier {
                name: "free".into(),
            },
        ),
        (
            "admin",
            Command::RevokeKey {
                tenant: "acme".into(),
                key_id: "key_a1".into(),
            },
        ),
        ("node:7", Command::DeleteTenant { id: "beta".into() }),
        ("admin", Command::DeleteTier { name: "pro".into() }),
        (
            "admin",
            Command::IssueKey {
                key: key("key_a3", "acme"),
            },
        ),
    ];
    let mut entries = vec![membership(0), blank(1)];
    for (i, (principal, c)) in cmds.into_iter().enumerate() {
        let index = i as u64 + 2;
        entries.push(normal(index, proposal(index * 100, principal, c)));
    }
    entries
}

/// Every audit entry, via the paging API.
fn all_audit(sm: &StateMachineStore) -> Vec<colony_core::audit::AuditEntry> {
    sm.audit_page(&AuditQuery {
        limit: usize::MAX,
        ..Default::default()
    })
    .unwrap()
    .entries
}

// ---------------------------------------------------------------------------------------
// state machine

#[tokio::test]
async fn apply_persists_and_reopen_restores_state() {
    let dir = TempDir::new("reopen");
    let (state_before, audit_before, applied_before) = {
        let db = open_db(dir.path());
        let mut sm = StateMachineStore::open(&db).unwrap();
        let replies: Vec<CommandResult> = sm.apply(history()).await.unwrap();
        assert_eq!(replies.len(), 11, "one reply per entry");
        // Membership and blank entries carry no command.
        assert_eq!(
            replies[0],
            Err(ApplyError::Unsupported("not a command".into()))
        );
        assert_eq!(
            replies[1],
            Err(ApplyError::Unsupported("not a command".into()))
        );
        assert_eq!(replies[2], Ok(CommandOutput::Initialized));
        assert!(
            matches!(replies[6], Err(ApplyError::Conflict(_))),
            "{:?}",
            replies[6]
        );
        assert_eq!(replies[9], Ok(CommandOutput::Deleted));

        let state = sm.state().read().unwrap().clone();
        assert_eq!(state.admin_token_hash.as_deref(), Some("ab"));
        assert!(state.tiers.contains_key("free") && !state.tiers.contains_key("pro"));
        assert_eq!(state.tenants.keys().collect::<Vec<_>>(), ["acme"]);
        assert_eq!(
            state.keys.keys().collect::<Vec<_>>(),
            ["key_a1", "key_a2", "key_a3"]
        );
        assert!(state.keys["key_a1"].revoked_at_ms.is_some());
        assert_eq!(state.audit_head.seq, 8);
        let audit = all_audit(&sm);
        assert_eq!(audit.len(), 8);
        let applied = sm.applied_state().await.unwrap();
        assert_eq!(applied.0, Some(log_id(1, 1, 10)));
        assert_eq!(applied.1.log_id(), &Some(log_id(1, 1, 0)));
        sm.flush_blocking().unwrap();
        (state, audit, applied)
    };

    // Everything comes back from disk.
    let db = open_db(dir.path());
    let mut sm = StateMachineStore::open(&db).unwrap();
    assert_eq!(*sm.state().read().unwrap(), state_before);
    assert_eq!(all_audit(&sm), audit_before);
    assert_eq!(sm.applied_state().await.unwrap(), applied_before);
    let report = sm.audit_verify().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, 8);

    // And applying continues the chain from the stored head.
    let more = proposal(
        2000,
        "admin",
        Command::IssueKey {
            key: key("key_a4", "acme"),
        },
    );
    let replies = sm.apply([normal(11, more)]).await.unwrap();
    assert!(matches!(replies[0], Ok(CommandOutput::Key(_))));
    assert_eq!(sm.state().read().unwrap().audit_head.seq, 9);
    assert!(sm.audit_verify().unwrap().ok);
}

#[tokio::test]
async fn snapshot_install_reproduces_state_and_chain() {
    let db_a = temp_db();
    let mut a = StateMachineStore::open(&db_a).unwrap();
    a.apply(history()).await.unwrap();
    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1, 10)));
    assert_eq!(snap.meta.snapshot_id, "1-10-1");
    // A second build gets a new id.
    let again = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(again.meta.snapshot_id, "1-10-2");

    // The follower has different, older state that the snapshot must replace entirely.
    let dir = TempDir::new("install");
    {
        let db_b = open_db(dir.path());
        let mut b = StateMachineStore::open(&db_b).unwrap();
        let other = proposal(
            5,
            "admin",
            Command::InitCluster {
                admin_token_hash: "zz".into(),
                tiers: vec![],
            },
        );
        b.apply([blank(1), normal(2, other)]).await.unwrap();

        let mut received = b.begin_receiving_snapshot().await.unwrap();
        *received = *again.snapshot.clone();
        b.install_snapshot(&again.meta, received).await.unwrap();

        assert_eq!(*b.state().read().unwrap(), *a.state().read().unwrap());
        assert_eq!(all_audit(&b), all_audit(&a));
        assert_eq!(
            b.applied_state().await.unwrap(),
            a.applied_state().await.unwrap()
        );
        assert_eq!(
            b.get_current_snapshot().await.unwrap().unwrap().meta,
            again.meta
        );
        let report = b.audit_verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report, a.audit_verify().unwrap());
    }

    // The installed state is on disk.
    let db_b = open_db(dir.path());
    let mut b = StateMachineStore::open(&db_b).unwrap();
    assert_eq!(*b.state().read().unwrap(), *a.state().read().unwrap());
    assert_eq!(all_audit(&b), all_audit(&a));
    assert_eq!(
        b.get_current_snapshot().await.unwrap().unwrap().meta,
        again.meta
    );
    assert!(b.audit_verify().unwrap().ok);
}

#[tokio::test]
async fn install_rejects_a_snapshot_that_does_not_match_its_meta() {
    let mut a = StateMachineStore::open(&temp_db()).unwrap();
    a.apply(history()).await.unwrap();
    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let mut b = StateMachineStore::open(&temp_db()).unwrap();
    let mut meta = snap.meta.clone();
    meta.last_log_id = Some(log_id(1, 1, 99));
    assert!(b
        .install_snapshot(&meta, snap.snapshot.clone())
        .await
        .is_err());
    let garbage = Box::new(std::io::Cursor::new(vec![1, 2, 3]));
    assert!(b.install_snapshot(&snap.meta, garbage).await.is_err());
    // Nothing changed.
    assert_eq!(b.applied_state().await.unwrap().0, None);
    assert!(b.get_current_snapshot().await.unwrap().is_none());
}

#[tokio::test]
async fn audit_page_filters_and_cursors() {
    let mut sm = StateMachineStore::open(&temp_db()).unwrap();
    sm.apply(history()).await.unwrap();
    let seqs = |q: AuditQuery| -> (Vec<u64>, Option<u64>) {
        let page = sm.audit_page(&q).unwrap();
        (
            page.entries.iter().map(|e| e.seq).collect(),
            page.next_after_seq,
        )
    };
    let all = AuditQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(seqs(all.clone()), ((1..=8).collect(), None));

    // Cursoring: pages of 3 cover everything once, in order.
    let mut got = Vec::new();
    let mut after = 0;
    loop {
        let (page, next) = seqs(AuditQuery {
            limit: 3,
            after_seq: after,
            ..Default::default()
        });
        got.extend(page);
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(got, (1..=8).collect::<Vec<_>>());

    // Filters. Actions: 1 cluster.init, 2 tenant.create, 3 tenant.create, 4 key.issue,
    // 5 key.revoke, 6 tenant.delete, 7 tier.delete, 8 key.issue.
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = all.clone();
        f(&mut q);
        seqs(q).0
    };
    assert_eq!(q(|q| q.tenant = Some("acme".into())), [2, 4, 5, 8]);
    assert_eq!(q(|q| q.action = Some("tenant.create".into())), [2, 3]);
    assert_eq!(q(|q| q.action = Some("tenant.*".into())), [2, 3, 6]);
    assert_eq!(q(|q| q.action = Some("key.".into())), [4, 5, 8]);
    assert_eq!(q(|q| q.action = Some("tenant".into())), Vec::<u64>::new());
    assert_eq!(q(|q| q.principal = Some("node:7".into())), [4, 6]);
    // Entry n was proposed at (n + 1) * 100 ms, except that the rejected command at index 6
    // shifts the later ones by one: seq 5 is at 700.
    assert_eq!(q(|q| q.since_ms = Some(400)), [3, 4, 5, 6, 7, 8]);
    assert_eq!(q(|q| q.until_ms = Some(400)), [1, 2]);
    assert_eq!(
        q(|q| {
            q.since_ms = Some(300);
            q.until_ms = Some(700)
        }),
        [2, 3, 4]
    );
    assert_eq!(
        q(|q| {
            q.tenant = Some("acme".into());
            q.action = Some("key.*".into())
        }),
        [4, 5, 8]
    );
    assert_eq!(q(|q| q.after_seq = u64::MAX), Vec::<u64>::new());

    // A filtered page that fills up reports its last seq as the cursor.
    let (page, next) = seqs(AuditQuery {
        tenant: Some("acme".into()),
        limit: 2,
        ..Default::default()
    });
    assert_eq!((page, next), (vec![2, 4], Some(4)));
    let (page, next) = seqs(AuditQuery {
        tenant: Some("acme".into()),
        limit: 2,
        after_seq: 4,
        ..Default::default()
    });
    assert_eq!((page, next), (vec![5, 8], Some(8)));
    let (page, next) = seqs(AuditQuery {
        tenant: Some("acme".into()),
        limit: 2,
        after_seq: 8,
        ..Default::default()
    });
    assert_eq!((page, next), (vec![], None));
}

#[tokio::test]
async fn tampering_is_reported_at_the_tampered_entry() {
    let mut sm = StateMachineStore::open(&temp_db()).unwrap();
    sm.apply(history()).await.unwrap();
    assert!(sm.audit_verify().unwrap().ok);

    sm.tamper_audit_entry_for_test(5, |e| e.principal = "mallory".into());
    let report = sm.audit_verify().unwrap();
    assert!(!report.ok);
    let bad = report.first_bad.unwrap();
    assert_eq!(bad.seq, 5, "{bad:?}");
    assert_eq!(report.entries_checked, 5);
    // The head hash is that of the last good entry.
    assert_eq!(report.head_hash, all_audit(&sm)[3].hash);
}

#[tokio::test]
async fn an_undecodable_entry_is_reported_not_an_error() {
    let db = temp_db();
    let mut sm = StateMachineStore::open(&db).unwrap();
    sm.apply(history()).await.unwrap();
    let mut key = b"a/".to_vec();
    key.extend_from_slice(&3u64.to_be_bytes());
    db.open_tree("sm")
        .unwrap()
        .insert(key, &b"\xc1 not msgpack"[..])
        .unwrap();

    let report = sm.audit_verify().unwrap();
    assert!(!report.ok);
    let bad = report.first_bad.unwrap();
    assert_eq!(bad.seq, 3);
    assert!(bad.reason.contains("decode"), "{}", bad.reason);
    assert_eq!(report.entries_checked, 3);

    // Tampering earlier than the undecodable entry is reported first.
    sm.tamper_audit_entry_for_test(2, |e| e.resource = "tenants/evil".into());
    assert_eq!(sm.audit_verify().unwrap().first_bad.unwrap().seq, 2);
}

#[tokio::test]
async fn an_empty_chain_verifies() {
    let sm = StateMachineStore::open(&temp_db()).unwrap();
    let report = sm.audit_verify().unwrap();
    assert!(report.ok && report.entries_checked == 0, "{report:?}");
    assert!(sm
        .audit_page(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .entries
        .is_empty());
}

// ---------------------------------------------------------------------------------------
// log store

async fn indexes(log: &mut LogStore) -> Vec<u64> {
    log.try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

#[tokio::test]
async fn truncate_and_purge() {
    let dir = TempDir::new("log");
    {
        let db = open_db(dir.path());
        let mut log = LogStore::new(&db).unwrap();
        let entries: Vec<_> = (1..=10).map(blank).collect();
        log.blocking_append(entries).await.unwrap();
        assert_eq!(indexes(&mut log).await, (1..=10).collect::<Vec<_>>());

        // Truncate removes the suffix from the given index on.
        log.truncate(log_id(1, 1, 7)).await.unwrap();
        assert_eq!(indexes(&mut log).await, (1..=6).collect::<Vec<_>>());
        let st = log.get_log_state().await.unwrap();
        assert_eq!(
            (st.last_purged_log_id, st.last_log_id),
            (None, Some(log_id(1, 1, 6)))
        );

        // Purge removes the prefix up to and including the index.
        log.purge(log_id(1, 1, 3)).await.unwrap();
        assert_eq!(indexes(&mut log).await, [4, 5, 6]);
        let st = log.get_log_state().await.unwrap();
        assert_eq!(
            (st.last_purged_log_id, st.last_log_id),
            (Some(log_id(1, 1, 3)), Some(log_id(1, 1, 6)))
        );
        assert_eq!(log.try_get_log_entries(2..5).await.unwrap().len(), 1);

        log.save_vote(&Vote::new(4, 1)).await.unwrap();
        log.save_committed(Some(log_id(1, 1, 5))).await.unwrap();
        db.flush().unwrap();
    }

    // Reopened, everything is as it was.
    let db = open_db(dir.path());
    let mut log = LogStore::new(&db).unwrap();
    assert_eq!(indexes(&mut log).await, [4, 5, 6]);
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(4, 1)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 5)));

    // Purging past the end leaves no entries; the log then ends at the purged id.
    log.purge(log_id(2, 1, 20)).await.unwrap();
    assert!(indexes(&mut log).await.is_empty());
    let st = log.get_log_state().await.unwrap();
    assert_eq!(
        (st.last_purged_log_id, st.last_log_id),
        (Some(log_id(2, 1, 20)), Some(log_id(2, 1, 20)))
    );
}

#[tokio::test]
async fn log_entries_round_trip_with_proposals() {
    let mut log = LogStore::new(&temp_db()).unwrap();
    let entries = history();
    let expected: Vec<String> = entries.iter().map(|e| format!("{e:?}")).collect();
    log.blocking_append(entries).await.unwrap();
    let got: Vec<String> = log
        .try_get_log_entries(0..=10)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    assert_eq!(got, expected);
    assert!(log
        .try_get_log_entries((
            std::ops::Bound::Excluded(u64::MAX),
            std::ops::Bound::Unbounded
        ))
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------
// network

#[tokio::test]
async fn http_network_reports_dead_and_blocked_peers_unreachable() {
    use colony_cluster::transport::client::PeerClient;
    use colony_cluster::transport::faults::{FaultSet, Faults};
    // A port nothing listens on: bind, note the port, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let faults = Faults::new(true);
    let mut net = HttpNetwork::new(PeerClient::new(1, "secret", faults.clone(), None).unwrap());
    let info = NodeInfo {
        raft_addr: addr.to_string(),
        http_addr: String::new(),
    };
    let mut client = net.new_client(2, &info).await;
    let rpc = VoteRequest {
        vote: Vote::new(1, 1),
        last_log_id: None,
    };
    let option = RPCOption::new(Duration::from_millis(500));
    match client.vote(rpc.clone(), option.clone()).await {
        Err(RPCError::Unreachable(_)) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }
    faults
        .set(FaultSet {
            block_out: [2].into(),
            ..Default::default()
        })
        .unwrap();
    match client.vote(rpc, option).await {
        Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains("blocked"), "{e}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
