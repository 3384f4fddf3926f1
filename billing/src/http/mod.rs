//! The HTTP adapter: the axum router, its layers and shared state.
//!
//! - [`ingest`]: `POST /api/v1/consumption` and `/batch` (bearer token when configured).
//! - [`reads`]: `GET /api/v1/properties/{propertyId}/{consumption,recommendations,alerts}`.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/api/openapi.json`.
//! - [`ws`]: `/ws/alerts`, RED alerts pushed to the page; the page itself is served from the
//!   web root at `/`.
//! - [`error`]: the JSON error answer every refusal uses.

pub mod auth;
pub mod error;
pub mod ingest;
pub mod openapi;
pub mod ops;
pub mod reads;
pub mod ws;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::alerts::AlertHub;
use crate::domain::ReadingRules;
use crate::metrics::Metrics;
use crate::store::GroupCommit;
use error::ApiError;

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL pool.
    pub pool: PgPool,
    /// The relay's producer, used here only for the readiness probe.
    pub producer: FutureProducer,
    /// Validation rules of readings.
    pub rules: Arc<ReadingRules>,
    /// Kafka topic of the outbox rows.
    pub topic: String,
    /// Group commit of single readings.
    pub writer: GroupCommit,
    /// Accepted bearer tokens; empty means auth is off.
    pub tokens: Arc<Vec<String>>,
    /// Most items in a batch.
    pub max_batch_items: usize,
    /// Metrics handles.
    pub metrics: Metrics,
    /// Fan-out of RED alerts to WebSocket clients.
    pub hub: AlertHub,
}

/// Limits of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body, bytes.
    pub body_limit_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
}

/// Builds the router, serving the web page's files from `web_root` when given.
pub fn router_with_page(state: AppState, limits: HttpLimits, web_root: Option<&Path>) -> Router {
    let router = router(state, limits);
    match web_root {
        Some(root) => router
            .fallback_service(ServeDir::new(root).not_found_service(axum::routing::any(not_found))),
        None => router,
    }
}

/// Builds the router with its layers.
pub fn router(state: AppState, limits: HttpLimits) -> Router {
    let writes = Router::new()
        .route("/api/v1/consumption", post(ingest::ingest_one))
        .route("/api/v1/consumption/batch", post(ingest::ingest_batch))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let reads = Router::new()
        .route(
            "/api/v1/properties/{property}/consumption",
            get(reads::consumption),
        )
        .route(
            "/api/v1/properties/{property}/recommendations",
            get(reads::recommendations),
        )
        .route("/api/v1/properties/{property}/alerts", get(reads::alerts));
    let ops = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(ops::openapi))
        .route("/ws/alerts", get(ws::alerts_socket));

    Router::new()
        .merge(writes)
        .merge(reads)
        .merge(ops)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(CatchPanicLayer::new())
        // Outside the timeout and panic layers, so their bodiless answers get the JSON shape.
        .layer(middleware::map_response(json_errors))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let traceparent = request
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    traceparent,
                )
            }),
        )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /api/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Gives the answers that layers produce without a body (timeout, panic, path or query
/// rejections) the JSON error shape every other refusal has.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::SERVICE_UNAVAILABLE => ("timeout", "the request took too long; retry later"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than allowed",
        ),
        StatusCode::INTERNAL_SERVER_ERROR => ("internal", "internal error"),
        _ => ("bad_request", "the request could not be understood"),
    };
    let code: &'static str = code;
    ApiError::new(status, code, message).into_response()
}
