//! What every HTTP request leaves behind for operators, in one middleware:
//!
//! - a request id: the client's `x-request-id` when it is a sane token (at most 128 of
//!   `[A-Za-z0-9._:-]`: it goes into logs and a header), else a new random one; echoed in the
//!   response's `x-request-id` so a client report can be matched with the server's log;
//! - a `request` span holding the id, the method and the matched route; [`AuthUser`] records
//!   the caller's `user_id` on it once the token is checked, and a sync socket's span is its
//!   child, so every log line of a request or socket names them;
//! - `tandem_http_requests_total{route,status}` and
//!   `tandem_http_request_duration_seconds{route}`.
//!
//! The route is the matched path pattern (`/api/todolist/read`), never the raw URI: a query
//! string may hold an access token, and ids in URIs would make a new series per list. Requests
//! that match no route count as `route="unmatched"`.
//!
//! [`AuthUser`]: super::extract::AuthUser

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::state::AppState;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// The route label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// The request's id, in the request's extensions for handlers that want it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The middleware (see the module doc).
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| acceptable(value))
        .map_or_else(new_id, str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = %route,
        user_id = tracing::field::Empty,
    );
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.http_request(&route, status, elapsed);
    span.in_scope(|| {
        tracing::debug!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HeaderName::from_static(REQUEST_ID), value);
    }
    response
}

/// Whether a client's request id may be used as it is.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new request id: 64 random bits in hex.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_client_ids_are_kept() {
        assert!(acceptable("3f2a-9c:trace.1_b"));
        assert!(!acceptable(""));
        assert!(!acceptable("two words"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable(&"a".repeat(MAX_REQUEST_ID + 1)));
    }

    #[test]
    fn new_ids_are_sixteen_hex_digits() {
        let id = new_id();
        assert_eq!(id.len(), 16);
        assert!(acceptable(&id));
    }
}
