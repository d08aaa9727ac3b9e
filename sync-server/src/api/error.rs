//! The one error type of the API: each variant is a status, and the message is safe to show.
//! Internal causes are logged here and never sent.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// Why a call failed, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, missing field, wrong type).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or a token that is not valid; also a failed login.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller's role (or account state) does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such list for this caller, or no such route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists with another method.
    #[error("Method not allowed.")]
    MethodNotAllowed,
    /// 409: conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than allowed.
    #[error("Request body is larger than {0} bytes.")]
    TooLarge(usize),
    /// 422: well-formed but invalid.
    #[error("{0}")]
    Invalid(String),
    /// 429: throttled; retry after the given time.
    #[error("Too many attempts; try again in {} seconds.", .0.as_secs().max(1))]
    RateLimited(Duration),
    /// 500: our fault. The cause is logged, the client sees a generic message.
    #[error("Internal error.")]
    Internal(#[source] anyhow::Error),
    /// 503: a database does not answer.
    #[error("Service unavailable; try again shortly.")]
    Unavailable(#[source] anyhow::Error),
    /// 503: the verification mail could not be sent (the relay is down or refused it).
    #[error(
        "The verification code could not be sent; try again later (registering again sends a \
         new code)."
    )]
    MailUnavailable(#[source] anyhow::Error),
}

impl ApiError {
    /// The HTTP status (and envelope code).
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) | ApiError::MailUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The 404 for a list the caller cannot see (whether or not it exists).
    pub fn list_not_found() -> Self {
        ApiError::NotFound("List not found.".into())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::list_not_found(),
            StoreError::Forbidden(m) => ApiError::Forbidden(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid(m) => ApiError::Invalid(m),
            StoreError::ActorTaken { .. } => ApiError::Forbidden(err.to_string()),
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                ApiError::Unavailable(anyhow::Error::new(err))
            }
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause)
        | ApiError::Unavailable(cause)
        | ApiError::MailUnavailable(cause) = &self
        {
            tracing::error!(error = ?cause, %status, "request failed");
        }
        let mut response = super::envelope::reply::<()>(status, self.to_string(), None);
        if let ApiError::RateLimited(wait) = self {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
