//! Route handlers, one file per resource, and the write helper they share.

mod audit;
mod credentials;
mod drain;
mod evaluations;
mod health;
mod keys;
mod pricing;
mod ratelimit;
mod tenants;
mod testing;
mod tiers;
mod whoami;

pub use evaluations::EvalCache;

/// The body of `POST /v1/ratelimit/check`, public only for the fuzz target
/// (`fuzz/fuzz_targets/ratelimit_body.rs`), which decodes it as the handler does.
#[doc(hidden)]
pub use ratelimit::CheckBody;

use crate::middleware::RequestId;
use crate::problem::{ApiResult, ErrorCode, Problem};
use crate::tier_limits::{self, route};
use crate::AppState;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use colony_cluster::WriteError;
use colony_core::clock::now_ms;
use colony_core::command::{ApplyError, Command, CommandOutput, Proposal, ProposalMeta};

/// A tenant route: the tier-limit layer authenticates and charges every request to it
/// (as `name` for `endpoint_weights`) before the handler runs.
fn tenant_route(
    app: &AppState,
    name: &'static str,
    m: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    m.route_layer(axum::middleware::from_fn_with_state(
        (app.clone(), name),
        tier_limits::enforce,
    ))
}

/// Every route of the API.
pub fn routes(app: &AppState) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/cluster", get(health::cluster))
        .route("/v1/cluster/drain", post(drain::drain))
        .route("/v1/tiers", get(tiers::list).post(tiers::create))
        .route(
            "/v1/tiers/{name}",
            get(tiers::get_one)
                .put(tiers::replace)
                .delete(tiers::delete),
        )
        .route("/v1/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/v1/tenants/{id}",
            get(tenants::get_one)
                .patch(tenants::update)
                .delete(tenants::delete),
        )
        .route("/v1/tenants/{id}/keys", get(keys::list).post(keys::issue))
        .route(
            "/v1/tenants/{id}/keys/{key_id}",
            get(keys::get_one).delete(keys::revoke),
        )
        .route("/v1/tenants/{id}/keys/{key_id}/rotate", post(keys::rotate))
        .route("/v1/pricing", get(pricing::list))
        .route(
            "/v1/pricing/{model}",
            axum::routing::put(pricing::put).delete(pricing::delete),
        )
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route(
            "/v1/whoami",
            tenant_route(app, route::WHOAMI, get(whoami::whoami)),
        )
        .route(
            "/v1/ratelimit/check",
            tenant_route(app, route::RATELIMIT_CHECK, post(ratelimit::check)),
        )
        .route(
            "/v1/evaluations",
            tenant_route(app, route::EVALUATIONS_SUBMIT, post(evaluations::submit)).merge(
                tenant_route(app, route::EVALUATIONS, get(evaluations::list)),
            ),
        )
        .route(
            "/v1/evaluations/{id}",
            tenant_route(
                app,
                route::EVALUATIONS,
                get(evaluations::get_one).delete(evaluations::delete),
            ),
        )
        .route(
            "/v1/evaluations/{id}/results",
            tenant_route(app, route::EVALUATIONS, get(evaluations::results)),
        )
        .route(
            "/v1/evaluations/{id}/cancel",
            tenant_route(app, route::EVALUATIONS, post(evaluations::cancel)),
        )
        .route(
            "/v1/admin/evaluations/{id}/cancel",
            post(evaluations::admin_cancel),
        )
        .route(
            "/v1/credentials",
            tenant_route(app, route::CREDENTIALS, get(credentials::list)),
        )
        .route(
            "/v1/credentials/{name}",
            tenant_route(
                app,
                route::CREDENTIALS,
                get(credentials::get_one)
                    .put(credentials::put)
                    .delete(credentials::delete),
            ),
        )
        .route(
            "/v1/usage",
            tenant_route(app, route::USAGE, get(evaluations::usage)),
        )
        .route("/v1/testing/panic", post(testing::inject_panic))
        .route(
            "/v1/testing/sleep",
            tenant_route(app, route::TESTING_SLEEP, post(testing::sleep)),
        )
        .route(
            "/v1/testing/faults",
            get(testing::get_faults).put(testing::put_faults),
        )
}

