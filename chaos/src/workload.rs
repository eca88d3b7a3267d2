//! The mixed workload: clients (one thread each) sending requests to random nodes and
//! recording every operation in the [`History`].
//!
//! - `register-*`: `PATCH /v1/tenants/reg-K {"name"}` with unique values, and
//!   `GET /v1/tenants/reg-K?consistent=true` (the registers the WGL checker checks);
//! - `admin`: creates tenants and moves them between tiers (`PATCH {"tier"}`);
//! - `ratelimit-*`: `POST /v1/ratelimit/check` on buckets of known limits, renewed every
//!   few seconds so fresh buckets meet the faults;
//! - `evaluations`: submits evaluations against the builtin `mock` model.

use crate::history::{History, Op, Outcome};
use colony_nodeproc::{Client, Reply, TransportError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Registers (tenants whose `name` is the register).
pub const REGISTERS: usize = 3;
/// Buckets per rate-limit check.
pub const BUCKETS_PER_CHECK: usize = 4;
/// Every bucket's limit (hits per hour: nothing refills during a run).
pub const BUCKET_LIMIT: u64 = 40;
/// Buckets are renewed (new keys) this often.
pub const BUCKET_EPOCH_MS: u64 = 4000;
/// Cases per evaluation.
pub const EVAL_CASES: usize = 24;
/// Tiers tenants move between.
pub const TIERS: [&str; 3] = ["free", "pro", "enterprise"];

/// What every client shares.
#[derive(Debug)]
pub struct Ctx {
    /// Node base URLs by index.
    pub urls: Vec<String>,
    /// Admin token.
    pub admin: String,
    /// Tenant key of the rate-limit tenant.
    pub rl_key: String,
    /// Tenant key of the evaluations tenant.
    pub eval_key: String,
    /// The history.
    pub history: Arc<History>,
    /// Set to stop the clients.
    pub stop: AtomicBool,
    /// Seed of the run.
    pub seed: u64,
    /// Run start.
    pub start: Instant,
    /// Nodes the nemesis has taken down (killed, stopped, cut off): the failover probe
    /// avoids them, like a client behind a health-checking load balancer.
    pub down: Vec<AtomicBool>,
    /// Every client avoids the `down` nodes, not just the probe ("steady load through all
    /// ready nodes", as behind a load balancer); else they pick any node.
    pub only_up: bool,
}

impl Ctx {
    /// A random node for the next request: any node, or with `only_up` one that is not
    /// down (any node when all are).
    pub fn pick(&self, rng: &mut StdRng) -> usize {
        if self.only_up {
            let up: Vec<usize> = (0..self.urls.len())
                .filter(|&i| !self.down[i].load(Ordering::Relaxed))
                .collect();
            if !up.is_empty() {
                return up[rng.random_range(0..up.len())];
            }
        }
        rng.random_range(0..self.urls.len())
    }
}

/// The failover probe's tenant.
pub const PROBE: &str = "probe";

/// The register tenant ids.
pub fn register_id(k: usize) -> String {
    format!("reg-{k}")
}

/// The initial register value.
pub fn register_init(k: usize) -> String {
    format!("init-{k}")
}

/// Classifies a mutation's result.
fn write_outcome(res: &Result<Reply, TransportError>) -> Outcome {
    match res {
        Ok(r) if r.is_success() => Outcome::Ok,
        Ok(r) if r.status < 500 => Outcome::Fail,
        Ok(_) => Outcome::Info,
        Err(e) if e.refused => Outcome::Fail,
        Err(_) => Outcome::Info,
    }
}

/// Classifies a read's result (a failed read is simply not a read).
fn read_outcome(res: &Result<Reply, TransportError>) -> Outcome {
    match res {
        Ok(r) if r.is_success() => Outcome::Ok,
        _ => Outcome::Fail,
    }
}

struct Call<'a> {
    ctx: &'a Ctx,
    client: &'a Client,
    process: &'a str,
}

