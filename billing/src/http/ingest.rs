//! Write endpoints: one reading, or a batch as a JSON array, NDJSON or CSV.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use energy_contracts::names::HEADER_TRACEPARENT;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorDetail};
use crate::domain::{BatchFormat, NewReading, batch};
use crate::store::{self, Ingested, Submission};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A reading as the API takes it (the validation rules are in the field descriptions).
#[derive(ToSchema)]
#[schema(as = ReadingRequest)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
#[serde(rename_all = "camelCase")]
pub struct ReadingRequest {
    /// Client-chosen UUID; a retry with the same id is stored once.
    #[schema(format = Uuid)]
    event_id: Option<String>,
    /// 1 to 64 characters of `A-Za-z0-9._-`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    property_id: String,
    /// Meter identifier, 1 to 128 printable characters.
    #[schema(min_length = 1, max_length = 128)]
    meter_id: Option<String>,
    /// `electricity` (default) or `gas`.
    #[schema(pattern = "^(electricity|gas)$")]
    kind: Option<String>,
    /// Energy used in the interval, kWh: finite, 0 to 1,000,000.
    #[schema(minimum = 0.0, maximum = 1000000.0)]
    kwh: f64,
    /// Interval start, RFC 3339 with a UTC offset.
    #[schema(format = DateTime)]
    period_start: String,
    /// Interval end, after the start, at most 31 days later and not in the future.
    #[schema(format = DateTime)]
    period_end: String,
    /// Grid region code; the platform default applies when absent.
    region: Option<String>,
}

/// The answer to an accepted reading.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedBody {
    /// The reading's event id.
    pub event_id: Uuid,
    /// Always `accepted`: stored, and on its way to Kafka.
    pub status: String,
}

/// The answer to a batch: one result per item, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchBody {
    /// Items stored (or already stored before).
    pub accepted: usize,
    /// Items refused.
    pub rejected: usize,
    /// Per-item results.
    pub items: Vec<BatchItemResult>,
    /// Present when every item was refused (422), so the answer has the error shape every
    /// other refusal has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// The result of one batch item.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemResult {
    /// Position in the batch, from 0.
    pub index: usize,
    /// `accepted` or `rejected`.
    pub status: String,
    /// Event id of an accepted item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    /// Why a refused item was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Stores one reading and answers 202 once it is committed (it reaches Kafka through the
/// outbox).
#[utoipa::path(
    post,
    path = "/api/v1/consumption",
    tag = "ingest",
    request_body(content = ReadingRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and reading are stored once (1 to 255 visible ASCII characters)"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context to continue"),
    ),
    responses(
        (status = 202, description = "Stored; on its way to Kafka", body = AcceptedBody),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 409, description = "Idempotency key or event id reused for another reading", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn ingest_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::body)?;
    require_content_type(&headers, &["application/json"])?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::malformed_json(&e))?;
    let reading = state.rules.validate(&value, Utc::now()).map_err(|e| {
        state.metrics.rejected(e.code);
        ApiError::field(e)
    })?;
    let key = idempotency_key(&headers)?;

    let submission = Submission {
        reading,
        idempotency_key: key.map(str::to_string),
        traceparent: Some(traceparent(&headers)),
    };
    let outcome = state.writer.submit(submission).await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(AcceptedBody {
            event_id: outcome.event_id(),
            status: "accepted".into(),
        }),
    )
        .into_response();
    match outcome {
        Ingested::Created(_) => state.metrics.accepted(),
        Ingested::Replayed(_) => {
            state.metrics.replayed();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
    }
    Ok(response)
}

