//! Extractors and the response envelope with the project's error mapping.

use crate::ApiError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use dartwing_core::{Error, ErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Frappe-style success body: `{"message": <payload>}`.
#[derive(Debug, Clone)]
pub struct Message<T>(pub T);

impl<T: Serialize> IntoResponse for Message<T> {
    fn into_response(self) -> Response {
        Json(serde_json::json!({ "message": self.0 })).into_response()
    }
}

/// Frappe-style document body of `/api/resource` routes: `{"data": <document or list>}`.
#[derive(Debug, Clone)]
pub struct Data<T>(pub T);

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        Json(serde_json::json!({ "data": self.0 })).into_response()
    }
}

/// A JSON body parsed strictly: `Content-Type: application/json` required, syntax and type
/// errors answered 400 with the parser's position, oversized bodies 413. Request types use
/// `#[serde(deny_unknown_fields)]` where unknown fields must be refused.
#[derive(Debug, Clone)]
pub struct StrictJson<T>(pub T);

impl<S, T> FromRequest<S> for StrictJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if crate::listener::is_body_timeout(&rejection) {
        return ApiError(Error::new(
            ErrorKind::RequestTimeout,
            "The request body stopped arriving before it was complete",
        ));
    }
    let kind = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::BadRequest,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorKind::BadRequest,
        _ => ErrorKind::BadRequest,
    };
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => "Expected a JSON body with Content-Type: application/json".into(),
        JsonRejection::BytesRejection(_) if kind == ErrorKind::PayloadTooLarge => {
            "Request body exceeds the size limit".into()
        }
        other => other.body_text(),
    };
    ApiError(Error::new(kind, message))
}

/// Query parameters parsed with a 400 on malformed values.
#[derive(Debug, Clone)]
pub struct StrictQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for StrictQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError(Error::bad_request(rejection.body_text()))
}