impl Call<'_> {
    /// Sends one request and records it; returns the answer when there was one.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        kind: &str,
        node: usize,
        key: &str,
        value: Option<String>,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
        request_id: Option<String>,
        is_write: bool,
    ) -> (Outcome, Option<Reply>) {
        let h = &self.ctx.history;
        let invoke_ms = h.now_ms();
        let url = format!("{}{path}", self.ctx.urls[node]);
        let res = self
            .client
            .call_with_id(method, &url, Some(token), body, request_id.as_deref());
        let complete_ms = h.now_ms();
        let outcome = if is_write {
            write_outcome(&res)
        } else {
            read_outcome(&res)
        };
        let mut value = value;
        let (status, detail) = match &res {
            Ok(r) if r.is_success() && value.is_none() => {
                // A submission: remember the evaluation's id and size.
                let v = r.json();
                value = v["id"].as_str().map(str::to_string);
                (Some(r.status), json!({"total": v["total"]}))
            }
            Ok(r) if r.is_success() => (Some(r.status), Value::Null),
            Ok(r) => (Some(r.status), json!({"error": truncate(&r.text)})),
            Err(e) => (
                None,
                json!({"error": truncate(&e.message), "refused": e.refused}),
            ),
        };
        h.push(Op {
            id: 0,
            process: self.process.to_string(),
            kind: kind.to_string(),
            node,
            key: key.to_string(),
            value,
            invoke_ms,
            complete_ms,
            outcome,
            status,
            request_id,
            detail,
        });
        (outcome, res.ok())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

fn pause(ctx: &Ctx, rng: &mut StdRng, lo: u64, hi: u64) {
    let ms = rng.random_range(lo..=hi);
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until && !ctx.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(ms.min(20)));
    }
}

/// A register client: writes unique names and reads them back linearizably.
pub fn register_client(ctx: Arc<Ctx>, t: usize) {
    let process = format!("register-{t}");
    let client = Client::new(Duration::from_secs(6));
    let call = Call {
        ctx: &ctx,
        client: &client,
        process: &process,
    };
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ (0x1000 + t as u64));
    let mut n = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        let k = rng.random_range(0..REGISTERS);
        let id = register_id(k);
        let node = ctx.pick(&mut rng);
        if rng.random_bool(0.5) {
            n += 1;
            let v = format!("{process}-{n}");
            let rid = format!("chaos-{}-{process}-{n}", ctx.seed);
            call.run(
                "register.write",
                node,
                &id,
                Some(v.clone()),
                "PATCH",
                &format!("/v1/tenants/{id}"),
                &ctx.admin,
                Some(&json!({"name": v})),
                Some(rid),
                true,
            );
        } else {
            let h = &ctx.history;
            let invoke_ms = h.now_ms();
            let url = format!("{}/v1/tenants/{id}?consistent=true", ctx.urls[node]);
            let res = client.get(&url, Some(&ctx.admin));
            let complete_ms = h.now_ms();
            let outcome = read_outcome(&res);
            let (status, value, detail) = match &res {
                Ok(r) if r.is_success() => (
                    Some(r.status),
                    r.json()["name"].as_str().map(str::to_string),
                    Value::Null,
                ),
                Ok(r) => (Some(r.status), None, json!({"error": truncate(&r.text)})),
                Err(e) => (None, None, json!({"error": truncate(&e.message)})),
            };
            h.push(Op {
                id: 0,
                process: process.clone(),
                kind: "register.read".into(),
                node,
                key: id,
                value,
                invoke_ms,
                complete_ms,
                outcome,
                status,
                request_id: None,
                detail,
            });
        }
        pause(&ctx, &mut rng, 5, 25);
    }
}

/// The admin client: creates tenants and moves them between tiers, one at a time.
pub fn admin_client(ctx: Arc<Ctx>) {
    let process = "admin";
    let client = Client::new(Duration::from_secs(6));
    let call = Call {
        ctx: &ctx,
        client: &client,
        process,
    };
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ 0x2000);
    let mut created: Vec<String> = Vec::new();
    let mut n = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        n += 1;
        let node = ctx.pick(&mut rng);
        let tier = TIERS[rng.random_range(0..TIERS.len())];
        let rid = format!("chaos-{}-{process}-{n}", ctx.seed);
        if created.is_empty() || rng.random_bool(0.35) {
            let id = format!("t-{n}");
            let (outcome, _) = call.run(
                "tenant.create",
                node,
                &id,
                Some(tier.to_string()),
                "POST",
                "/v1/tenants",
                &ctx.admin,
                Some(&json!({"id": id, "name": format!("tenant {n}"), "tier": tier})),
                Some(rid),
                true,
            );
            if outcome != Outcome::Fail {
                created.push(id);
            }
        } else {
            let id = created[rng.random_range(0..created.len())].clone();
            call.run(
                "tenant.tier",
                node,
                &id,
                Some(tier.to_string()),
                "PATCH",
                &format!("/v1/tenants/{id}"),
                &ctx.admin,
                Some(&json!({"tier": tier})),
                Some(rid),
                true,
            );
        }
        pause(&ctx, &mut rng, 20, 60);
    }
}

