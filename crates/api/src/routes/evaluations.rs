//! `/v1/evaluations`: submit, follow, page through results, export, cancel (tenant); and
//! `GET /v1/usage`: the tenant's tokens and cost by day and model, and budget left.
//!
//! A tenant sees only its own evaluations: another tenant's id answers 404, exactly like
//! an id that does not exist.

use super::{propose, unexpected};
use crate::auth::{Admin, TenantCaller};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::RequestId;
use crate::problem::{ApiResult, ErrorCode, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use colony_core::clock::now_ms;
use colony_core::command::{Command, CommandOutput};
use colony_core::evaluation::{
    day_of, month_of, nanos_to_usd, EvaluationRecord, EvaluationStatus, UsageTotals,
};
use colony_eval::{CaseResult, SpecLimits, ValidatedSpec};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Most results in one page.
const MAX_PAGE: usize = 1000;

fn principal(caller: &TenantCaller) -> String {
    format!("tenant:{}", caller.tenant.id)
}

/// The record as the API shows it (with its spec for one evaluation).
fn view(r: &EvaluationRecord, spec: Option<Value>) -> Value {
    let mut v = json!({
        "id": r.id,
        "tenant": r.tenant,
        "status": r.status.as_str(),
        "owner": r.owner.to_string(),
        "epoch": r.epoch,
        "progress": {
            "total": r.total,
            "done": r.done.len(),
            "failed": r.failed,
            "cached": r.cached,
        },
        "usage": {
            "prompt_tokens": r.usage.prompt_tokens,
            "completion_tokens": r.usage.completion_tokens,
            "cost_usd": r.usage.cost_usd(),
        },
        "error": r.error,
        "created_at_ms": r.created_at_ms,
        "updated_at_ms": r.updated_at_ms,
        "finished_at_ms": r.finished_at_ms,
    });
    if let Some(spec) = spec {
        v["spec"] = spec;
    }
    v
}

fn own(app: &AppState, caller: &TenantCaller, id: &str) -> ApiResult<EvaluationRecord> {
    app.raft
        .read_state(|s| s.evaluations.get(id).cloned())
        .filter(|r| r.tenant == caller.tenant.id)
        .ok_or_else(|| Problem::not_found("evaluation", id))
}

fn evaluation_output(out: CommandOutput) -> ApiResult<EvaluationRecord> {
    match out {
        CommandOutput::Evaluation(r) => Ok(*r),
        other => Err(unexpected(&other)),
    }
}

/// Submits an evaluation: 202 with its id and status once the submission is committed.
pub async fn submit(
    caller: TenantCaller,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // Validation compiles regexes and walks every case: off the async workers.
    let limits = app.settings.spec_limits;
    let checked = body.clone();
    let validated = tokio::task::spawn_blocking(move || colony_eval::validate(&checked, &limits))
        .await
        .map_err(|e| Problem::new(ErrorCode::Internal, format!("validating: {e}")))?;
    let spec = validated.map_err(|e| {
        let first = e.errors.first();
        Problem::invalid_field(
            first.map(|x| x.pointer.clone()).unwrap_or_default(),
            first.map_or_else(|| "invalid spec".to_string(), |x| x.message.clone()),
        )
        .with_errors(
            e.errors
                .iter()
                .map(|x| (x.pointer.clone(), x.message.clone()))
                .collect(),
        )
    })?;
    let total = u32::try_from(colony_eval::Plan::new(&spec).len())
        .map_err(|_| Problem::invalid_field("/cases", "too many work items"))?;
    let id = format!("ev_{}", hex::encode(rand::random::<[u8; 8]>()));
    let members = app.limiter.owners_view();
    let me = app.raft.status().node_id;
    let owner = colony_placement::owner(id.as_bytes(), &members).unwrap_or(me);
    let record = EvaluationRecord {
        id: id.clone(),
        tenant: caller.tenant.id.clone(),
        total,
        status: EvaluationStatus::Queued,
        owner,
        epoch: 1,
        done: Default::default(),
        failed: 0,
        cached: 0,
        usage: UsageTotals::default(),
        error: None,
        created_at_ms: 0,
        updated_at_ms: 0,
        finished_at_ms: None,
    };
    let limits = super::log_speaks(&app, colony_cluster::features::RAFT_EVALUATION_LIMITS_V1);
    let out = propose(
        &app,
        &rid,
        &principal(&caller),
        Command::SubmitEvaluation {
            record,
            spec: body,
            max_live: limits.then_some(app.settings.max_live_evaluations),
            max_stored: limits.then_some(app.settings.max_stored_evaluations),
        },
    )
    .await?;
    let r = evaluation_output(out)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": r.id, "status": r.status.as_str(), "total": r.total})),
    ))
}

