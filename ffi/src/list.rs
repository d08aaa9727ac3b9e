//! The list values the bindings hand out: summaries for an overview, whole lists with their
//! items, and the roles a user can hold on a list.

use tandem_client as core;

/// A user's role on a list. `OWNER` may do everything (share, delete); `EDITOR` may edit the
/// title and items; `VIEWER` may only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Role {
    /// Created the list; may do everything, including share and delete.
    Owner,
    /// May read and edit the list's title and items.
    Editor,
    /// May only read.
    Viewer,
}

impl From<core::Role> for Role {
    fn from(role: core::Role) -> Self {
        match role {
            core::Role::Owner => Self::Owner,
            core::Role::Editor => Self::Editor,
            core::Role::Viewer => Self::Viewer,
        }
    }
}

impl From<Role> for core::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Editor => Self::Editor,
            Role::Viewer => Self::Viewer,
        }
    }
}

/// A list as shown in an overview.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ListSummary {
    /// The list's id (changes once if the list was made offline and the server could not
    /// keep its provisional id: a `IdRemapped` event says so).
    pub id: u64,
    /// Its title.
    pub title: String,
    /// This user's role on it.
    pub role: Role,
}

impl From<core::ListSummary> for ListSummary {
    fn from(list: core::ListSummary) -> Self {
        Self { id: list.id.get(), title: list.title, role: list.role.into() }
    }
}

/// One item of a list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Item {
    /// Unique within the list.
    pub id: u64,
    /// The item's text.
    pub content: String,
    /// Whether it is checked off.
    pub done: bool,
    /// The fractional-index string that orders the items; compare as plain strings.
    pub sort_rank: String,
}

impl From<core::Item> for Item {
    fn from(item: core::Item) -> Self {
        Self {
            id: item.id.get(),
            content: item.content,
            done: item.done,
            sort_rank: item.sort_rank,
        }
    }
}

/// A list with its items in display order.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TodoList {
    /// The list's id.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// This user's role on it.
    pub role: Role,
    /// The items, in display order (by sort rank, ties broken by item id).
    pub items: Vec<Item>,
}

impl From<core::TodoList> for TodoList {
    fn from(list: core::TodoList) -> Self {
        Self {
            id: list.id.get(),
            title: list.title,
            role: list.role.into(),
            items: list.items.into_iter().map(Item::from).collect(),
        }
    }
}
