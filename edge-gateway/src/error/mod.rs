//! Every error answer of the gateway, in one JSON shape:
//! `{ statusCode, success: false, error: { code, message, details } }`.
//!
//! - this module: the error type, its body and the edge's own refusals (bad JSON, a bare
//!   status of a layer);
//! - [`status`]: the one mapping from a gRPC `Status` of the auth service;
//! - [`middleware`]: gives the bare error responses of layers and the router the same shape.

mod middleware;
mod status;

pub use middleware::shape_bare_errors;

use std::borrow::Cow;

use axum::{
    extract::rejection::JsonRejection,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer of the gateway, ready to become a response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    details: Vec<FieldError>,
    retry_after_seconds: Option<u64>,
    attempts_remaining: Option<u32>,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    #[schema(example = 422)]
    pub status_code: u16,
    /// Always false.
    pub success: bool,
    pub error: ErrorObject,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorObject {
    /// Stable machine-readable reason, e.g. `EMAIL_TAKEN`, `CODE_EXPIRED`, `NOT_FOUND`.
    #[schema(example = "INVALID_ARGUMENT")]
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Invalid fields of the request body, by their JSON names.
    pub details: Vec<FieldError>,
    /// Seconds to wait before trying again (also in the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Wrong code guesses left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON name of the field, e.g. `email`.
    pub field: String,
    /// Why it is invalid.
    pub message: String,
}

impl ApiError {
    /// An error of the edge itself (not of the auth service).
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: Vec::new(),
            retry_after_seconds: None,
            attempts_remaining: None,
        }
    }

    /// 422 naming `field`: the body gave more than one of what must be one.
    pub fn one_of(field: &str, message: &str) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_ARGUMENT",
            "invalid request",
        );
        error.details.push(FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        });
        error
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
    }

    pub fn unauthenticated(message: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        Self {
            retry_after_seconds: Some(retry_after_seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many requests from this address; slow down",
            )
        }
    }

    /// The answer for a response that a layer produced with a bare status and no JSON body
    /// (body too large, method not allowed, edge timeout, ...).
    pub fn from_bare_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => return Self::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => (
                "METHOD_NOT_ALLOWED",
                "this route does not accept this method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                return Self::new(
                    status,
                    "PAYLOAD_TOO_LARGE",
                    format!(
                        "the request body is larger than {} KiB",
                        crate::api::BODY_LIMIT / 1024
                    ),
                );
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as application/json",
            ),
            StatusCode::GATEWAY_TIMEOUT => ("GATEWAY_TIMEOUT", "the request took too long"),
            s if s.is_server_error() => ("INTERNAL", "internal error"),
            _ => ("BAD_REQUEST", "the request is malformed"),
        };
        Self::new(status, code, message)
    }

    /// Renames a field in the details, for routes whose JSON name is not the camelCase of the
    /// proto field (`code` is `otp` in verify-otp).
    pub fn rename_field(mut self, from: &str, to: &str) -> Self {
        for d in &mut self.details {
            if d.field == from {
                d.field = to.to_owned();
            }
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.code
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::from_bare_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            JsonRejection::JsonSyntaxError(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_JSON",
                "the request body is not valid JSON",
            ),
            JsonRejection::JsonDataError(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_BODY",
                format!("the request body has the wrong shape: {}", e.body_text()),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::from_bare_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_BODY",
                "the request body could not be read",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status_code: self.status.as_u16(),
            success: false,
            error: ErrorObject {
                code: self.code.into_owned(),
                message: self.message.into_owned(),
                details: self.details,
                retry_after_seconds: self.retry_after_seconds,
                attempts_remaining: self.attempts_remaining,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
