//! What a merge changed, read from Automerge's patch log, so that a server merging one edit
//! into a 10,000-item list validates and saves that one item instead of all of them.
//!
//! [`ListDoc::track_changes`](super::ListDoc::track_changes) turns the log on;
//! [`ListDoc::take_touched`](super::ListDoc::take_touched) reads and resets it. The cost is
//! proportional to what changed, not to the document.

use std::collections::BTreeSet;

use automerge::{Patch, PatchAction, Prop};

use super::shape::{ITEMS, TITLE, parse_item_key};
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

    /// What a batch of patches touched.
    pub(crate) fn from_patches(patches: &[Patch]) -> Self {
        let mut touched = Self::default();
        for patch in patches {
            touched.add(patch);
        }
        touched
    }

    fn add(&mut self, patch: &Patch) {
        let Some((_, Prop::Map(top))) = patch.path.first() else {
            // A patch on the root map itself, or a path that no list has.
            self.structure = true;
            return;
        };
        match top.as_str() {
            TITLE => self.title = true,
            ITEMS => match patch.path.get(1) {
                Some((_, Prop::Map(key))) => {
                    self.item_keys.insert(key.clone());
                }
                Some((_, Prop::Seq(_))) => self.structure = true,
                // A patch on the items map: the key it names.
                None => match &patch.action {
                    PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
                        self.item_keys.insert(key.clone());
                    }
                    PatchAction::Conflict { prop: Prop::Map(key) }
                    | PatchAction::Increment { prop: Prop::Map(key), .. } => {
                        self.item_keys.insert(key.clone());
                    }
                    _ => self.structure = true,
                },
            },
            _ => self.structure = true,
        }
    }
}
