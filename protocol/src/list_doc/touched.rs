//! What a merge changed, so that a server merging one edit into a 10,000-item list validates
//! and saves that one item instead of all of them.
//!
//! [`ListDoc::track_changes`](super::ListDoc::track_changes) starts recording;
//! [`ListDoc::take_touched`](super::ListDoc::take_touched) reads what the changes since touched
//! (from their ops, see [`super::objects`]) and starts afresh. The cost is proportional to
//! what changed, not to the document.

use std::collections::BTreeSet;

use super::shape::parse_item_key;
use crate::ItemId;

/// The parts of a list document that changed since the log was last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// The root map itself changed (a key put or deleted at the top): only a whole check
    /// will do.
    pub structure: bool,
    /// The title text changed.
    pub title: bool,
    /// Keys of the items map that were put, deleted, or changed inside, as found (they are
    /// not yet known to be valid ids).
    pub item_keys: BTreeSet<String>,
}

impl Touched {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.structure && !self.title && self.item_keys.is_empty()
    }

    /// The ids of the touched items whose keys are valid ids (after
    /// [`ListDoc::validate_touched`](super::ListDoc::validate_touched) passed, all of them).
    pub fn item_ids(&self) -> impl Iterator<Item = ItemId> + '_ {
        self.item_keys.iter().filter_map(|key| parse_item_key(key).ok())
    }

    /// Adds what `other` touched.
    pub fn merge(&mut self, other: Touched) {
        self.structure |= other.structure;
        self.title |= other.title;
        self.item_keys.extend(other.item_keys);
    }
}
