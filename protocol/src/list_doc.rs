//! `ListDoc`: one TODO list as an Automerge document, and the only code that knows the
//! document's shape (see [`shape`] for the schema and the validation rules).
//!
//! Every editing method makes exactly one Automerge change, so one user action is one change
//! on the wire and one row in a store. Text is edited with splices (`update_text` turns a
//! whole-string edit into the minimal splices), so two people editing one item's text
//! concurrently merge character by character. Concurrent edits of other fields resolve as
//! Automerge does: the last writer (by Lamport order) wins `done` and `sort_rank`; removing an
//! item wins over a concurrent edit of it.
//!
//! ```
//! use tandem_protocol::{ItemId, ListDoc};
//!
//! let mut doc = ListDoc::new("Groceries").unwrap();
//! doc.add_item(ItemId(1), "milk").unwrap();
//! doc.add_item(ItemId(2), "eggs").unwrap();
//! doc.move_to_first(ItemId(2)).unwrap();
//! let names: Vec<String> = doc.items().unwrap().into_iter().map(|i| i.content).collect();
//! assert_eq!(names, ["eggs", "milk"]);
//! doc.validate().unwrap();
//! ```

mod error;
mod item;
pub mod shape;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjType, ROOT, ReadDoc};

pub use error::{EditError, LoadError, ValidationError};
pub use item::Item;
use shape::{CONTENT, DONE, ITEMS, SORT_RANK, TITLE};

use crate::{ItemId, SortRank};

/// One list as an Automerge document. Not `Sync`: wrap it in a lock to share it.
#[derive(Debug, Clone)]
pub struct ListDoc {
    doc: AutoCommit,
}

impl Default for ListDoc {
    fn default() -> Self {
        Self::empty()
    }
}

impl ListDoc {
    /// A new list with `title` and no items, made in one change.
    pub fn new(title: &str) -> Result<Self, EditError> {
        let mut doc = AutoCommit::new();
        let text = doc.put_object(ROOT, TITLE, ObjType::Text)?;
        doc.update_text(&text, title)?;
        doc.put_object(ROOT, ITEMS, ObjType::Map)?;
        doc.commit();
        Ok(Self { doc })
    }

    /// A replica with no changes at all, to be filled from a peer (sync). It is not a valid
    /// list until the creator's first change arrives.
    pub fn empty() -> Self {
        Self { doc: AutoCommit::new() }
    }

    /// Loads a document from [`ListDoc::save`] output, optionally followed by change chunks.
    /// The result is not validated; call [`ListDoc::validate`] on untrusted bytes.
    pub fn load(bytes: &[u8]) -> Result<Self, LoadError> {
        Ok(Self { doc: AutoCommit::load(bytes)? })
    }

    /// Wraps an Automerge document (e.g. one received whole from a peer).
    pub fn from_automerge(doc: AutoCommit) -> Self {
        Self { doc }
    }

    /// Applies saved changes (from [`ListDoc::save_after`] or [`ListDoc::save`]).
    pub fn load_incremental(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        self.doc.load_incremental(bytes)?;
        Ok(())
    }

