//! The checkers, run on the recorded history and on the healed cluster.

use crate::fault::Kind;
use crate::history::{FaultEvent, Op, Outcome};
use crate::wgl::{self, RegKind, RegOp, Verdict};
use crate::workload::{self, BUCKET_LIMIT};
use colony_nodeproc::Client;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// One checker's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Checker name.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// One line.
    pub summary: String,
    /// Everything else.
    pub details: Value,
}

fn check(name: &str, ok: bool, summary: String, details: Value) -> Check {
    Check {
        name: name.into(),
        ok,
        summary,
        details,
    }
}

/// WGL on every register (tenant `name`, written with PATCH, read with `?consistent=true`).
pub fn linearizability(ops: &[Op]) -> Check {
    let mut per_key = Vec::new();
    let mut ok = true;
    let mut total = 0;
    let started = Instant::now();
    for k in 0..workload::REGISTERS {
        let id = workload::register_id(k);
        let reg: Vec<RegOp> = ops
            .iter()
            .filter(|o| o.key == id)
            .filter_map(|o| {
                let us = |ms: f64| (ms * 1000.0) as u64;
                match (o.kind.as_str(), o.outcome) {
                    ("register.write", Outcome::Ok) => Some(RegOp {
                        id: o.id,
                        invoke: us(o.invoke_ms),
                        ret: Some(us(o.complete_ms)),
                        kind: RegKind::Write(o.value.clone().unwrap_or_default()),
                    }),
                    ("register.write", Outcome::Info) => Some(RegOp {
                        id: o.id,
                        invoke: us(o.invoke_ms),
                        ret: None,
                        kind: RegKind::Write(o.value.clone().unwrap_or_default()),
                    }),
                    ("register.read", Outcome::Ok) => Some(RegOp {
                        id: o.id,
                        invoke: us(o.invoke_ms),
                        ret: Some(us(o.complete_ms)),
                        kind: RegKind::Read(o.value.clone().unwrap_or_default()),
                    }),
                    _ => None,
                }
            })
            .collect();
        total += reg.len();
        let writes = reg
            .iter()
            .filter(|o| matches!(o.kind, RegKind::Write(_)))
            .count();
        let unknown = reg.iter().filter(|o| o.ret.is_none()).count();
        let verdict = wgl::check_register(&workload::register_init(k), &reg, 5_000_000);
        let (good, text) = match &verdict {
            Verdict::Linearizable => (true, "linearizable".to_string()),
            Verdict::NotLinearizable { prefix, stuck } => (
                false,
                format!("NOT linearizable: longest prefix {prefix}, cannot place ops {stuck:?}"),
            ),
            Verdict::Unknown { steps } => (false, format!("unknown after {steps} steps")),
        };
        ok &= good;
        per_key.push(json!({"register": id, "ops": reg.len(), "writes": writes,
                            "unknown_writes": unknown, "verdict": text}));
    }
    check(
        "linearizable-registers",
        ok,
        format!(
            "{} register ops on {} registers checked with WGL in {:.0} ms: {}",
            total,
            workload::REGISTERS,
            started.elapsed().as_secs_f64() * 1000.0,
            if ok { "linearizable" } else { "VIOLATION" }
        ),
        json!(per_key),
    )
}

fn get_json(client: &Client, url: &str, token: &str) -> Result<Value, String> {
    let r = client.get(url, Some(token)).map_err(|e| e.to_string())?;
    if !r.is_success() {
        return Err(format!("{url}: {} {}", r.status, r.text));
    }
    Ok(r.json())
}