/// Query of the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<EvaluationStatus>,
}

/// The caller's evaluations, newest first, optionally of one status.
pub async fn list(
    caller: TenantCaller,
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Json<Value> {
    let mut items: Vec<EvaluationRecord> = app.raft.read_state(|s| {
        s.evaluations
            .values()
            .filter(|r| r.tenant == caller.tenant.id && q.status.is_none_or(|st| r.status == st))
            .cloned()
            .collect()
    });
    items.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
    Json(json!({"evaluations": items.iter().map(|r| view(r, None)).collect::<Vec<_>>()}))
}

/// Every stored result of `r`, parsed.
async fn all_results(app: &AppState, r: &EvaluationRecord) -> ApiResult<Vec<CaseResult>> {
    let rows = app
        .raft
        .eval_results(r.id.clone(), 0, r.total as usize)
        .await
        .map_err(|e| Problem::new(ErrorCode::Internal, format!("reading results: {e}")))?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value::<CaseResult>(v).ok())
        .collect())
}

fn stored_spec(app: &AppState, r: &EvaluationRecord) -> Value {
    app.raft
        .read_state(|s| s.eval_specs.get(&r.id).cloned())
        .unwrap_or(Value::Null)
}

/// The validated spec of `r`, from the cache or validated once (off the async workers).
async fn spec_of(app: &AppState, r: &EvaluationRecord) -> ApiResult<Arc<ValidatedSpec>> {
    if let Some(spec) = app.eval_cache.spec(&r.id) {
        return Ok(spec);
    }
    let _turn = app.eval_cache.turn().await?;
    // Whoever held the turn before may have validated it.
    if let Some(spec) = app.eval_cache.spec(&r.id) {
        return Ok(spec);
    }
    let body = stored_spec(app, r);
    let spec =
        tokio::task::spawn_blocking(move || colony_eval::validate(&body, &SpecLimits::unbounded()))
            .await
            .map_err(|e| Problem::new(ErrorCode::Internal, format!("validating: {e}")))?
            .map_err(|e| Problem::new(ErrorCode::Internal, format!("stored spec: {e}")))?;
    let spec = Arc::new(spec);
    app.eval_cache.put_spec(&r.id, spec.clone());
    Ok(spec)
}

/// Bounded caches of what `GET /v1/evaluations/{id}` derives from the state: the
/// validated spec (validated once, not on every GET) and the aggregates and comparisons
/// as of a number of recorded items (recomputed only after a checkpoint added some).
///
/// It also holds the node's export slots: a streamed export keeps one for as long as its
/// body is being sent (also to a slow reader), at most [`EXPORTS_AT_ONCE`] on the node and
/// [`EXPORTS_PER_TENANT`] per tenant.
#[derive(Debug)]
pub struct EvalCache {
    inner: Mutex<HashMap<String, Cached>>,
    /// Derivations (validation, aggregation) running at once on this node: many GETs at
    /// once wait here instead of each taking a blocking thread.
    work: tokio::sync::Semaphore,
    /// Exports being streamed on this node.
    exports: Arc<tokio::sync::Semaphore>,
    /// Exports being streamed per tenant.
    exports_by_tenant: Arc<Mutex<HashMap<String, usize>>>,
}

/// Most derivations at once (see [`EvalCache::work`]).
const DERIVE_AT_ONCE: usize = 2;

/// Longest wait for a derivation turn before answering 503.
const DERIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most exports streamed at once on one node.
pub const EXPORTS_AT_ONCE: usize = 8;

/// Most exports one tenant streams at once on one node.
pub const EXPORTS_PER_TENANT: usize = 2;

