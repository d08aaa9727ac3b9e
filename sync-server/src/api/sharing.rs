//! `sharelist` and `unshare`: giving and taking back access to a list.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;
use tandem_protocol::Role;
use utoipa::ToSchema;

use super::envelope::{MessageEnvelope, ok_message};
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::lists::list_id;
use crate::auth::email::Email;
use crate::state::AppState;
use crate::store::sharing::ShareOutcome;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/todolist/sharelist", post(share))
        .route("/api/todolist/unshare", post(unshare))
}

/// `sharelist` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ShareRequest {
    /// The list.
    pub list_id: u64,
    /// Whom to share with; may not have an account yet.
    pub target_email: String,
    /// `EDITOR` or `VIEWER`.
    pub permission: String,
}

/// `unshare` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UnshareRequest {
    /// The list.
    pub list_id: u64,
    /// Whom to remove; your own email to leave the list.
    pub target_email: String,
}

/// Share a list (OWNER only). Sharing again changes the role. An email without a verified
/// account gets the list when it is verified.
#[utoipa::path(post, path = "/api/todolist/sharelist", tag = "sharing", request_body = ShareRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Invitation sent to <email>", body = MessageEnvelope),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "No or bad token"),
        (status = 403, description = "Only the owner can share"),
        (status = 404, description = "No such list for this caller"),
        (status = 422, description = "Bad email or permission, or sharing with the owner"),
    ))]
pub async fn share(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ShareRequest>,
) -> Result<Response, ApiError> {
    let list = list_id(body.list_id)?;
    let email = Email::parse(&body.target_email).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let role = match body.permission.parse::<Role>() {
        Ok(role @ (Role::Editor | Role::Viewer)) => role,
        _ => return Err(ApiError::Invalid("permission must be \"EDITOR\" or \"VIEWER\".".into())),
    };
    if let ShareOutcome::Member(member) = state.store.share(list, user.id, &email, role).await? {
        state.hub.access_changed(list, member, Some(role)).await;
    }
    state.metrics.shares.increment(1);
    Ok(ok_message(format!("Invitation sent to {email}")))
}

/// Remove a member: the owner removes anyone; any member removes themselves (leaves).
/// Also cancels a pending invitation to that email.
#[utoipa::path(post, path = "/api/todolist/unshare", tag = "sharing", request_body = UnshareRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Access removed", body = MessageEnvelope),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "No or bad token"),
        (status = 403, description = "Only the owner can remove others"),
        (status = 404, description = "No such list for this caller"),
        (status = 422, description = "Not a member, or the owner leaving"),
    ))]
pub async fn unshare(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<UnshareRequest>,
) -> Result<Response, ApiError> {
    let list = list_id(body.list_id)?;
    let email = Email::parse(&body.target_email).map_err(|e| ApiError::Invalid(e.to_string()))?;
    if let Some(removed) = state.store.unshare(list, user.id, &email).await? {
        state.hub.access_changed(list, removed, None).await;
    }
    state.metrics.unshares.increment(1);
    if email == user.email {
        Ok(ok_message("You left the list."))
    } else {
        Ok(ok_message(format!("Access removed for {email}")))
    }
}
