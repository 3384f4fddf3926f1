//! The one error type of the HTTP API: every refusal is a 4xx with
//! `{"error": {"code", "message", "field"}}` saying what was wrong; a failing dependency is a
//! 503; anything else is a generic 500 whose cause is logged once, here.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{BatchError, FieldError};
use crate::store::StoreError;

/// An answer that is not a success.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// What was wrong, for people.
    pub message: String,
    /// The field at fault, when one is.
    pub field: Option<String>,
}

/// The JSON body of an error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, for example `invalid_field`.
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A refused field of a reading (422).
    pub fn field(error: FieldError) -> Self {
        let field = (!error.field.is_empty()).then_some(error.field);
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: error.code,
            message: error.message,
            field,
        }
    }

    /// A body that is not JSON (400).
    pub fn malformed_json(error: &serde_json::Error) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        )
    }

    /// A dependency that is down (503); the cause is logged, not shown.
    pub fn unavailable(what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(dependency = what, error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what} is unavailable; retry later (with the same Idempotency-Key)"),
        )
    }

    /// A body that could not be read: too large (413) or broken off.
    pub fn body(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(
                status,
                "payload_too_large",
                "the request body is larger than allowed",
            );
        }
        Self::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            rejection.body_text(),
        )
    }
}

impl From<BatchError> for ApiError {
    fn from(error: BatchError) -> Self {
        let (status, code) = match error {
            BatchError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
            // Nothing to take is a malformed request, not a refused item (422 carries items).
            BatchError::Empty => (StatusCode::BAD_REQUEST, "empty_batch"),
            BatchError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_batch"),
        };
        Self::new(status, code, error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { key, .. } => {
                let mut api = Self::new(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    error.to_string(),
                );
                api.field = Some(key.to_string());
                api
            }
            StoreError::Database(e) => Self::unavailable("the database", &e),
            StoreError::Closed => Self::unavailable("the reading store", &error),
        }
    }
}

impl From<&ApiError> for ErrorBody {
    fn from(error: &ApiError) -> Self {
        Self {
            error: ErrorDetail {
                code: error.code.to_string(),
                message: error.message.clone(),
                field: error.field.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        (self.status, Json(ErrorBody::from(&self))).into_response()
    }
}