impl Default for EvalCache {
    fn default() -> Self {
        EvalCache {
            inner: Mutex::default(),
            work: tokio::sync::Semaphore::new(DERIVE_AT_ONCE),
            exports: Arc::new(tokio::sync::Semaphore::new(EXPORTS_AT_ONCE)),
            exports_by_tenant: Arc::default(),
        }
    }
}

/// One export's slot, held by its body stream; dropping it (the stream ended, or the
/// client went away) frees it.
#[derive(Debug)]
pub struct ExportSlot {
    _node: tokio::sync::OwnedSemaphorePermit,
    tenant: String,
    by_tenant: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut map = self.by_tenant.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.tenant);
            }
        }
    }
}

#[derive(Debug)]
struct Cached {
    spec: Arc<ValidatedSpec>,
    derived: Option<(usize, Value, Value)>,
}

/// Most evaluations cached; past it the cache starts again (a miss only costs work).
const EVAL_CACHE_ENTRIES: usize = 64;

impl EvalCache {
    /// A turn at deriving; waiters queue in order, for at most [`DERIVE_WAIT`] (then 503).
    async fn turn(&self) -> ApiResult<tokio::sync::SemaphorePermit<'_>> {
        match tokio::time::timeout(DERIVE_WAIT, self.work.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(e)) => Err(Problem::new(
                ErrorCode::Internal,
                format!("derivation queue: {e}"),
            )),
            Err(_) => Err(Problem::new(
                ErrorCode::Unavailable,
                "the node is busy computing other evaluations' aggregates; retry shortly",
            )
            .with_retry_after(2)),
        }
    }

    /// An export slot for `tenant`, or 429 when the tenant already streams
    /// [`EXPORTS_PER_TENANT`] exports here, or 503 when the node streams
    /// [`EXPORTS_AT_ONCE`].
    fn export_slot(&self, tenant: &str) -> ApiResult<ExportSlot> {
        let mut map = self
            .exports_by_tenant
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mine = map.get(tenant).copied().unwrap_or(0);
        if mine >= EXPORTS_PER_TENANT {
            return Err(Problem::new(
                ErrorCode::TooManyRequests,
                format!(
                    "{mine} exports of this tenant are already being streamed from this node \
                     (at most {EXPORTS_PER_TENANT}); wait for one to finish"
                ),
            )
            .with_retry_after(5));
        }
        let node = self.exports.clone().try_acquire_owned().map_err(|_| {
            Problem::new(
                ErrorCode::Unavailable,
                format!("this node is streaming {EXPORTS_AT_ONCE} exports; retry shortly"),
            )
            .with_retry_after(5)
        })?;
        map.insert(tenant.to_string(), mine + 1);
        Ok(ExportSlot {
            _node: node,
            tenant: tenant.to_string(),
            by_tenant: self.exports_by_tenant.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spec(&self, id: &str) -> Option<Arc<ValidatedSpec>> {
        self.lock().get(id).map(|c| c.spec.clone())
    }

    fn put_spec(&self, id: &str, spec: Arc<ValidatedSpec>) {
        let mut map = self.lock();
        if map.len() >= EVAL_CACHE_ENTRIES && !map.contains_key(id) {
            // Drop one entry, not all: a tenant reading many evaluations cannot empty the
            // cache for everyone at once.
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.entry(id.to_string()).or_insert(Cached {
            spec,
            derived: None,
        });
    }

    fn derived(&self, id: &str, done: usize) -> Option<(Value, Value)> {
        let map = self.lock();
        match &map.get(id)?.derived {
            Some((n, a, c)) if *n == done => Some((a.clone(), c.clone())),
            _ => None,
        }
    }

    fn put_derived(&self, id: &str, done: usize, agg: Value, cmp: Value) {
        if let Some(c) = self.lock().get_mut(id) {
            c.derived = Some((done, agg, cmp));
        }
    }
}

/// One evaluation: status, progress, usage, and aggregates and comparisons of the
/// results recorded so far.
pub async fn get_one(
    caller: TenantCaller,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = own(&app, &caller, &id)?;
    let mut v = view(&r, Some(stored_spec(&app, &r)));
    let done = r.done.len() as usize;
    if done > 0 {
        let (agg, cmp) = match app.eval_cache.derived(&r.id, done) {
            Some(hit) => hit,
            None => {
                let spec = spec_of(&app, &r).await?;
                let _turn = app.eval_cache.turn().await?;
                // One computation per checkpoint: a GET that waited for the turn may
                // find the aggregates its predecessor computed.
                if let Some((agg, cmp)) = app.eval_cache.derived(&r.id, done) {
                    v["aggregates"] = agg;
                    v["comparisons"] = cmp;
                    return Ok(Json(v));
                }
                let results = all_results(&app, &r).await?;
                let (agg, cmp) = tokio::task::spawn_blocking(move || {
                    (
                        serde_json::to_value(colony_eval::aggregate(&spec, &results))
                            .unwrap_or(Value::Null),
                        serde_json::to_value(colony_eval::compare(&spec, &results))
                            .unwrap_or(Value::Null),
                    )
                })
                .await
                .map_err(|e| Problem::new(ErrorCode::Internal, format!("aggregating: {e}")))?;
                app.eval_cache
                    .put_derived(&r.id, done, agg.clone(), cmp.clone());
                (agg, cmp)
            }
        };
        v["aggregates"] = agg;
        v["comparisons"] = cmp;
    }
    Ok(Json(v))
}

/// Query of the results.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    #[serde(default)]
    cursor: Option<u32>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    format: Option<String>,
}

/// A page of results in item order (`cursor`, `limit`), or every result as JSON Lines
/// (`format=jsonl`) or CSV (`format=csv`).
pub async fn results(
    caller: TenantCaller,
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ResultsQuery>,
) -> ApiResult<Response> {
    let r = own(&app, &caller, &id)?;
    match q.format.as_deref() {
        None | Some("json") => {}
        Some("jsonl") => {
            let slot = app.eval_cache.export_slot(&caller.tenant.id)?;
            let body = export_body(app, r.id, slot, String::new(), |page| {
                colony_eval::to_jsonl(&page).map_err(|e| e.to_string())
            });
            return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
        }
        Some("csv") => {
            let slot = app.eval_cache.export_slot(&caller.tenant.id)?;
            let spec = spec_of(&app, &r).await?;
            let head = colony_eval::csv_header(&spec);
            let body = export_body(app, r.id, slot, head, move |page| {
                Ok(colony_eval::csv_rows(&spec, &page))
            });
            return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
        }
        Some(other) => {
            return Err(Problem::bad_parameter(
                "format",
                format!("unknown format {other:?}: use json, jsonl or csv"),
            ))
        }
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::bad_parameter(
            "limit",
            format!("must be 1 to {MAX_PAGE}"),
        ));
    }
    let rows = app
        .raft
        .eval_results(r.id.clone(), q.cursor.unwrap_or(0), limit + 1)
        .await
        .map_err(|e| Problem::new(ErrorCode::Internal, format!("reading results: {e}")))?;
    let next = rows.get(limit).map(|(i, _)| *i);
    let page: Vec<Value> = rows.into_iter().take(limit).map(|(_, v)| v).collect();
    Ok(Json(json!({"results": page, "next_cursor": next})).into_response())
}

/// Results read from storage per chunk of a streamed export: with outputs of at most
/// 64 KiB, a formatted page stays within a few tens of MB even when every character
/// needs escaping.
const EXPORT_PAGE: usize = 100;

/// An export streamed a page at a time: `head`, then `format` of each page of results in
/// item order. Memory stays at one page however many results there are; formatting runs
/// off the async workers; `slot` is held until the body is dropped. A storage error or an
/// unreadable stored result ends the body early (the client sees a cut-off transfer,
/// never a partial file that looks whole) and is logged.
fn export_body<F>(
    app: AppState,
    id: String,
    slot: ExportSlot,
    head: String,
    format: F,
) -> axum::body::Body
where
    F: Fn(Vec<CaseResult>) -> Result<String, String> + Send + Sync + 'static,
{
    let format = Arc::new(format);
    let slot = Arc::new(slot);
    let first: Option<u32> = Some(0);
    let pages = futures_util::stream::unfold(first, move |cursor| {
        let (app, id, format, slot) = (app.clone(), id.clone(), format.clone(), slot.clone());
        async move {
            let _slot = slot;
            let from = cursor?;
            let rows = match app
                .raft
                .eval_results(id.clone(), from, EXPORT_PAGE + 1)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(evaluation = %id, error = %e, "export: reading results");
                    return Some((Err(std::io::Error::other("reading results")), None));
                }
            };
            let next = rows.get(EXPORT_PAGE).map(|(i, _)| *i);
            let parsed: Result<Vec<CaseResult>, _> = rows
                .into_iter()
                .take(EXPORT_PAGE)
                .map(|(i, v)| serde_json::from_value::<CaseResult>(v).map_err(|e| (i, e)))
                .collect();
            let page = match parsed {
                Ok(page) => page,
                Err((item, e)) => {
                    tracing::error!(evaluation = %id, item, error = %e, "export: a stored result does not parse");
                    return Some((Err(std::io::Error::other("reading results")), None));
                }
            };
            match tokio::task::spawn_blocking(move || format(page)).await {
                Ok(Ok(text)) => Some((Ok(bytes::Bytes::from(text)), next)),
                Ok(Err(e)) => {
                    tracing::error!(evaluation = %id, error = %e, "export: formatting");
                    Some((Err(std::io::Error::other("formatting results")), None))
                }
                Err(e) => {
                    tracing::error!(evaluation = %id, error = %e, "export: formatting task");
                    Some((Err(std::io::Error::other("formatting results")), None))
                }
            }
        }
    });
    let head = futures_util::stream::once(async move { Ok(bytes::Bytes::from(head)) });
    axum::body::Body::from_stream(futures_util::StreamExt::chain(head, pages))
}

