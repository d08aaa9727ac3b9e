//! `create`, `read`, `update`, `delete` and `reserve_ids`: a caller's lists.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tandem_protocol::id::MAX_ID;
use tandem_protocol::list_doc::rules;
use tandem_protocol::{ListDoc, ListId, Role};
use utoipa::{IntoParams, ToSchema};

use super::envelope::{Envelope, MessageEnvelope, ok, ok_message};
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, AuthUser};
use super::time::rfc3339;
use crate::state::AppState;
use crate::store::lists::{Access, ListDetail};

/// Most ids one `reserve_ids` call hands out.
pub const MAX_RESERVE: u32 = 100;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/todolist/create", post(create))
        .route("/api/todolist/read", get(read))
        .route("/api/todolist/update", post(update))
        .route("/api/todolist/delete", post(delete))
        .route("/api/todolist/reserve_ids", post(reserve_ids))
}

/// `create` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRequest {
    /// 1 to 255 characters, not only spaces, no control characters.
    pub title: String,
}

/// `create` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedList {
    /// The new list's id.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// `read` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ReadQuery {
    /// A list id: read that list's details instead of the list of lists.
    pub id: Option<u64>,
}

/// One entry of `read` without id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListSummary {
    /// The list id.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// The caller's role: OWNER, EDITOR or VIEWER.
    #[schema(value_type = String, example = "OWNER")]
    pub role: Role,
}

/// `read?id=` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListDetails {
    /// The list id.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// The caller's role.
    #[schema(value_type = String, example = "EDITOR")]
    pub role: Role,
    /// Bumped by every change; pass it to `update` for an optimistic-lock check.
    pub version: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// Items in display order.
    pub items: Vec<ItemData>,
    /// Members, owner first.
    pub collaborators: Vec<CollaboratorData>,
}

/// An item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemData {
    /// Unique within the list.
    pub id: u64,
    /// Its text.
    pub content: String,
    /// Whether it is done.
    pub done: bool,
    /// Fractional-index position.
    pub sort_rank: String,
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollaboratorData {
    /// The member's account id.
    pub user_id: u64,
    /// The member's email.
    pub email: String,
    /// The member's role.
    #[schema(value_type = String, example = "VIEWER")]
    pub role: Role,
}

/// `update` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateRequest {
    /// The list.
    pub id: u64,
    /// The new title.
    pub title: String,
    /// If given, the update happens only if the list is still at this version (else 409).
    pub version: Option<i64>,
}

/// `update` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdatedList {
    /// The list.
    pub id: u64,
    /// Its new title.
    pub title: String,
    /// Its new version.
    pub version: i64,
}

/// `delete` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteRequest {
    /// The list.
    pub id: u64,
}

/// `reserve_ids` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReserveRequest {
    /// How many ids, 1 to 100.
    pub count: u32,
}

/// `reserve_ids` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservedIds {
    /// Ids reserved for the caller's lists created offline.
    pub ids: Vec<u64>,
}

/// A list id from a request: out-of-range ids name no list.
pub fn list_id(raw: u64) -> Result<ListId, ApiError> {
    let id = ListId(raw);
    if id.is_valid() { Ok(id) } else { Err(ApiError::list_not_found()) }
}

/// Checks a title with the rule every side applies (`tandem_protocol::list_doc::rules`):
/// 1..=255 characters, not blank, no control characters.
pub fn check_title(title: &str) -> Result<(), ApiError> {
    rules::check_title(title).map_err(|e| ApiError::Invalid(sentence(&e.to_string())))
}

/// `text` as a sentence: capitalised, with a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}

/// Create a list; the caller becomes its OWNER.
#[utoipa::path(post, path = "/api/todolist/create", tag = "lists", request_body = CreateRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "List created", body = Envelope<CreatedList>),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "No or bad token"),
        (status = 422, description = "Invalid title"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    check_title(&body.title)?;
    let id = ListId(state.ids.next_id());
    // The server makes the document's first change (title and items objects), so every
    // client that syncs this list starts from the same root objects.
    let mut doc = ListDoc::new(&body.title).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let list = state.store.create_list(id, user.id, &user.email, &body.title, &doc.save()).await?;
    state.hub.access_changed(id, user.id, Some(Role::Owner)).await;
    state.metrics.lists_created.increment(1);
    Ok(ok(
        "List created.",
        CreatedList { id: list.id.get(), title: list.title, created_at: rfc3339(list.created_at) },
    ))
}

