//! `/v1/pricing`: model prices per 1000 input and output tokens (admin). Evaluation results
//! are charged at the price of their provider's model when the result is produced.

use super::{propose, unexpected};
use crate::auth::Admin;
use crate::extract::ApiJson;
use crate::middleware::RequestId;
use crate::problem::{ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use colony_core::command::{Command, CommandOutput};
use colony_core::pricing::Price;
use serde::Deserialize;

/// Body of `PUT /v1/pricing/{model}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBody {
    #[serde(default)]
    model: Option<String>,
    input_per_1k_usd: f64,
    output_per_1k_usd: f64,
}

/// Every price, by model.
pub async fn list(_: Admin, State(app): State<AppState>) -> Json<Vec<Price>> {
    Json(
        app.raft
            .read_state(|s| s.prices.values().cloned().collect()),
    )
}

/// Sets (or replaces) a model's price.
pub async fn put(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(model): Path<String>,
    ApiJson(body): ApiJson<PriceBody>,
) -> ApiResult<Json<Price>> {
    if body.model.as_ref().is_some_and(|m| m != &model) {
        return Err(Problem::invalid_field(
            "/model",
            "must match the model in the path",
        ));
    }
    let price = Price {
        model,
        input_per_1k_usd: body.input_per_1k_usd,
        output_per_1k_usd: body.output_per_1k_usd,
        updated_at_ms: 0,
    };
    price
        .validate()
        .map_err(|(ptr, msg)| Problem::invalid_field(ptr, msg))?;
    match propose(&app, &rid, "admin", Command::SetPrice { price }).await? {
        CommandOutput::Price(p) => Ok(Json(p)),
        other => Err(unexpected(&other)),
    }
}

/// Removes a model's price (its calls then cost nothing).
pub async fn delete(
    _: Admin,
    State(app): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(model): Path<String>,
) -> ApiResult<StatusCode> {
    propose(&app, &rid, "admin", Command::DeletePrice { model }).await?;
    Ok(StatusCode::NO_CONTENT)
}
