//! A list's verified history as the server serves it (`GET /api/todolist/history`): who
//! made each change and when the server accepted it, newest first, a page at a time.
//!
//! The author is the user the server bound the change's Automerge actor to, not what any
//! peer claims; so this, and not the document's own change log, answers "who checked this
//! off". It needs the network: the device's document does not know who its changes came from.

use serde::{Deserialize, Serialize};
/// What one change did (the protocol's type, as the server serves it).
pub use tandem_protocol::history::ChangeAction;
use tandem_protocol::{ItemId, UserId};

/// Which page of a list's history to read: the newest by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryQuery {
    /// Only the changes that did something to this item.
    pub item: Option<ItemId>,
    /// Only changes older than this cursor ([`HistoryPage::next_before`]).
    pub before: Option<i64>,
    /// Most entries on the page; `None` for the server's default (100, also its maximum).
    pub limit: Option<u32>,
}

impl HistoryQuery {
    /// The newest changes to one item.
    pub fn item(item: ItemId) -> Self {
        Self { item: Some(item), ..Self::default() }
    }

    /// The same query, for the page after the one that gave `cursor`.
    pub fn before(self, cursor: i64) -> Self {
        Self { before: Some(cursor), ..self }
    }
}

/// One change the server accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The Automerge change hash, hexadecimal.
    pub hash: String,
    /// Who made it.
    pub user_id: UserId,
    /// Their email.
    pub email: Option<String>,
    /// When the server accepted it, RFC 3339 UTC (`2026-11-25T20:28:42Z`).
    pub accepted_at: String,
    /// What it did, in order.
    pub actions: Vec<ChangeAction>,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The changes, newest first.
    pub changes: Vec<HistoryEntry>,
    /// The cursor of the next (older) page, `None` on the last one.
    pub next_before: Option<i64>,
}
