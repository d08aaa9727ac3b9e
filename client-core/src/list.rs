//! The plain values the client hands out for lists: a summary for overviews and a whole list
//! with its items in display order.

use serde::Serialize;
use tandem_protocol::{Item, ListId, Role};

/// A list as shown in an overview (`tandem lists`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListSummary {
    /// The list's id.
    pub id: ListId,
    /// Its title.
    pub title: String,
    /// This user's role on it.
    pub role: Role,
}

/// A list with its items in display order (`tandem show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TodoList {
    /// The list's id.
    pub id: ListId,
    /// Its title.
    pub title: String,
    /// This user's role on it.
    pub role: Role,
    /// The items, by sort rank, ties broken by item id.
    pub items: Vec<Item>,
}
