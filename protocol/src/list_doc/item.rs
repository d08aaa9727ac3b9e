//! One item as read from a list document.

use serde::{Deserialize, Serialize};

use crate::ItemId;

/// An item of a list, as the document holds it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Unique within the list.
    pub id: ItemId,
    /// The item's text.
    pub content: String,
    /// Whether the item is checked off.
    pub done: bool,
    /// The fractional-index string that places the item (see [`crate::SortRank`]).
    pub sort_rank: String,
}
