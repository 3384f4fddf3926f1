//! Read endpoints: a property's readings, recommendations and alerts over a time range.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use energy_contracts::PropertyId;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::store::{self, AlertRow, ConsumptionRow, RecommendationRow, TimeRange};

/// Rows a read returns when `limit` is not given.
const DEFAULT_LIMIT: i64 = 100;
/// Most rows one read returns.
const MAX_LIMIT: i64 = 1000;

/// A page of rows for one property, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T: ToSchema> {
    /// The property.
    pub property_id: String,
    /// The rows (the newest `limit` in the range), oldest first.
    pub items: Vec<T>,
}

/// The time-range parameters every read takes (documentation of the query string; the handler
/// parses it itself so that each bad value is named in a 422).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RangeParams {
    /// RFC 3339 start (inclusive).
    from: Option<String>,
    /// RFC 3339 end (exclusive).
    to: Option<String>,
    /// Most rows, 1 to 1000 (default 100).
    limit: Option<i64>,
}

/// A property's readings whose interval starts in `[from, to)`.
#[utoipa::path(
    get,
    path = "/api/v1/properties/{propertyId}/consumption",
    tag = "read",
    params(("propertyId" = String, Path, description = "The property"), RangeParams),
    responses(
        (status = 200, body = Page<ConsumptionRow>),
        (status = 422, description = "A parameter is invalid", body = super::error::ErrorBody),
        (status = 503, description = "The database is unavailable", body = super::error::ErrorBody),
    )
)]
pub async fn consumption(
    State(state): State<AppState>,
    Path(property): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Page<ConsumptionRow>>, ApiError> {
    page(property, &params, |property, range| {
        let pool = state.pool.clone();
        async move { store::queries::consumption(&pool, &property, range).await }
    })
    .await
}

/// A property's recommendations stored in `[from, to)`.
#[utoipa::path(
    get,
    path = "/api/v1/properties/{propertyId}/recommendations",
    tag = "read",
    params(("propertyId" = String, Path, description = "The property"), RangeParams),
    responses(
        (status = 200, body = Page<RecommendationRow>),
        (status = 422, description = "A parameter is invalid", body = super::error::ErrorBody),
        (status = 503, description = "The database is unavailable", body = super::error::ErrorBody),
    )
)]
pub async fn recommendations(
    State(state): State<AppState>,
    Path(property): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Page<RecommendationRow>>, ApiError> {
    page(property, &params, |property, range| {
        let pool = state.pool.clone();
        async move { store::queries::recommendations(&pool, &property, range).await }
    })
    .await
}

/// A property's RED alerts raised in `[from, to)`.
#[utoipa::path(
    get,
    path = "/api/v1/properties/{propertyId}/alerts",
    tag = "read",
    params(("propertyId" = String, Path, description = "The property"), RangeParams),
    responses(
        (status = 200, body = Page<AlertRow>),
        (status = 422, description = "A parameter is invalid", body = super::error::ErrorBody),
        (status = 503, description = "The database is unavailable", body = super::error::ErrorBody),
    )
)]
pub async fn alerts(
    State(state): State<AppState>,
    Path(property): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Page<AlertRow>>, ApiError> {
    page(property, &params, |property, range| {
        let pool = state.pool.clone();
        async move { store::queries::alerts(&pool, &property, range).await }
    })
    .await
}

/// Parses the path and query, then fetches the rows with `fetch`.
async fn page<T, F, Fut>(
    property: String,
    params: &HashMap<String, String>,
    fetch: F,
) -> Result<Json<Page<T>>, ApiError>
where
    T: ToSchema,
    F: FnOnce(String, TimeRange) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, sqlx::Error>>,
{
    let (property, range) = parse(property, params)?;
    let items = fetch(property.to_string(), range)
        .await
        .map_err(|e| ApiError::unavailable("the database", &e))?;
    Ok(Json(Page {
        property_id: property.to_string(),
        items,
    }))
}

fn parse(
    property: String,
    params: &HashMap<String, String>,
) -> Result<(PropertyId, TimeRange), ApiError> {
    let property = PropertyId::parse(property).map_err(|e| invalid("propertyId", e.to_string()))?;
    if let Some(unknown) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "from" | "to" | "limit"))
    {
        return Err(invalid(
            unknown,
            format!("unknown parameter {unknown:?}; use from, to, limit"),
        ));
    }
    let from = params.get("from").map(|v| time("from", v)).transpose()?;
    let to = params.get("to").map(|v| time("to", v)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        return Err(invalid("to", "must be after from"));
    }
    let limit = match params.get("limit") {
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
        None => DEFAULT_LIMIT,
    };
    Ok((property, TimeRange { from, to, limit }))
}

fn time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            invalid(
                field,
                format!("{text:?} is not an RFC 3339 time with an offset: {e}"),
            )
        })
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
        message,
    );
    error.field = Some(field.to_string());
    error
}
