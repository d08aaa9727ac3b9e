//! `GET /healthz`: 200 when the server is up and every physical database answers, else 503.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{Envelope, reply};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

/// One physical database's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseHealth {
    /// The database URL without password.
    pub database: String,
    /// Whether it answered.
    pub ok: bool,
}

/// Whether the server and every database answer.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Healthy", body = Envelope<Vec<DatabaseHealth>>),
        (status = 503, description = "A database does not answer", body = Envelope<Vec<DatabaseHealth>>),
    ))]
pub async fn health(State(state): State<AppState>) -> Response {
    let databases: Vec<DatabaseHealth> = state
        .store
        .health()
        .await
        .into_iter()
        .map(|(database, ok)| DatabaseHealth { database, ok })
        .collect();
    if databases.iter().all(|db| db.ok) {
        reply(StatusCode::OK, "ok".into(), Some(databases))
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "A database does not answer.".into(),
            Some(databases),
        )
    }
}
