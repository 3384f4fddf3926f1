//! The per-request tracing span.

use axum::body::Body;
use axum::http::Request;
use energy_contracts::names::HEADER_TRACEPARENT;
use tracing::Span;
use tracing::field::Empty;

/// Opens the span of one request: method, path, the caller's W3C `traceparent` as it arrived
/// (so logs of this call join the caller's trace), and the region once the handler knows it.
pub fn request_span(request: &Request<Body>) -> Span {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        traceparent = Empty,
        region = Empty,
    );
    if let Some(traceparent) = request.headers().get(HEADER_TRACEPARENT) {
        // A header that is not visible ASCII cannot be a traceparent; it is left off the span.
        if let Ok(value) = traceparent.to_str() {
            span.record("traceparent", value);
        }
    }
    span
}
