//! The error answer: one JSON shape, `{"error":{"code","message","field"}}`, for every rejected
//! request, whether a handler, an extractor or a tower layer refused it.
//!
//! Handlers return [`ApiError`]. Layers (body limit, timeout, routing) answer with their own
//! bodies, plain text or empty, so [`json_error_bodies`] rewrites any error response that is not
//! JSON into this shape, keeping its status and headers (such as `Allow` on a 405).

use std::any::Any;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::HttpSettings;
use crate::domain::CalcError;

/// The JSON body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The content of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unknown_region`.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
    /// The request field at fault (`region`, `intensities[2].gramsPerKwh`), or null when the
    /// request as a whole was refused.
    pub field: Option<String>,
}

/// Why the HTTP adapter refused a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body was understood but the calculation refuses it (422).
    #[error(transparent)]
    Calculation(#[from] CalcError),
    /// The body is not JSON of the request's shape (400); the message is serde's.
    #[error("{message}")]
    InvalidJson {
        /// The deserialiser's message, with line and column.
        message: String,
        /// The path of the value that failed, when serde knows it.
        field: Option<String>,
    },
    /// The body is not declared as JSON (415).
    #[error("expected a JSON body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// The body is larger than the configured limit (413).
    #[error("request body is larger than the limit of {limit_bytes} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit_bytes: usize,
    },
    /// The path names no endpoint (404).
    #[error("no endpoint at this path; POST / calculates, GET /factors lists the factors")]
    NotFound,
    /// The endpoint exists but not for this method (405).
    #[error("this endpoint does not accept that method; see the Allow header")]
    MethodNotAllowed,
    /// The request, body upload included, took longer than the configured limit (408).
    #[error("the request was not completed within {timeout_ms} ms")]
    Timeout {
        /// The configured limit.
        timeout_ms: u128,
    },
    /// A bug; the cause is logged where it happened and never sent to the client (500).
    #[error("internal error")]
    Internal,
    /// Any other refusal, with the status and reason a layer or extractor gave.
    #[error("{message}")]
    Other {
        /// The status to answer with.
        status: StatusCode,
        /// The reason.
        message: String,
    },
}

impl ApiError {
    /// Maps the JSON extractor's rejection to the platform's error answers.
    pub fn from_json_rejection(rejection: JsonRejection, limit_bytes: usize) -> Self {
        match rejection {
            JsonRejection::JsonDataError(err) => Self::InvalidJson {
                field: json_path(&err),
                message: err.body_text(),
            },
            JsonRejection::JsonSyntaxError(err) => Self::InvalidJson {
                field: json_path(&err),
                message: err.body_text(),
            },
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            // A body without Content-Length passes the limit layer and is cut off while read.
            rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge { limit_bytes }
            }
            rejection => Self::Other {
                status: rejection.status(),
                message: rejection.body_text(),
            },
        }
    }

    /// The error a bare status from a layer or the router stands for.
    pub fn for_status(status: StatusCode, settings: &HttpSettings) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge {
                limit_bytes: settings.body_limit_bytes,
            },
            StatusCode::REQUEST_TIMEOUT => Self::Timeout {
                timeout_ms: settings.request_timeout.as_millis(),
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            status if status.is_server_error() => Self::Internal,
            status => Self::Other {
                status,
                message: status
                    .canonical_reason()
                    .unwrap_or("request refused")
                    .to_owned(),
            },
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Calculation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidJson { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Other { status, .. } => *status,
        }
    }

    /// The body of the answer.
    pub fn body(&self) -> ErrorBody {
        let (code, field) = match self {
            Self::Calculation(err) => (err.code(), Some(err.field())),
            Self::InvalidJson { field, .. } => ("invalid_json", field.clone()),
            Self::UnsupportedMediaType => ("unsupported_media_type", None),
            Self::PayloadTooLarge { .. } => ("payload_too_large", None),
            Self::NotFound => ("not_found", None),
            Self::MethodNotAllowed => ("method_not_allowed", None),
            Self::Timeout { .. } => ("request_timeout", None),
            Self::Internal => ("internal", None),
            Self::Other { status, .. } if status.is_server_error() => ("internal", None),
            Self::Other { .. } => ("rejected", None),
        };
        ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        // Server errors are logged once, where their cause is known (see `panic_response`).
        if !self.status().is_server_error() {
            tracing::debug!(
                code = body.error.code,
                field = body.error.field.as_deref(),
                "request rejected: {self}"
            );
        }
        (self.status(), Json(body)).into_response()
    }
}

/// Response mapper: gives an error response that a layer or the router produced the JSON error
/// body, keeping its status and headers. Success and JSON responses pass untouched.
pub async fn json_error_bodies(
    State(settings): State<HttpSettings>,
    response: Response,
) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || is_json(&response) {
        return response;
    }

    let (mut parts, _) = response.into_parts();
    let mut error = ApiError::for_status(status, &settings).into_response();
    // Keep the original status for the statuses `for_status` has no variant of.
    *error.status_mut() = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, error.into_body())
}

/// Answer for a handler that panicked: logs the panic once and answers a generic 500.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic payload is not a string");
    tracing::error!(panic = detail, "request handler panicked");
    ApiError::Internal.into_response()
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// The path (`intensities[0].gramsPerKwh`) axum's `Json` recorded for a deserialisation error,
/// or `None` for errors about the document as a whole.
fn json_path(rejection: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(rejection);
    while let Some(err) = source {
        if let Some(path_error) =
            err.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>()
        {
            let path = path_error.path().to_string();
            return (path != ".").then_some(path);
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::{Body, to_bytes};

    use super::*;

    fn settings() -> HttpSettings {
        HttpSettings {
            default_region: "GB",
            body_limit_bytes: 1_024,
            request_timeout: Duration::from_millis(1_500),
        }
    }

    async fn json_of(response: Response) -> serde_json::Value {
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body is in memory");
        serde_json::from_slice(&bytes).expect("error bodies are JSON")
    }

    #[tokio::test]
    async fn a_plain_layer_response_gets_the_json_error_body_and_keeps_its_headers() {
        let plain = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "POST")
            .body(Body::empty())
            .expect("static parts are valid");
        let mapped = json_error_bodies(State(settings()), plain).await;
        assert_eq!(mapped.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(mapped.headers()[header::ALLOW], "POST");
        assert_eq!(json_of(mapped).await["error"]["code"], "method_not_allowed");
    }

    #[tokio::test]
    async fn a_timeout_names_the_configured_limit() {
        let plain = StatusCode::REQUEST_TIMEOUT.into_response();
        let body = json_of(json_error_bodies(State(settings()), plain).await).await;
        assert_eq!(body["error"]["code"], "request_timeout");
        assert_eq!(
            body["error"]["message"],
            "the request was not completed within 1500 ms"
        );
        assert!(body["error"]["field"].is_null());
    }

    #[tokio::test]
    async fn success_responses_pass_untouched() {
        let ok = (StatusCode::OK, "fine").into_response();
        let mapped = json_error_bodies(State(settings()), ok).await;
        let bytes = to_bytes(mapped.into_body(), usize::MAX)
            .await
            .expect("body is in memory");
        assert_eq!(&bytes[..], b"fine");
    }

    #[tokio::test]
    async fn a_panic_answers_a_generic_500_without_the_panic_text() {
        let response = panic_response(Box::new("secret detail"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = json_of(response).await;
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], "internal error");
    }

    #[test]
    fn an_unforeseen_client_status_keeps_its_reason() {
        let error = ApiError::for_status(StatusCode::IM_A_TEAPOT, &settings());
        assert_eq!(error.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(error.body().error.code, "rejected");
    }
}