/// Every acknowledged admin write is on every node (local reads after convergence):
/// created tenants exist, each tenant's tier is its last acknowledged one (or a later
/// write of unknown outcome), and every node has the same register values.
pub fn acked_writes(urls: &[String], admin: &str, ops: &[Op]) -> Check {
    let client = Client::new(Duration::from_secs(5));
    let mut problems: Vec<String> = Vec::new();
    let mut views: Vec<HashMap<String, Value>> = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        match get_json(&client, &format!("{u}/v1/tenants"), admin) {
            Ok(v) => views.push(
                v.as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| Some((t["id"].as_str()?.to_string(), t)))
                    .collect(),
            ),
            Err(e) => {
                problems.push(format!("node {}: {e}", i + 1));
                views.push(HashMap::new());
            }
        }
    }
    // Per tenant, its writes in order (one client writes each tenant, sequentially).
    let mut writes: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for o in ops {
        if matches!(o.kind.as_str(), "tenant.create" | "tenant.tier") {
            writes.entry(o.key.as_str()).or_default().push(o);
        }
    }
    let mut acked_creates = 0;
    let mut acked_tiers = 0;
    for (id, ws) in &writes {
        let created = ws
            .iter()
            .any(|o| o.kind == "tenant.create" && o.outcome == Outcome::Ok);
        acked_creates += usize::from(created);
        acked_tiers += ws
            .iter()
            .filter(|o| o.kind == "tenant.tier" && o.outcome == Outcome::Ok)
            .count();
        let last_ok = ws.iter().rposition(|o| o.outcome == Outcome::Ok);
        let allowed: BTreeSet<&str> = match last_ok {
            Some(p) => ws[p..]
                .iter()
                .filter(|o| o.outcome != Outcome::Fail)
                .filter_map(|o| o.value.as_deref())
                .collect(),
            None => ws
                .iter()
                .filter(|o| o.outcome != Outcome::Fail)
                .filter_map(|o| o.value.as_deref())
                .collect(),
        };
        for (i, view) in views.iter().enumerate() {
            match view.get(*id) {
                None if created => problems.push(format!(
                    "node {}: acknowledged tenant {id} is missing",
                    i + 1
                )),
                None => {}
                Some(t) => {
                    let tier = t["tier"].as_str().unwrap_or("");
                    if last_ok.is_some() && !allowed.contains(tier) {
                        problems.push(format!(
                            "node {}: tenant {id} has tier {tier}, acknowledged/possible: {allowed:?}",
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    for k in 0..workload::REGISTERS {
        let id = workload::register_id(k);
        let names: BTreeSet<String> = views
            .iter()
            .map(|v| {
                v.get(&id)
                    .and_then(|t| t["name"].as_str())
                    .unwrap_or("<missing>")
                    .to_string()
            })
            .collect();
        if names.len() != 1 {
            problems.push(format!("register {id} differs between nodes: {names:?}"));
        }
    }
    check(
        "acked-writes-on-every-node",
        problems.is_empty(),
        format!(
            "{acked_creates} acknowledged tenant creations and {acked_tiers} tier updates on {} tenants, read on {} nodes: {}",
            writes.len(),
            urls.len(),
            if problems.is_empty() { "all present".to_string() } else { format!("{} problems", problems.len()) }
        ),
        json!({"problems": problems}),
    )
}

/// The audit chain verifies on every node, every node has the same head, and every
/// acknowledged mutation is in it exactly once (unknown ones at most once, failed ones
/// never), matched by request id.
pub fn audit(urls: &[String], admin: &str, ops: &[Op], evals: &[(String, u64)]) -> Check {
    let client = Client::new(Duration::from_secs(10));
    let mut problems = Vec::new();
    let mut heads = BTreeSet::new();
    let mut checked = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        match get_json(&client, &format!("{u}/v1/audit/verify"), admin) {
            Ok(v) => {
                if v["ok"] != json!(true) {
                    problems.push(format!("node {}: audit chain does not verify: {v}", i + 1));
                }
                heads.insert(v["head_hash"].as_str().unwrap_or("").to_string());
                checked.push(v["entries_checked"].clone());
            }
            Err(e) => problems.push(format!("node {}: {e}", i + 1)),
        }
    }
    if heads.len() > 1 {
        problems.push(format!("nodes have different audit heads: {heads:?}"));
    }
    // Every entry, from every node: the same request ids on each.
    let mut per_node_counts: Vec<HashMap<String, usize>> = Vec::new();
    let mut completes: HashMap<String, usize> = HashMap::new();
    let mut entries_total = 0;
    for (i, u) in urls.iter().enumerate() {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{u}/v1/audit?limit=1000&cursor={c}"),
                None => format!("{u}/v1/audit?limit=1000"),
            };
            match get_json(&client, &url, admin) {
                Ok(page) => {
                    for e in page["entries"].as_array().into_iter().flatten() {
                        if i == 0 {
                            entries_total += 1;
                            if e["action"] == "evaluation.complete" {
                                let r = e["resource"].as_str().unwrap_or("");
                                *completes
                                    .entry(r.trim_start_matches("evaluations/").to_string())
                                    .or_default() += 1;
                            }
                        }
                        if let Some(r) = e["request_id"].as_str() {
                            *counts.entry(r.to_string()).or_default() += 1;
                        }
                    }
                    match page["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_string()),
                        None => match &page["next_cursor"] {
                            Value::Number(n) => cursor = Some(n.to_string()),
                            _ => break,
                        },
                    }
                }
                Err(e) => {
                    problems.push(format!("node {}: {e}", i + 1));
                    break;
                }
            }
        }
        per_node_counts.push(counts);
    }
    let (mut acked, mut unknown_in, mut unknown_out, mut failed) = (0, 0, 0, 0);
    for o in ops {
        let Some(rid) = &o.request_id else { continue };
        for (i, counts) in per_node_counts.iter().enumerate() {
            let n = counts.get(rid).copied().unwrap_or(0);
            let bad = match o.outcome {
                Outcome::Ok => n != 1,
                Outcome::Info => n > 1,
                Outcome::Fail => n != 0,
            };
            if bad {
                problems.push(format!(
                    "node {}: {} {} ({:?}, request {rid}) is in the audit log {n} times",
                    i + 1,
                    o.kind,
                    o.key,
                    o.outcome
                ));
            }
            if i == 0 {
                match (o.outcome, n) {
                    (Outcome::Ok, _) => acked += 1,
                    (Outcome::Info, 0) => unknown_out += 1,
                    (Outcome::Info, _) => unknown_in += 1,
                    (Outcome::Fail, _) => failed += 1,
                }
            }
        }
    }
    for (id, _) in evals {
        let n = completes.get(id).copied().unwrap_or(0);
        if n != 1 {
            problems.push(format!(
                "evaluation {id}: {n} evaluation.complete audit entries, want 1"
            ));
        }
    }
    problems.truncate(50);
    check(
        "audit",
        problems.is_empty(),
        format!(
            "chain verifies on {} nodes ({} entries, one head); {acked} acknowledged mutations each exactly once, {unknown_in}+{unknown_out} unknown (applied+not), {failed} failed never; {} evaluation.complete once each",
            urls.len(),
            entries_total,
            evals.len()
        ),
        json!({"problems": problems, "entries_checked": checked, "heads": heads}),
    )
}

/// Every acknowledged evaluation completed with every case exactly once.
pub fn evaluations(
    urls: &[String],
    key: &str,
    evals: &[(String, u64)],
    bound: Duration,
) -> (Check, f64) {
    let client = Client::new(Duration::from_secs(10));
    let started = Instant::now();
    let deadline = started + bound;
    let mut problems = Vec::new();
    let mut results_total = 0;
    for (n, (id, total)) in evals.iter().enumerate() {
        let u = &urls[n % urls.len()];
        let status = loop {
            match get_json(&client, &format!("{u}/v1/evaluations/{id}"), key) {
                Ok(v) if v["status"] == "completed" => break Some(v),
                Ok(v)
                    if !matches!(v["status"].as_str(), Some("queued" | "running"))
                        || Instant::now() > deadline =>
                {
                    problems.push(format!(
                        "{id}: status {} progress {}",
                        v["status"], v["progress"]
                    ));
                    break None;
                }
                Err(e) if Instant::now() > deadline => {
                    problems.push(format!("{id}: {e}"));
                    break None;
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let Some(v) = status else { continue };
        let done = v["progress"]["done"].as_u64().unwrap_or(0);
        let vtotal = v["progress"]["total"].as_u64().unwrap_or(*total);
        if done != *total || vtotal != *total {
            problems.push(format!(
                "{id}: progress {} but {total} items submitted",
                v["progress"]
            ));
        }
        // Every result, paged.
        let mut seen = BTreeSet::new();
        let mut dups = 0;
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{u}/v1/evaluations/{id}/results?limit=7&cursor={c}"),
                None => format!("{u}/v1/evaluations/{id}/results?limit=7"),
            };
            match get_json(&client, &url, key) {
                Ok(page) => {
                    for r in page["results"].as_array().into_iter().flatten() {
                        let k = (
                            r["case_index"].as_u64().unwrap_or(u64::MAX),
                            r["provider_id"].as_str().unwrap_or("").to_string(),
                            r["repeat"].as_u64().unwrap_or(0),
                        );
                        if !seen.insert(k) {
                            dups += 1;
                        }
                    }
                    cursor = match &page["next_cursor"] {
                        Value::Number(n) => Some(n.to_string()),
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    };
                    if cursor.is_none() {
                        break;
                    }
                }
                Err(e) => {
                    problems.push(format!("{id} results: {e}"));
                    break;
                }
            }
        }
        results_total += seen.len();
        if dups > 0 || seen.len() as u64 != *total {
            problems.push(format!(
                "{id}: {} distinct results and {dups} duplicates, want {total}",
                seen.len()
            ));
        }
    }
    let waited = started.elapsed().as_secs_f64();
    (
        check(
            "evaluations-exactly-once",
            problems.is_empty(),
            format!(
                "{} acknowledged evaluations, {results_total} results paged: {}",
                evals.len(),
                if problems.is_empty() {
                    "all completed, every case exactly once".to_string()
                } else {
                    format!("{} problems", problems.len())
                }
            ),
            json!({"problems": problems, "waited_s": waited}),
        ),
        waited,
    )
}

/// Rate-limit over-admission within the README's bound. Per bucket, the admissions are
/// taken in invocation order; every one beyond the limit must be covered by a fault:
///
/// - a crash-like fault (kill, pause) covers, from its start on, as many admissions as
///   the bucket admitted in the 500 ms before it started — the README's "what the owner
///   admitted after its last replication", generously. The bound is on the amount, not
///   the time: the interim owner continues from a replica that misses those admissions,
///   so the excess shows whenever the bucket next reaches its limit, which may be well
///   after the heal (finding 12). It ends at the bucket's first refusal after the heal:
///   from then on the bucket is full again, and any admission beyond the limit is a second
///   copy;
/// - a partition is not a crash and the README states no bound for it: both sides keep
///   serving (the cut-off node owns every bucket in its own view), so it covers up to one
///   more limit while it lasts and for 2 s after the heal (gossip merging the views),
///   reported separately;
/// - joins, restarts and drains are exact by the README, so nothing covers an admission
///   beyond the limit after a restarted node is back.
pub fn ratelimit(ops: &[Op], faults: &[FaultEvent]) -> Check {
    // bucket -> admissions (invoke, complete), in invocation order (ops are sorted).
    let mut admitted: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    // bucket -> invocation times of the checks refused as over the limit.
    let mut refused: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut checks = 0;
    let mut errors = 0;
    for o in ops.iter().filter(|o| o.kind == "ratelimit.check") {
        checks += 1;
        if o.outcome != Outcome::Ok {
            errors += 1;
            continue;
        }
        let keys = o.detail["keys"].as_array().cloned().unwrap_or_default();
        let statuses = o.detail["statuses"].as_array().cloned().unwrap_or_default();
        for (k, s) in keys.iter().zip(statuses.iter()) {
            let key = k.as_str().unwrap_or("").to_string();
            let entry = admitted.entry(key.clone()).or_default();
            if s == "under_limit" {
                entry.push((o.invoke_ms, o.complete_ms));
            } else if s == "over_limit" {
                refused.entry(key.clone()).or_default().push(o.invoke_ms);
            } else if s == "error" {
                errors += 1;
            }
        }
    }
    let mut problems = Vec::new();
    let (mut over_total, mut partition_over, mut crash_over) = (0u64, 0u64, 0u64);
    let mut worst = json!(null);
    let mut worst_over = 0u64;
    for (key, times) in &admitted {
        // Per fault: (from, to, remaining allowance, is a partition).
        let mut windows: Vec<(f64, f64, u64, bool)> = faults
            .iter()
            .filter_map(|f| {
                let kind = Kind::EVERY.iter().find(|k| k.name() == f.kind)?;
                if kind.is_partition_like() {
                    // The sides keep serving apart until the views merge: 2 s after the
                    // heal, or until the cluster converged when that took longer (real
                    // network faults make members renew their identities first).
                    let merged = f.converged_ms.unwrap_or(0.0).max(f.heal_ms + 2000.0);
                    Some((f.start_ms, merged, BUCKET_LIMIT, true))
                } else if kind.is_crash_like() {
                    let before = times
                        .iter()
                        .filter(|(inv, done)| *inv <= f.start_ms && *done >= f.start_ms - 500.0)
                        .count() as u64;
                    // Until the bucket is first refused after the heal: from then on it
                    // is full again, and an admission beyond the limit is a new copy.
                    let full_again = refused
                        .get(key)
                        .and_then(|r| r.iter().copied().find(|t| *t >= f.heal_ms))
                        .unwrap_or(f64::INFINITY);
                    Some((f.start_ms, full_again, before, false))
                } else {
                    None
                }
            })
            .collect();
        let mut uncovered = Vec::new();
        for (n, (inv, _)) in times.iter().enumerate() {
            if (n as u64) < BUCKET_LIMIT {
                continue;
            }
            over_total += 1;
            match windows
                .iter_mut()
                .find(|(from, to, left, _)| *left > 0 && *inv >= *from && *inv <= *to)
            {
                Some(w) => {
                    w.2 -= 1;
                    if w.3 {
                        partition_over += 1;
                    } else {
                        crash_over += 1;
                    }
                }
                None => uncovered.push(*inv),
            }
        }
        let over = (times.len() as u64).saturating_sub(BUCKET_LIMIT);
        if over > worst_over {
            worst_over = over;
            worst = json!({"bucket": key, "admitted": times.len(), "limit": BUCKET_LIMIT});
        }
        if !uncovered.is_empty() {
            problems.push(format!(
                "bucket {key}: admitted {} (limit {BUCKET_LIMIT}); {} admissions beyond the limit not covered by a fault's bound, first at {:.2}s, last at {:.2}s",
                times.len(),
                uncovered.len(),
                uncovered[0] / 1000.0,
                uncovered[uncovered.len() - 1] / 1000.0
            ));
        }
    }
    check(
        "ratelimit-over-admission",
        problems.is_empty(),
        format!(
            "{} buckets (limit {BUCKET_LIMIT} each), {checks} checks ({errors} failed or item errors): over-admission {over_total} ({crash_over} within crash bounds, {partition_over} during partitions, {} uncovered), worst bucket +{worst_over}; {}",
            admitted.len(),
            over_total - crash_over - partition_over,
            if problems.is_empty() { "within the bound" } else { "BOUND EXCEEDED" }
        ),
        json!({"problems": problems, "worst": worst, "crash_bound_over_admission": crash_over,
               "partition_over_admission": partition_over,
               "uncovered_over_admission": over_total - crash_over - partition_over}),
    )
}

/// Every fault was followed by convergence within the bound, and the final state converged
/// (same leader, all members active, full voters, same audit head).
pub fn convergence(
    faults: &[FaultEvent],
    final_ok: &Result<f64, String>,
    bound: Duration,
) -> Check {
    let mut problems = Vec::new();
    let mut times = Vec::new();
    for f in faults {
        match f.converged_ms {
            Some(c) => times.push((c - f.heal_ms) / 1000.0),
            None => problems.push(format!("{} of {}: {}", f.kind, f.targets(), f.note)),
        }
    }
    if let Err(e) = final_ok {
        problems.push(format!("final: {e}"));
    }
    let max = times.iter().copied().fold(0.0f64, f64::max);
    check(
        "convergence",
        problems.is_empty(),
        format!(
            "after each of {} faults healed, converged in at most {max:.1} s (bound {} s){}",
            faults.len(),
            bound.as_secs(),
            match final_ok {
                Ok(s) => format!("; final convergence with the same audit head in {s:.1} s"),
                Err(_) => "; final convergence FAILED".into(),
            }
        ),
        json!({"problems": problems, "after_heal_s": times}),
    )
}

/// No answer was a 5xx and no request was lost in flight (reset or timed out); refused
/// connections (the request never reached a node) are counted, not failed. Run on the
/// rolling scenarios, whose load goes to ready nodes only.
pub fn server_errors(ops: &[Op]) -> Check {
    let mut by_kind: std::collections::BTreeMap<&str, [u64; 3]> = Default::default();
    let mut problems = Vec::new();
    for o in ops {
        let slot = match o.status {
            Some(s) if s >= 500 => 0,
            Some(_) => continue,
            None if o.detail["refused"].as_bool() == Some(true) => 2,
            None => 1,
        };
        by_kind.entry(o.kind.as_str()).or_default()[slot] += 1;
        if slot < 2 && problems.len() < 20 {
            problems.push(format!(
                "{} to n{} at {:.1}s: {} {}",
                o.kind,
                o.node + 1,
                o.invoke_ms / 1000.0,
                o.status.map_or("no answer".to_string(), |s| s.to_string()),
                o.detail["error"].as_str().unwrap_or("")
            ));
        }
    }
    let total = |i: usize| by_kind.values().map(|v| v[i]).sum::<u64>();
    let (fivexx, lost, refused) = (total(0), total(1), total(2));
    check(
        "no-server-errors",
        fivexx == 0 && lost == 0,
        format!(
            "{fivexx} 5xx answers, {lost} requests lost in flight, {refused} refused connections in {} operations",
            ops.len()
        ),
        json!({"problems": problems,
               "by_kind": by_kind.iter().map(|(k, v)| (k.to_string(), json!({"5xx": v[0], "lost": v[1], "refused": v[2]}))).collect::<serde_json::Map<_, _>>()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(status: Option<u16>, detail: Value) -> Op {
        Op {
            id: 0,
            process: "p".into(),
            kind: "register.write".into(),
            node: 0,
            key: "k".into(),
            value: None,
            invoke_ms: 0.0,
            complete_ms: 1.0,
            outcome: Outcome::Ok,
            status,
            request_id: None,
            detail,
        }
    }

    /// One single-item check of `bucket` at `at` ms that was admitted.
    fn admitted(bucket: &str, at: f64) -> Op {
        let mut o = op(
            Some(200),
            json!({"keys": [bucket], "statuses": ["under_limit"]}),
        );
        o.kind = "ratelimit.check".into();
        o.invoke_ms = at;
        o.complete_ms = at + 1.0;
        o
    }

    fn kill(start_ms: f64, heal_ms: f64) -> FaultEvent {
        FaultEvent {
            kind: "kill-minority".into(),
            node: 3,
            also: vec![4],
            was_leader: false,
            leader_hit: false,
            start_ms,
            heal_ms,
            converged_ms: Some(heal_ms + 200.0),
            leader_after: Some(1),
            note: String::new(),
        }
    }

    /// Finding 12 (`--scenario minority --nodes 5 --seed 4`): the owner admitted 8 in the
    /// 100 ms before it was killed, its replica held 4, and the interim owner admitted 36
    /// more from there, the last 4 of them (beyond the limit) after the heal.
    #[test]
    fn a_crash_covers_its_lost_admissions_whenever_the_bucket_reaches_its_limit() {
        let mut ops: Vec<Op> = (0..8)
            .map(|i| admitted("b", 16_040.0 + 10.0 * f64::from(i)))
            .collect();
        ops.extend((0..36).map(|i| admitted("b", 17_450.0 + 55.0 * f64::from(i))));
        let faults = [kill(16_100.0, 19_100.0)];
        assert!(ops.last().is_some_and(|o| o.invoke_ms > 19_350.0));
        let c = ratelimit(&ops, &faults);
        assert!(c.ok, "{}", c.summary);
        assert!(c.summary.contains("4 within crash bounds"), "{}", c.summary);
    }

    #[test]
    fn a_crash_does_not_cover_more_than_the_owner_admitted_just_before_it() {
        // 10 admitted long before the kill (replicated), 4 just before it, then a whole
        // fresh limit after the restart: +4 is the crash's, the other 10 are a restarted
        // node starting the bucket afresh, which the README says never happens.
        let mut ops: Vec<Op> = (0..10)
            .map(|i| admitted("b", 14_000.0 + 10.0 * f64::from(i)))
            .collect();
        ops.extend((0..4).map(|i| admitted("b", 16_040.0 + 10.0 * f64::from(i))));
        ops.extend((0..40).map(|i| admitted("b", 19_400.0 + 10.0 * f64::from(i))));
        let c = ratelimit(&ops, &[kill(16_100.0, 19_100.0)]);
        assert!(!c.ok, "{}", c.summary);
        assert!(
            c.summary
                .contains("(4 within crash bounds, 0 during partitions, 10 uncovered)"),
            "{}",
            c.summary
        );
        // Without the fault nothing is covered.
        assert!(!ratelimit(&ops, &[]).ok);
    }

    #[test]
    fn a_crash_allowance_ends_once_the_bucket_is_refused_after_the_heal() {
        // The whole limit just before the kill, a refusal after the heal, then a fresh
        // limit at 60 s: a restarted bucket, not the crash's loss.
        let mut ops: Vec<Op> = (0..40)
            .map(|i| admitted("b", 15_700.0 + 10.0 * f64::from(i)))
            .collect();
        let mut no = admitted("b", 19_400.0);
        no.detail = json!({"keys": ["b"], "statuses": ["over_limit"]});
        ops.push(no);
        ops.extend((0..40).map(|i| admitted("b", 60_000.0 + 10.0 * f64::from(i))));
        let c = ratelimit(&ops, &[kill(16_100.0, 19_100.0)]);
        assert!(!c.ok, "{}", c.summary);
    }

    #[test]
    fn server_errors_fail_on_5xx_and_lost_requests_but_not_on_refusals() {
        let ok = vec![
            op(Some(200), Value::Null),
            op(Some(429), Value::Null),
            op(None, json!({"error": "refused", "refused": true})),
        ];
        assert!(server_errors(&ok).ok);
        let mut five = ok.clone();
        five.push(op(Some(503), json!({"error": "no leader"})));
        assert!(!server_errors(&five).ok);
        let mut lost = ok;
        lost.push(op(None, json!({"error": "timed out", "refused": false})));
        let c = server_errors(&lost);
        assert!(!c.ok);
        assert!(c.summary.contains("1 requests lost"), "{}", c.summary);
    }
}
