//! `GET /api/openapi.json`: the OpenAPI document, generated from the handlers' annotations and
//! the request and response types, so it cannot drift from the code.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, health, history, lists, probes, sharing};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tandem", description = "Accounts, lists and sharing for Tandem's sync engine. Every response is `{code, message, data}` with HTTP status = code."),
    paths(
        accounts::register, accounts::verify, accounts::login,
        lists::create, lists::read, lists::update, lists::delete, lists::reserve_ids,
        history::history,
        sharing::share, sharing::unshare,
        health::health, probes::live, probes::ready,
    ),
    components(schemas(lists::ListDetails, lists::ItemData, lists::CollaboratorData,
        history::HistoryData, history::ChangeData)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}
