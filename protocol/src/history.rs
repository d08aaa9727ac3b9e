//! What one accepted change did to a list, in the words its history shows a person: who
//! checked an item off, who renamed the list. The server derives these from the change's own
//! operations when it accepts the change (the author is the user its Automerge actor is bound
//! to, never what the change claims), stores them beside the change, and serves them through
//! REST; clients read them back in the same shape.
//!
//! ```
//! use tandem_protocol::{ItemId, history::ChangeAction};
//!
//! let json = serde_json::to_string(&ChangeAction::Checked { item: ItemId(7) }).unwrap();
//! assert_eq!(json, r#"{"action":"checked","item":7}"#);
//! ```

use serde::{Deserialize, Serialize};

use crate::ItemId;

/// One thing a change did. A change may do several (a rename and an added item, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ChangeAction {
    /// Made the list (its title and items map).
    Created,
    /// Changed the title.
    Renamed,
    /// Added an item.
    Added {
        /// The item.
        item: ItemId,
    },
    /// Changed an item's text.
    Edited {
        /// The item.
        item: ItemId,
    },
    /// Checked an item off.
    Checked {
        /// The item.
        item: ItemId,
    },
    /// Checked an item on again.
    Unchecked {
        /// The item.
        item: ItemId,
    },
    /// Moved an item.
    Moved {
        /// The item.
        item: ItemId,
    },
    /// Removed an item.
    Removed {
        /// The item.
        item: ItemId,
    },
}
