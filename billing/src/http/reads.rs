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

/// A property's readings whose interval starts in `[from, to)`.
#[utoipa::path(
    get,
    path = "/api/v1/properties/{propertyId}/consumption",
    tag = "read",
    params(
        ("propertyId" = String, Path, description = "The property"),
        ("from" = Option<String>, Query, description = "RFC 3339 start (inclusive)"),
        ("to" = Option<String>, Query, description = "RFC 3339 end (exclusive)"),
        ("limit" = Option<i64>, Query, description = "Most rows, 1 to 1000 (default 100)"),
    ),
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
    let (property, range) = parse(property, &params)?;
    let items = store::queries::consumption(&state.pool, property.as_str(), range)
        .await
        .map_err(|e| ApiError::unavailable("the database", &e))?;
    Ok(Json(Page {
        property_id: property.to_string(),
        items,
    }))
}

/// A property's recommendations stored in `[from, to)`.
#[utoipa::path(
    get,
    path = "/api/v1/properties/{propertyId}/recommendations",
    tag = "read",
    params(
        ("propertyId" = String, Path, description = "The property"),
        ("from" = Option<String>, Query, description = "RFC 3339 start (inclusive)"),
        ("to" = Option<String>, Query, description = "RFC 3339 end (exclusive)"),
        ("limit" = Option<i64>, Query, description = "Most rows, 1 to 1000 (default 100)"),
    ),
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
    let (property, range) = parse(property, &params)?;
    let items = store::queries::recommendations(&state.pool, property.as_str(), range)
        .await
        .map_err(|e| ApiError::unavailable("the database", &e))?;
    Ok(Json(Page {
        property_id: property.to_string(),
        items,
    }))
}

/// A property's RED alerts raised in `[from, to)`.
#[utoipa::path(
    get,
    path = "/api/v1/properties/{propertyId}/alerts",
    tag = "read",
    params(
        ("propertyId" = String, Path, description = "The property"),
        ("from" = Option<String>, Query, description = "RFC 3339 start (inclusive)"),
        ("to" = Option<String>, Query, description = "RFC 3339 end (exclusive)"),
        ("limit" = Option<i64>, Query, description = "Most rows, 1 to 1000 (default 100)"),
    ),
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
    let (property, range) = parse(property, &params)?;
    let items = store::queries::alerts(&state.pool, property.as_str(), range)
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
