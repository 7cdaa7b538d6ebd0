//! The success envelope of the seed's API: `{ statusCode, data, message, success: true }`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// Every successful answer under /api/auth.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiResponse<T> {
    /// The HTTP status, repeated.
    #[schema(example = 200)]
    pub status_code: u16,
    pub data: T,
    /// Human-readable summary.
    pub message: String,
    /// Always true.
    pub success: bool,
}

/// `data` of answers that carry nothing: `{}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

impl<T> ApiResponse<T> {
    pub fn ok(data: T, message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::OK, data, message)
    }

    pub fn created(data: T, message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::CREATED, data, message)
    }

    fn with_status(status: StatusCode, data: T, message: impl Into<String>) -> Self {
        Self {
            status_code: status.as_u16(),
            data,
            message: message.into(),
            success: true,
        }
    }
}

impl<T: Serialize> IntoResponse for ApiResponse<T> {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status_code).unwrap_or(StatusCode::OK);
        (status, Json(self)).into_response()
    }
}
