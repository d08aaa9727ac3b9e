//! The seed's response envelope: `{"code", "message", "data"}` with HTTP status = `code`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Every response body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Equal to the HTTP status.
    pub code: u16,
    /// What happened, for people.
    pub message: String,
    /// The call's result, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

/// A 200 response with data.
pub fn ok<T: Serialize>(message: impl Into<String>, data: T) -> Response {
    reply(StatusCode::OK, message.into(), Some(data))
}

/// A 200 response with only a message.
pub fn ok_message(message: impl Into<String>) -> Response {
    reply::<()>(StatusCode::OK, message.into(), None)
}

/// Any response in the envelope.
pub fn reply<T: Serialize>(status: StatusCode, message: String, data: Option<T>) -> Response {
    (status, Json(Envelope { code: status.as_u16(), message, data })).into_response()
}

/// The envelope of a response that carries only a message (for the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageEnvelope {
    /// Equal to the HTTP status.
    pub code: u16,
    /// What happened, for people.
    pub message: String,
}
