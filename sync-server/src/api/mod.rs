//! The HTTP API: one module per concern, each with `fn router()`, merged here.
//!
//! Every answer, errors included, is the seed's envelope ([`envelope`]); every failure is an
//! [`error::ApiError`].

pub mod accounts;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod health;
pub mod history;
pub mod lists;
pub mod observe;
pub mod openapi;
pub mod probes;
pub mod sharing;
pub mod sync;
mod time;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::state::AppState;
use error::ApiError;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    Router::new()
        .merge(accounts::router())
        .merge(lists::router())
        .merge(history::router())
        .merge(sharing::router())
        .merge(health::router())
        .merge(probes::router())
        .merge(openapi::router())
        .merge(sync::router())
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async { ApiError::NotFound("No such endpoint.".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        // Outermost, so that it sees panics as the 500s they become, and the matched route.
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::observe))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text format (see [`crate::metrics`]).
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let live = crate::metrics::Live {
        rooms_loaded: state.hub.loaded_rooms(),
        active_users: state.hub.active_users(),
        pools: state.store.pool_stats(),
    };
    let body = state.metrics.render(&live);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// A handler panicked: a bug of ours. Logged, and answered in the envelope.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic");
    ApiError::Internal(anyhow::anyhow!("handler panicked: {detail}")).into_response()
}