/// Answer for unknown routes.
pub async fn fallback() -> Problem {
    Problem::new(
        ErrorCode::NotFound,
        "no such route; see the API overview in the README",
    )
}

/// Proposes `command` through Raft as `principal` and waits for it to be applied.
pub(crate) async fn propose(
    app: &AppState,
    request_id: &RequestId,
    principal: &str,
    command: Command,
) -> ApiResult<CommandOutput> {
    if matches!(
        command,
        Command::SetPrice { .. }
            | Command::DeletePrice { .. }
            | Command::SubmitEvaluation { .. }
            | Command::CancelEvaluation { .. }
    ) {
        log_feature_gate(app, colony_cluster::features::RAFT_EVALUATIONS_V1)?;
    }
    if matches!(command, Command::DeleteEvaluation { .. }) {
        log_feature_gate(app, colony_cluster::features::RAFT_EVALUATION_LIMITS_V1)?;
    }
    if matches!(
        command,
        Command::PutCredential { .. } | Command::DeleteCredential { .. }
    ) {
        log_feature_gate(app, colony_cluster::features::RAFT_CREDENTIALS_V1)?;
    }
    let meta = ProposalMeta {
        at_ms: now_ms(),
        principal: principal.to_string(),
        request_id: request_id.0.clone(),
    };
    let proposal = Proposal::new(meta, command);
    match tokio::time::timeout(app.settings.write_timeout, app.raft.write(proposal)).await {
        Err(_) => Err(Problem::new(
            ErrorCode::Unavailable,
            "the write was not committed in time; it may still be applied — check before retrying",
        )
        .with_retry_after(1)),
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(write_problem(e)),
    }
}

/// 503 while a Raft member runs a binary that could not apply commands of `feature`
/// (during a rolling upgrade from such a binary): nothing is proposed.
fn log_feature_gate(app: &AppState, feature: &str) -> ApiResult<()> {
    let lacking = lacking_for_log(app, feature);
    if lacking.is_empty() {
        return Ok(());
    }
    let nodes: Vec<String> = lacking.iter().map(u64::to_string).collect();
    Err(Problem::new(
        ErrorCode::Unavailable,
        format!(
            "the cluster is being upgraded: node(s) {} run a version that cannot apply this \
             change ({feature}); evaluations and pricing work once every node is upgraded",
            nodes.join(", ")
        ),
    )
    .with_retry_after(5))
}

/// Whether every Raft member applies log entries that use `feature`.
pub(crate) fn log_speaks(app: &AppState, feature: &str) -> bool {
    lacking_for_log(app, feature).is_empty()
}

/// The Raft members (voters and learners) that may not apply entries using `feature`.
fn lacking_for_log(app: &AppState, feature: &str) -> Vec<u64> {
    let status = app.raft.status();
    let raft_members: Vec<u64> = status
        .voters
        .iter()
        .chain(status.learners.iter())
        .copied()
        .collect();
    colony_cluster::features::lacking_for_log(&app.membership.members(), &raft_members, feature)
}

/// Maps a failed write to the problem the client sees.
pub(crate) fn write_problem(e: WriteError) -> Problem {
    match e {
        WriteError::Rejected(ApplyError::NotFound { kind, id }) => Problem::not_found(&kind, &id),
        WriteError::Rejected(e @ ApplyError::AlreadyExists { .. }) => {
            Problem::new(ErrorCode::AlreadyExists, e.to_string())
        }
        WriteError::Rejected(e @ (ApplyError::Conflict(_) | ApplyError::Unsupported(_))) => {
            Problem::new(ErrorCode::Conflict, e.to_string())
        }
        WriteError::Unavailable(why) => {
            Problem::new(ErrorCode::Unavailable, why).with_retry_after(1)
        }
        WriteError::Fatal(why) => {
            tracing::error!(error = %why, "raft write failed");
            Problem::new(
                ErrorCode::Internal,
                "the write failed on this node; see its log",
            )
        }
    }
}

/// A handler got an output of the wrong kind: a bug, reported as 500.
pub(crate) fn unexpected(output: &CommandOutput) -> Problem {
    tracing::error!(?output, "unexpected command output");
    Problem::new(
        ErrorCode::Internal,
        "unexpected result from the state machine; see the node's log",
    )
}
