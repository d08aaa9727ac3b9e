//! The history values the bindings hand out: a page of a list's verified history (who made
//! each change and when the server accepted it), each change with what it did.

use tandem_client::history::{self as core, ChangeAction as CoreAction};

/// What one change did. Python: `ChangeAction.CHECKED(item_id=7)`; Swift:
/// `.checked(itemId: 7)`; Kotlin: `ChangeAction.Checked(itemId = 7uL)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChangeAction {
    /// Made the list.
    Created,
    /// Changed the title.
    Renamed,
    /// Added an item.
    Added {
        /// The item.
        item_id: u64,
    },
    /// Changed an item's text.
    Edited {
        /// The item.
        item_id: u64,
    },
    /// Checked an item off.
    Checked {
        /// The item.
        item_id: u64,
    },
    /// Checked an item on again.
    Unchecked {
        /// The item.
        item_id: u64,
    },
    /// Moved an item.
    Moved {
        /// The item.
        item_id: u64,
    },
    /// Removed an item.
    Removed {
        /// The item.
        item_id: u64,
    },
}

impl From<CoreAction> for ChangeAction {
    fn from(action: CoreAction) -> Self {
        match action {
            CoreAction::Created => Self::Created,
            CoreAction::Renamed => Self::Renamed,
            CoreAction::Added { item } => Self::Added { item_id: item.get() },
            CoreAction::Edited { item } => Self::Edited { item_id: item.get() },
            CoreAction::Checked { item } => Self::Checked { item_id: item.get() },
            CoreAction::Unchecked { item } => Self::Unchecked { item_id: item.get() },
            CoreAction::Moved { item } => Self::Moved { item_id: item.get() },
            CoreAction::Removed { item } => Self::Removed { item_id: item.get() },
        }
    }
}

/// One change the server accepted.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// The Automerge change hash, hexadecimal.
    pub hash: String,
    /// Who made it (the user its Automerge actor is bound to on the server).
    pub user_id: u64,
    /// Their email.
    pub email: Option<String>,
    /// When the server accepted it, RFC 3339 UTC (`2026-11-25T20:28:42Z`).
    pub accepted_at: String,
    /// What it did, in order.
    pub actions: Vec<ChangeAction>,
}

impl From<core::HistoryEntry> for HistoryEntry {
    fn from(entry: core::HistoryEntry) -> Self {
        Self {
            hash: entry.hash,
            user_id: entry.user_id.get(),
            email: entry.email,
            accepted_at: entry.accepted_at,
            actions: entry.actions.into_iter().map(ChangeAction::from).collect(),
        }
    }
}

/// A page of a list's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryPage {
    /// The changes, newest first.
    pub changes: Vec<HistoryEntry>,
    /// Pass as `before` for the next (older) page; `None` on the last one.
    pub next_before: Option<i64>,
}

impl From<core::HistoryPage> for HistoryPage {
    fn from(page: core::HistoryPage) -> Self {
        Self {
            changes: page.changes.into_iter().map(HistoryEntry::from).collect(),
            next_before: page.next_before,
        }
    }
}