/// Without `id`: every list the caller can see, with the caller's role. With `id`: that
/// list's details, items and members.
#[utoipa::path(get, path = "/api/todolist/read", tag = "lists", params(ReadQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`[ListSummary]` without id, `ListDetails` with id", body = Envelope<Vec<ListSummary>>),
        (status = 400, description = "Malformed query"),
        (status = 401, description = "No or bad token"),
        (status = 404, description = "No such list for this caller"),
    ))]
pub async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    match query.id {
        None => {
            let candidates = state.store.indexed_lists(user.id).await?;
            let lists = state.store.accessible_lists(user.id, &candidates).await?;
            let summaries: Vec<ListSummary> = lists.into_iter().map(summary).collect();
            Ok(ok("OK", summaries))
        }
        Some(raw) => {
            let detail = state.store.list_detail(list_id(raw)?, user.id).await?;
            Ok(ok("OK", details(detail)))
        }
    }
}

/// Rename a list (OWNER or EDITOR). Bumps its version.
#[utoipa::path(post, path = "/api/todolist/update", tag = "lists", request_body = UpdateRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "List updated", body = Envelope<UpdatedList>),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "No or bad token"),
        (status = 403, description = "Viewers cannot change a list"),
        (status = 404, description = "No such list for this caller"),
        (status = 409, description = "Version mismatch"),
        (status = 422, description = "Invalid title"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<UpdateRequest>,
) -> Result<Response, ApiError> {
    let id = list_id(body.id)?;
    check_title(&body.title)?;
    let (title, version) = state.hub.rename(id, user.id, body.title, body.version).await?;
    Ok(ok("List updated.", UpdatedList { id: id.get(), title, version }))
}

/// Delete a list for every member (OWNER only). It then answers 404 to everyone.
#[utoipa::path(post, path = "/api/todolist/delete", tag = "lists", request_body = DeleteRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "List deleted successfully", body = MessageEnvelope),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "No or bad token"),
        (status = 403, description = "Only the owner can delete"),
        (status = 404, description = "No such list for this caller"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<DeleteRequest>,
) -> Result<Response, ApiError> {
    let id = list_id(body.id)?;
    let members = state.store.delete_list(id, user.id).await?;
    state.hub.list_deleted(id, &members).await;
    state.metrics.lists_deleted.increment(1);
    Ok(ok_message("List deleted successfully"))
}

/// Reserve ids for lists the caller's devices will create offline, so those lists keep their
/// ids when they first sync. A user holds at most `[limits] max_reserved_ids_per_user` unused
/// reserved ids (1,000 by default); an id stops counting when its list is created.
#[utoipa::path(post, path = "/api/todolist/reserve_ids", tag = "lists", request_body = ReserveRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Ids reserved", body = Envelope<ReservedIds>),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "No or bad token"),
        (status = 422, description = "Count outside 1..=100, or more unused reserved ids than allowed"),
    ))]
pub async fn reserve_ids(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ReserveRequest>,
) -> Result<Response, ApiError> {
    if !(1..=MAX_RESERVE).contains(&body.count) {
        return Err(ApiError::Invalid(format!("count must be between 1 and {MAX_RESERVE}.")));
    }
    let ids: Vec<ListId> = (0..body.count).map(|_| ListId(state.ids.next_id())).collect();
    debug_assert!(ids.iter().all(|id| id.get() <= MAX_ID));
    let cap = state.config.limits.max_reserved_ids_per_user;
    state.store.reserve_list_ids(user.id, &ids, cap).await?;
    Ok(ok("Ids reserved.", ReservedIds { ids: ids.into_iter().map(ListId::get).collect() }))
}

fn summary(access: Access) -> ListSummary {
    ListSummary { id: access.list.id.get(), title: access.list.title, role: access.role }
}

fn details(detail: ListDetail) -> ListDetails {
    let list = detail.access.list;
    ListDetails {
        id: list.id.get(),
        title: list.title,
        role: detail.access.role,
        version: list.version,
        created_at: rfc3339(list.created_at),
        updated_at: rfc3339(list.updated_at),
        items: detail
            .items
            .into_iter()
            .map(|i| ItemData {
                id: i.id.get(),
                content: i.content,
                done: i.done,
                sort_rank: i.sort_rank,
            })
            .collect(),
        collaborators: detail
            .collaborators
            .into_iter()
            .map(|c| CollaboratorData { user_id: c.user.get(), email: c.email, role: c.role })
            .collect(),
    }
}