/// Stores many readings; bad items are refused one by one and do not sink the good ones.
#[utoipa::path(
    post,
    path = "/api/v1/consumption/batch",
    tag = "ingest",
    request_body(description = "A JSON array of readings (application/json), one reading per line (application/x-ndjson), or CSV with a header row of reading field names (text/csv)", content(
        (Vec<ReadingRequest> = "application/json"),
        (String = "application/x-ndjson"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, description = "Per-item results; at least one item was accepted", body = BatchBody),
        (status = 400, description = "The body is not a batch of its format, or holds none", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Body or batch too large", body = ErrorBody),
        (status = 415, description = "Unsupported Content-Type", body = ErrorBody),
        (status = 422, description = "Every item was refused (per-item results and an error)", body = BatchBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn ingest_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let format = batch_format(&headers)?;
    let items = batch::split(format, &body, state.max_batch_items)?;

    // Validate every item; keep the index of each valid one.
    let now = Utc::now();
    let mut results: Vec<Option<BatchItemResult>> = Vec::with_capacity(items.len());
    let mut valid: Vec<(usize, NewReading)> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item.and_then(|value| state.rules.validate(&value, now)) {
            Ok(reading) => {
                valid.push((index, reading));
                results.push(None);
            }
            Err(e) => {
                state.metrics.rejected(e.code);
                results.push(Some(rejected(index, &ApiError::field(e))));
            }
        }
    }

    if !valid.is_empty() {
        // One trace for the whole batch, as it is one request.
        let traceparent = traceparent(&headers);
        let submissions: Vec<Submission> = valid
            .iter()
            .map(|(_, reading)| Submission {
                reading: reading.clone(),
                idempotency_key: None,
                traceparent: Some(traceparent.clone()),
            })
            .collect();
        let outcomes = store::insert_many(&state.pool, &state.topic, &submissions).await?;
        for ((index, _), outcome) in valid.iter().zip(outcomes) {
            results[*index] = Some(match outcome {
                Ok(ingested) => {
                    match ingested {
                        Ingested::Created(_) => state.metrics.accepted(),
                        Ingested::Replayed(_) => state.metrics.replayed(),
                    }
                    BatchItemResult {
                        index: *index,
                        status: "accepted".into(),
                        event_id: Some(ingested.event_id()),
                        error: None,
                    }
                }
                Err(e) => rejected(*index, &ApiError::from(e)),
            });
        }
    }

    let items: Vec<BatchItemResult> = results.into_iter().flatten().collect();
    let accepted = items.iter().filter(|i| i.status == "accepted").count();
    let (status, error) = if accepted == 0 {
        let error = ErrorDetail {
            code: "all_items_rejected".into(),
            message: "every item of the batch was refused; see items for why".into(),
            field: None,
        };
        (StatusCode::UNPROCESSABLE_ENTITY, Some(error))
    } else {
        (StatusCode::OK, None)
    };
    let body = BatchBody {
        accepted,
        rejected: items.len() - accepted,
        items,
        error,
    };
    Ok((status, Json(body)).into_response())
}

fn rejected(index: usize, error: &ApiError) -> BatchItemResult {
    BatchItemResult {
        index,
        status: "rejected".into(),
        event_id: None,
        error: Some(ErrorBody::from(error).error),
    }
}

/// The request's trace context continued, or a new one: what the Kafka message carries.
fn traceparent(headers: &HeaderMap) -> String {
    let incoming = headers
        .get(HEADER_TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    energy_contracts::trace::continue_or_start(incoming)
}

/// The media type of the request without parameters, lower-cased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

fn require_content_type(headers: &HeaderMap, allowed: &[&str]) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(media) if allowed.contains(&media.as_str()) => Ok(()),
        other => Err(unsupported(other, allowed)),
    }
}

fn batch_format(headers: &HeaderMap) -> Result<BatchFormat, ApiError> {
    match media_type(headers).as_deref() {
        Some("application/json") => Ok(BatchFormat::JsonArray),
        Some("application/x-ndjson" | "application/ndjson") => Ok(BatchFormat::Ndjson),
        Some("text/csv") => Ok(BatchFormat::Csv),
        other => Err(unsupported(
            other.map(str::to_string),
            &["application/json", "application/x-ndjson", "text/csv"],
        )),
    }
}

fn unsupported(found: Option<String>, allowed: &[&str]) -> ApiError {
    let found = found.unwrap_or_else(|| "none".into());
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "Content-Type {found} is not accepted here; send {}",
            allowed.join(" or ")
        ),
    )
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|k| {
        !k.is_empty()
            && k.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && k.bytes().all(|b| b.is_ascii_graphic())
    });
    match key {
        Some(key) => Ok(Some(key)),
        None => {
            let mut error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_header",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            );
            error.field = Some("Idempotency-Key".into());
            Err(error)
        }
    }
}