    /// The whole document, compacted.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The changes made since `heads`, as one chunk that [`ListDoc::load_incremental`] reads.
    /// Empty when there are none.
    pub fn save_after(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// The document's current heads.
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The Automerge document, for sync (`automerge::sync::SyncDoc`) and merges. Callers that
    /// change it must run [`ListDoc::validate`] before trusting the result.
    pub fn automerge(&self) -> &AutoCommit {
        &self.doc
    }

    /// Mutable access to the Automerge document; see [`ListDoc::automerge`].
    pub fn automerge_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    /// Checks that the document is a well-formed list (the schema is in [`shape`]).
    /// The server runs this after every merge and refuses the change when it fails.
    pub fn validate(&self) -> Result<(), ValidationError> {
        shape::validate(&self.doc)
    }

    /// The list's title.
    pub fn title(&self) -> Result<String, ValidationError> {
        let title = shape::title_obj(&self.doc)?;
        self.doc.text(&title).map_err(|e| ValidationError::Unreadable(e.to_string()))
    }

    /// Every item in display order: by `sort_rank`, ties broken by item id, so every replica
    /// with the same changes shows the same order.
    pub fn items(&self) -> Result<Vec<Item>, ValidationError> {
        shape::placed_items(&self.doc)?
            .into_iter()
            .map(|p| shape::read_item(&self.doc, p.id, &p.obj))
            .collect()
    }

    /// One item, if the list has it.
    pub fn item(&self, id: ItemId) -> Result<Option<Item>, ValidationError> {
        let items = shape::items_obj(&self.doc)?;
        match shape::item_obj(&self.doc, &items, id)? {
            Some(obj) => shape::read_item(&self.doc, id, &obj).map(Some),
            None => Ok(None),
        }
    }

    /// Whether an item with this id is in the list.
    pub fn contains_item(&self, id: ItemId) -> Result<bool, ValidationError> {
        let items = shape::items_obj(&self.doc)?;
        Ok(shape::item_obj(&self.doc, &items, id)?.is_some())
    }

    /// How many items the list has.
    pub fn item_count(&self) -> Result<usize, ValidationError> {
        let items = shape::items_obj(&self.doc)?;
        Ok(self.doc.length(&items))
    }

    /// Replaces the title, as splices of the difference.
    pub fn set_title(&mut self, title: &str) -> Result<(), EditError> {
        self.change(|doc| {
            let text = shape::title_obj(doc)?;
            doc.update_text(&text, title)?;
            Ok(())
        })
    }

    /// Adds an item at the end of the list. `id` must be valid and unused in this list
    /// (callers draw it at random; see the client).
    pub fn add_item(&mut self, id: ItemId, content: &str) -> Result<Item, EditError> {
        if !id.is_valid() {
            return Err(EditError::InvalidItemId(id));
        }
        self.change(|doc| {
            let items = shape::items_obj(doc)?;
            if shape::item_obj(doc, &items, id)?.is_some() {
                return Err(EditError::DuplicateItem(id));
            }
            let rank = match shape::placed_items(doc)?.last() {
                Some(last) => last.rank.after(),
                None => SortRank::initial(),
            };
            let obj = doc.put_object(&items, id.to_string(), ObjType::Map)?;
            let text = doc.put_object(&obj, CONTENT, ObjType::Text)?;
            doc.update_text(&text, content)?;
            doc.put(&obj, DONE, false)?;
            doc.put(&obj, SORT_RANK, rank.as_str())?;
            Ok(Item { id, content: content.to_owned(), done: false, sort_rank: rank.to_string() })
        })
    }

    /// Replaces an item's text, as splices of the difference.
    pub fn edit_content(&mut self, id: ItemId, content: &str) -> Result<(), EditError> {
        self.change(|doc| {
            let obj = require_item(doc, id)?;
            let text = shape::content_obj(doc, id, &obj)?;
            doc.update_text(&text, content)?;
            Ok(())
        })
    }

    /// Checks an item off (`true`) or on again (`false`).
    pub fn set_done(&mut self, id: ItemId, done: bool) -> Result<(), EditError> {
        self.change(|doc| {
            let obj = require_item(doc, id)?;
            doc.put(&obj, DONE, done)?;
            Ok(())
        })
    }

    /// Moves an item to the top of the list.
    pub fn move_to_first(&mut self, id: ItemId) -> Result<(), EditError> {
        self.change(|doc| {
            require_item(doc, id)?;
            let placed = shape::placed_items(doc)?;
            let Some(first) = placed.iter().find(|p| p.id != id) else {
                return Ok(()); // the only item is already first
            };
            let obj = &placed.iter().find(|p| p.id == id).expect("checked above").obj;
            doc.put(obj, SORT_RANK, first.rank.before().as_str())?;
            Ok(())
        })
    }

    /// Moves an item to just after `after`. Items that share `after`'s rank and sorted after
    /// it (possible after concurrent edits) get new ranks behind the moved item, so the moved
    /// item lands exactly after `after`.
    pub fn move_after(&mut self, id: ItemId, after: ItemId) -> Result<(), EditError> {
        if id == after {
            return Err(EditError::MoveAfterItself(id));
        }
        self.change(|doc| {
            let moved = require_item(doc, id)?;
            require_item(doc, after)?;
            let rest: Vec<_> =
                shape::placed_items(doc)?.into_iter().filter(|p| p.id != id).collect();
            let at = rest.iter().position(|p| p.id == after).expect("checked above");
            let lower = rest[at].rank.clone();
            let tied_end = rest[at + 1..]
                .iter()
                .position(|p| p.rank != lower)
                .map_or(rest.len(), |n| at + 1 + n);
            let upper = rest.get(tied_end).map(|p| p.rank.clone());
            let mut previous =
                SortRank::between(&lower, upper.as_ref()).ok_or(EditError::NoRankBetween(id))?;
            doc.put(&moved, SORT_RANK, previous.as_str())?;
            for tied in &rest[at + 1..tied_end] {
                let rank = SortRank::between(&previous, upper.as_ref())
                    .ok_or(EditError::NoRankBetween(tied.id))?;
                doc.put(&tied.obj, SORT_RANK, rank.as_str())?;
                previous = rank;
            }
            Ok(())
        })
    }

    /// Removes an item.
    pub fn remove_item(&mut self, id: ItemId) -> Result<(), EditError> {
        self.change(|doc| {
            require_item(doc, id)?;
            let items = shape::items_obj(doc)?;
            doc.delete(&items, id.to_string())?;
            Ok(())
        })
    }

    /// Runs `edit` as one Automerge change: committed if it succeeds, rolled back if not.
    fn change<T>(
        &mut self,
        edit: impl FnOnce(&mut AutoCommit) -> Result<T, EditError>,
    ) -> Result<T, EditError> {
        match edit(&mut self.doc) {
            Ok(value) => {
                self.doc.commit();
                Ok(value)
            }
            Err(e) => {
                self.doc.rollback();
                Err(e)
            }
        }
    }
}

/// The map of item `id`, or [`EditError::NoSuchItem`].
fn require_item(doc: &AutoCommit, id: ItemId) -> Result<automerge::ObjId, EditError> {
    let items = shape::items_obj(doc)?;
    shape::item_obj(doc, &items, id)?.ok_or(EditError::NoSuchItem(id))
}

#[cfg(test)]
mod tests;
