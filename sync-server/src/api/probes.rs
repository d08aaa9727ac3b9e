//! `GET /livez` and `GET /readyz`: the probes an orchestrator asks before it restarts a node
//! or sends it traffic. They answer different questions, so they are separate routes:
//!
//! - liveness: the process answers HTTP. Nothing else is checked, so a database outage never
//!   gets a healthy node restarted in a loop;
//! - readiness: this node should get traffic now. Every physical database answers a trivial
//!   query within [`READY_TIMEOUT`], has every migration this build expects, and the node is
//!   not draining. Otherwise 503, with a message and data naming what is not ready.
//!
//! `/healthz` (in [`super::health`]) stays as it was, for what already polls it.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{Envelope, MessageEnvelope, reply};
use crate::state::AppState;

/// How long each database has to answer a readiness check.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/livez", get(live)).route("/readyz", get(ready))
}

/// `/readyz` data: each check, and overall.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Whether the node takes traffic.
    pub ready: bool,
    /// The node is shutting down: it finishes what it holds and takes nothing new.
    pub draining: bool,
    /// Each physical database.
    pub databases: Vec<DatabaseReadiness>,
}

/// One physical database's readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseReadiness {
    /// The database URL without password.
    pub database: String,
    /// Whether it answered a trivial query in time.
    pub answers: bool,
    /// Migration versions this build expects and the database lacks.
    pub missing_migrations: Vec<i64>,
    /// Whether it answers and has every migration.
    pub ready: bool,
}

/// Whether the process answers.
#[utoipa::path(get, path = "/livez", tag = "operations",
    responses((status = 200, description = "The process answers", body = MessageEnvelope)))]
pub async fn live() -> Response {
    reply::<()>(StatusCode::OK, "live".into(), None)
}

/// Whether this node should get traffic: databases answer, migrations are in place, and it
/// is not draining.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Envelope<Readiness>),
        (status = 503, description = "Not ready; the message and data say what is not", body = Envelope<Readiness>),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let draining = state.draining.is_cancelled();
    let databases: Vec<DatabaseReadiness> = state
        .store
        .readiness(READY_TIMEOUT)
        .await
        .into_iter()
        .map(|(database, r)| DatabaseReadiness {
            ready: r.answers && r.missing_migrations.is_empty(),
            database,
            answers: r.answers,
            missing_migrations: r.missing_migrations,
        })
        .collect();
    let mut problems = Vec::new();
    if draining {
        problems.push("the server is draining".to_owned());
    }
    for db in &databases {
        if !db.answers {
            problems.push(format!("database {} does not answer", db.database));
        } else if !db.missing_migrations.is_empty() {
            let versions: Vec<String> =
                db.missing_migrations.iter().map(ToString::to_string).collect();
            problems.push(format!(
                "database {} lacks migrations {}",
                db.database,
                versions.join(", ")
            ));
        }
    }
    let ready = problems.is_empty();
    let data = Readiness { ready, draining, databases };
    if ready {
        reply(StatusCode::OK, "ready".into(), Some(data))
    } else {
        let message = format!("Not ready: {}.", problems.join("; "));
        reply(StatusCode::SERVICE_UNAVAILABLE, message, Some(data))
    }
}
