//! Operational endpoints: liveness, readiness, metrics and the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rdkafka::producer::Producer;
use serde::Serialize;

use super::AppState;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness of each dependency.
#[derive(Debug, Serialize)]
struct Readiness {
    database: bool,
    kafka: bool,
}

/// Alive: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready: PostgreSQL answers a query and Kafka answers a metadata request.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool),
    )
    .await
    .is_ok_and(|r| r.is_ok());

    let producer = state.producer.clone();
    let kafka = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, PROBE_TIMEOUT)
            .is_ok()
    })
    .await
    .unwrap_or(false);

    let status = if database && kafka {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { database, kafka })).into_response()
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// The OpenAPI document, derived from the handlers' types.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi::document())
}
