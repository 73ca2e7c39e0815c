//! The single mapping from [`dartwing_core::Error`] to an HTTP response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dartwing_core::Error;
use serde_json::json;

/// An error on its way to the client: status from its kind, body `{"exc_type", "message"}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "exc_type": self.0.exc_type(), "message": self.0.message() });
        (status, Json(body)).into_response()
    }
}