/// The failover probe: writes `PATCH /v1/tenants/probe` every 20 ms through a random node
/// the nemesis has not taken down, with a short timeout. The gaps between its
/// acknowledged writes are the write unavailability a careful client sees.
pub fn probe_client(ctx: Arc<Ctx>) {
    let process = "probe";
    let client = Client::new(Duration::from_secs(2));
    let call = Call {
        ctx: &ctx,
        client: &client,
        process,
    };
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ 0x5000);
    let mut n = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        let up: Vec<usize> = (0..ctx.urls.len())
            .filter(|&i| !ctx.down[i].load(Ordering::Relaxed))
            .collect();
        if up.is_empty() {
            pause(&ctx, &mut rng, 20, 20);
            continue;
        }
        let node = up[rng.random_range(0..up.len())];
        n += 1;
        let v = format!("probe-{n}");
        call.run(
            "probe.write",
            node,
            PROBE,
            Some(v.clone()),
            "PATCH",
            &format!("/v1/tenants/{PROBE}"),
            &ctx.admin,
            Some(&json!({"name": v})),
            Some(format!("chaos-{}-{process}-{n}", ctx.seed)),
            true,
        );
        pause(&ctx, &mut rng, 20, 20);
    }
}

/// The bucket keys of the epoch `ms` falls in.
pub fn bucket_keys(ms: u64) -> Vec<String> {
    let epoch = ms / BUCKET_EPOCH_MS;
    (0..BUCKETS_PER_CHECK)
        .map(|j| format!("b{j}-e{epoch}"))
        .collect()
}

/// A rate-limit client: one hit on each current bucket per request.
pub fn ratelimit_client(ctx: Arc<Ctx>, t: usize) {
    let process = format!("ratelimit-{t}");
    let client = Client::new(Duration::from_secs(4));
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ (0x3000 + t as u64));
    while !ctx.stop.load(Ordering::Relaxed) {
        let node = ctx.pick(&mut rng);
        let keys = bucket_keys(ctx.start.elapsed().as_millis() as u64);
        let requests: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({"name": "chaos", "key": k, "hits": 1, "limit": BUCKET_LIMIT,
                       "duration_ms": 3_600_000, "algorithm": "sliding_window"})
            })
            .collect();
        let body = json!({"requests": requests});
        let h = &ctx.history;
        let invoke_ms = h.now_ms();
        let url = format!("{}/v1/ratelimit/check", ctx.urls[node]);
        let res = client.call("POST", &url, Some(&ctx.rl_key), Some(&body));
        let complete_ms = h.now_ms();
        let (outcome, status, detail) = match &res {
            Ok(r) if r.is_success() => {
                let v = r.json();
                let statuses: Vec<Value> = v["responses"]
                    .as_array()
                    .map(|rs| {
                        rs.iter()
                            .map(|x| match x["status"].as_str() {
                                Some(s) => json!(s),
                                None => json!("error"),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    Outcome::Ok,
                    Some(r.status),
                    json!({"keys": keys, "statuses": statuses}),
                )
            }
            Ok(r) => (
                Outcome::Fail,
                Some(r.status),
                json!({"keys": keys, "error": truncate(&r.text)}),
            ),
            Err(e) => (
                Outcome::Fail,
                None,
                json!({"keys": keys, "error": truncate(&e.message)}),
            ),
        };
        h.push(Op {
            id: 0,
            process: process.clone(),
            kind: "ratelimit.check".into(),
            node,
            key: keys.join(","),
            value: None,
            invoke_ms,
            complete_ms,
            outcome,
            status,
            request_id: None,
            detail,
        });
        pause(&ctx, &mut rng, 10, 30);
    }
}

/// The evaluation spec the workload submits (`n` makes its prompts unique).
pub fn eval_spec(seed: u64, n: u64) -> Value {
    let cases: Vec<Value> = (0..EVAL_CASES)
        .map(|i| {
            let q = format!("chaos {seed} evaluation {n} case {i}");
            json!({"vars": {"q": q}, "reference": q})
        })
        .collect();
    json!({
        "providers": [{"id": "mock", "kind": "builtin", "model": "mock", "params": {"latency_ms": 40}}],
        "prompt": "{{q}}",
        "cases": cases,
        "scorers": [{"type": "exact_match"}, {"type": "token_f1"}],
        "concurrency": 2,
    })
}

/// The evaluations client: submits an evaluation every few seconds.
pub fn eval_client(ctx: Arc<Ctx>) {
    let process = "evaluations";
    let client = Client::new(Duration::from_secs(6));
    let call = Call {
        ctx: &ctx,
        client: &client,
        process,
    };
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ 0x4000);
    let mut n = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        n += 1;
        let node = ctx.pick(&mut rng);
        let rid = format!("chaos-{}-{process}-{n}", ctx.seed);
        call.run(
            "evaluation.submit",
            node,
            &format!("evaluation-{n}"),
            None,
            "POST",
            "/v1/evaluations",
            &ctx.eval_key,
            Some(&eval_spec(ctx.seed, n)),
            Some(rid),
            true,
        );
        pause(&ctx, &mut rng, 3000, 5000);
    }
}
