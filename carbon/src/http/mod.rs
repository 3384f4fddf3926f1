//! The HTTP adapter: axum routes over the domain, and the tower-http layers around them.
//!
//! ```text
//! TraceLayer          one span per request, with the caller's traceparent
//!  CatchPanicLayer    a bug answers a generic JSON 500 instead of dropping the connection
//!   json_error_bodies layer and router errors get the JSON error body
//!    TimeoutLayer     408 when a request (body upload included) takes too long
//!     RequestBodyLimitLayer  413 above the configured size
//!      routes         POST /, GET /_/health, GET /factors
//! ```

pub mod error;
pub mod handlers;
pub mod trace;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// What the routes need to know, shared by every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// Region code (as the factor table spells it) for requests that name none.
    pub default_region: &'static str,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
}

/// The function's router with all its layers.
pub fn router(settings: HttpSettings) -> Router {
    // Inner layers answer with bare statuses; the outer ones turn those into JSON and trace the
    // final answer. Router::layer converts each stack's responses back to axum's body type.
    let limits = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes));
    let edge = ServiceBuilder::new()
        // Server errors only come from panics, which CatchPanicLayer logs with their cause.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(trace::request_span)
                .on_failure(()),
        )
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(middleware::map_response_with_state(
            settings,
            error::json_error_bodies,
        ));

    Router::new()
        .route("/", post(handlers::calculate))
        .route("/_/health", get(handlers::health))
        .route("/factors", get(handlers::factors))
        .fallback(handlers::not_found)
        // One limit, RequestBodyLimitLayer's, instead of axum's own 2 MB default as well.
        .layer(DefaultBodyLimit::disable())
        .layer(limits)
        .layer(edge)
        .with_state(settings)
}
