//! `GET /api/todolist/sync`: the sync WebSocket. The upgrade is authenticated with the same
//! token as REST: `Authorization: Bearer` or, for browsers (which cannot set that header on a
//! WebSocket), `?access_token=`. A bad or missing token is refused before any list data, and
//! a user who already has `max_sockets_per_user` sockets open gets 429 before the upgrade.

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, ORIGIN, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tracing::Instrument as _;

use super::envelope::reply;
use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser};
use crate::state::AppState;

/// Bytes a socket's read buffer starts with (it grows for bigger frames).
const WS_READ_BUFFER: usize = 4096;
/// `Retry-After` of a refusal for too many sockets: a slot frees when any of the user's
/// sockets closes, which the server cannot foresee.
const SOCKET_RETRY_AFTER_SECS: u16 = 5;
/// `Retry-After` of a refusal while draining: another node is likely ready at once.
const DRAINING_RETRY_AFTER_SECS: u16 = 1;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/todolist/sync", get(sync_socket))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<AuthUser, ApiError> {
    if parts.headers.contains_key(AUTHORIZATION) {
        return AuthUser::from_request_parts(parts, state).await;
    }
    let ApiQuery(query) = ApiQuery::<TokenQuery>::from_request_parts(parts, state).await?;
    let token =
        query.access_token.ok_or_else(|| ApiError::Unauthorized("Missing bearer token.".into()))?;
    AuthUser::from_token(state, &token).await
}

/// Opens the sync socket for a signed-in user.
pub async fn sync_socket(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    if state.draining.is_cancelled() {
        return draining();
    }
    let (mut parts, _body) = request.into_parts();
    let user = match authenticate(&mut parts, &state).await {
        Ok(user) => user,
        Err(err) => return err.into_response(),
    };
    let allowed = &state.config.sync.allowed_origins;
    if !allowed.is_empty() {
        let origin = parts.headers.get(ORIGIN).and_then(|o| o.to_str().ok());
        if origin.is_some_and(|o| !allowed.iter().any(|a| a == o)) {
            return ApiError::Forbidden("This origin may not open a sync socket.".into())
                .into_response();
        }
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::BadRequest(format!(
                "Not a WebSocket upgrade: {}",
                rejection.body_text()
            ))
            .into_response();
        }
    };
    // Counted from before the upgrade (a socket that never says Hello holds a slot too), and
    // refused here, where it costs no socket task.
    let Some(slot) = state.hub.claim_socket(user.id) else {
        state.metrics.sockets_refused.increment(1);
        return too_many_sockets(state.config.sync.max_sockets_per_user);
    };
    let hub = state.hub.clone();
    // A child of the upgrade's request span: the socket's log lines carry its request id.
    let span = tracing::info_span!("socket", user_id = user.id.get(), conn = tracing::field::Empty);
    upgrade
        // Small buffers: most sockets are idle, and tungstenite reserves its read buffer up
        // front (128 KiB by default). Frames are written as they are sent.
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(state.config.sync.max_message_bytes)
        .max_frame_size(state.config.sync.max_message_bytes)
        .on_upgrade(move |socket| {
            crate::sync::connection::serve(socket, hub, slot, user.id, user.email).instrument(span)
        })
}

/// The 503 for an upgrade while the server drains: clients back off and reconnect, to another
/// node once the load balancer has taken this one out of rotation.
fn draining() -> Response {
    let message = "The server is shutting down; reconnect shortly.".to_owned();
    let mut response = reply::<()>(StatusCode::SERVICE_UNAVAILABLE, message, None);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(DRAINING_RETRY_AFTER_SECS));
    response
}

/// The 429 for a user who has the most sync sockets allowed open already.
fn too_many_sockets(max: usize) -> Response {
    let message = format!(
        "Too many sync sockets open for this account (at most {max}); close one or retry later."
    );
    let mut response = reply::<()>(StatusCode::TOO_MANY_REQUESTS, message, None);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(SOCKET_RETRY_AFTER_SECS));
    response
}
