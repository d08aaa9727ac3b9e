//! Request extractors that answer in the envelope: JSON bodies (`ApiJson`), query strings
//! (`ApiQuery`), the signed-in caller (`AuthUser`) and the client's address (`ClientAddr`).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tandem_protocol::UserId;

use super::error::ApiError;
use crate::state::AppState;

/// A JSON body. Any content type is read as JSON (curl users forget the header); malformed
/// JSON, missing fields and wrong types are 400, a body over the limit is 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = AppState::from_ref(state).config.limits.max_body_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(limit)
            } else {
                ApiError::BadRequest(format!(
                    "Could not read the request body: {}",
                    rejection.body_text()
                ))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::BadRequest(format!("Invalid JSON body: {e}")))
    }
}

/// A query string; a malformed one is 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// The caller named by a valid `Authorization: Bearer` token. No token or an invalid one is
/// 401: an invalid token never silently means "signed out". A correctly signed token is not
/// enough: its user must be a verified account on its shard (a token outliving its account,
/// or signed with a shared secret for an id this deployment never made, is 401 too).
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The caller's account.
    pub id: UserId,
    /// The caller's email, as stored on the account (not as written in the token).
    pub email: String,
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("Missing Authorization: Bearer token.".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
            })
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be 'Bearer <token>'.".into())
            })?;
        AuthUser::from_token(&state, token).await
    }
}

impl AuthUser {
    /// The caller a token names, or 401. Costs one indexed read on the user's shard.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::Unauthorized("Invalid or expired token; log in again.".into());
        let user = state.tokens.verify(token).ok_or_else(invalid)?;
        let email = state.store.verified_email(user.id).await?.ok_or_else(|| {
            ApiError::Unauthorized("This token's account does not exist; log in again.".into())
        })?;
        // On the request's span (see `observe`), so every later log line names the caller.
        tracing::Span::current().record("user_id", user.id.get());
        Ok(AuthUser { id: user.id, email })
    }
}

/// The client's IP address, when the server was started with connection info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())))
    }
}
