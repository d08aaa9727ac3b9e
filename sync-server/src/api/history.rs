//! `history`: who made each change of a list and when the server accepted it, newest first,
//! for any member. The author is the user the change's Automerge actor is bound to on the
//! server (see [`crate::store::history`]), not what a peer claims, so "who checked this off"
//! has an answer a member can trust.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tandem_protocol::ItemId;
use tandem_protocol::history::ChangeAction;
use utoipa::{IntoParams, ToSchema};

use super::envelope::{Envelope, ok};
use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser};
use super::lists::list_id;
use super::time::rfc3339;
use crate::state::AppState;
use crate::store::history::{HistoryEntry, HistoryPage, HistoryQuery, hex};

/// Entries on a page when the caller does not say, and the most a caller may ask for.
pub const MAX_HISTORY_LIMIT: u32 = 100;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/todolist/history", get(history))
}

/// `history` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryParams {
    /// The list.
    pub id: u64,
    /// Only the changes that did something to this item.
    pub item: Option<u64>,
    /// Only changes older than this cursor: the `next_before` of the previous page.
    pub before: Option<u64>,
    /// Entries on the page, 1 to 100 (default 100).
    pub limit: Option<u32>,
}

/// `history` result: one page, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryData {
    /// The changes, newest first.
    pub changes: Vec<ChangeData>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// One change the server accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeData {
    /// The Automerge change hash, hexadecimal.
    #[schema(example = "6c1f0b1e3d2a4f5e6c1f0b1e3d2a4f5e6c1f0b1e3d2a4f5e6c1f0b1e3d2a4f5e")]
    pub hash: String,
    /// Who made it: the user its actor is bound to.
    pub user_id: u64,
    /// That user's email.
    pub email: Option<String>,
    /// When the server accepted it: RFC 3339, UTC.
    pub accepted_at: String,
    /// What it did, in order: `{"action": "created"|"renamed"}` or `{"action":
    /// "added"|"edited"|"checked"|"unchecked"|"moved"|"removed", "item": <item id>}`.
    #[schema(value_type = Vec<Object>, example = json!([{"action": "checked", "item": 7}]))]
    pub actions: Vec<ChangeAction>,
}

/// A list's history (any member): who made each change and when the server accepted it,
/// newest first, a page at a time; with `item`, only the changes to that item.
#[utoipa::path(get, path = "/api/todolist/history", tag = "lists", params(HistoryParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the list's history", body = Envelope<HistoryData>),
        (status = 400, description = "Malformed query"),
        (status = 401, description = "No or bad token"),
        (status = 404, description = "No such list for this caller"),
        (status = 422, description = "item, before or limit out of range"),
    ))]
pub async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Response, ApiError> {
    let list = list_id(params.id)?;
    let query = query(&params)?;
    let page = state.store.history(list, user.id, &query).await?;
    Ok(ok("OK", data(page)))
}

/// Checks the query's ranges.
fn query(params: &HistoryParams) -> Result<HistoryQuery, ApiError> {
    let item = params.item.map(ItemId);
    if item.is_some_and(|item| !item.is_valid()) {
        return Err(ApiError::Invalid("item must be an item id (1 to 2^53-1).".into()));
    }
    let before = match params.before {
        None => None,
        Some(raw) => match i64::try_from(raw) {
            Ok(cursor) if cursor > 0 => Some(cursor),
            _ => {
                return Err(ApiError::Invalid(
                    "before must be a cursor from a previous page (next_before).".into(),
                ));
            }
        },
    };
    let limit = params.limit.unwrap_or(MAX_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid(format!("limit must be between 1 and {MAX_HISTORY_LIMIT}.")));
    }
    Ok(HistoryQuery { item, before, limit })
}

fn data(page: HistoryPage) -> HistoryData {
    HistoryData {
        changes: page.entries.into_iter().map(change).collect(),
        next_before: page.next_before,
    }
}

fn change(entry: HistoryEntry) -> ChangeData {
    ChangeData {
        hash: hex(&entry.hash),
        user_id: entry.user.get(),
        email: entry.email,
        accepted_at: rfc3339(entry.accepted_at),
        actions: entry.actions,
    }
}