/// Cancels an evaluation (no-op once it has ended).
pub async fn cancel(
    caller: TenantCaller,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    own(&app, &caller, &id)?;
    let out = propose(
        &app,
        &rid,
        &principal(&caller),
        Command::CancelEvaluation {
            tenant: caller.tenant.id.clone(),
            id,
        },
    )
    .await?;
    Ok(Json(view(&evaluation_output(out)?, None)))
}

/// Deletes one of the caller's evaluations that has ended, with its results (204); one
/// still running is 409 (cancel it first). Its usage stays in `GET /v1/usage`.
pub async fn delete(
    caller: TenantCaller,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    own(&app, &caller, &id)?;
    propose(
        &app,
        &rid,
        &principal(&caller),
        Command::DeleteEvaluation {
            tenant: caller.tenant.id.clone(),
            id,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels any tenant's evaluation (admin): audited as done by `admin`.
pub async fn admin_cancel(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let tenant = app
        .raft
        .read_state(|s| s.evaluations.get(&id).map(|r| r.tenant.clone()))
        .ok_or_else(|| Problem::not_found("evaluation", &id))?;
    let out = propose(
        &app,
        &rid,
        "admin",
        Command::CancelEvaluation { tenant, id },
    )
    .await?;
    Ok(Json(view(&evaluation_output(out)?, None)))
}

/// The caller's usage: tokens and cost by day and model, this month's total, and the
/// budget left.
pub async fn usage(caller: TenantCaller, State(app): State<AppState>) -> Json<Value> {
    let tenant = caller.tenant.id.clone();
    let now = now_ms();
    let month = month_of(&day_of(now)).to_string();
    let (rows, spent, budget) = app.raft.read_state(|s| {
        let rows: Vec<(String, String, UsageTotals)> = s
            .usage
            .iter()
            .filter(|(k, _)| k.tenant == tenant)
            .map(|(k, u)| (k.day.clone(), k.model.clone(), *u))
            .collect();
        (
            rows,
            s.month_spend_nanos(&tenant, &month),
            s.budget_nanos(&tenant),
        )
    });
    let mut days: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (day, model, u) in rows {
        days.entry(day).or_default().push(json!({
            "model": model,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cases": u.cases,
            "cost_usd": u.cost_usd(),
        }));
    }
    Json(json!({
        "tenant": tenant,
        "days": days.into_iter().map(|(day, models)| json!({"day": day, "models": models})).collect::<Vec<_>>(),
        "month": month,
        "month_cost_usd": nanos_to_usd(spent),
        "monthly_budget_usd": budget.map(nanos_to_usd),
        "budget_left_usd": budget.map(|b| nanos_to_usd(b.saturating_sub(spent))),
    }))
}
