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

mod check;
mod error;
mod item;
mod objects;
mod order;
pub mod rules;
pub mod shape;
mod touched;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ChangeHash, ObjType, ROOT, ReadDoc};

pub use check::Checked;
pub use error::{EditError, LoadError, ValidationError};
pub use item::Item;
use objects::Objects;
use order::OrderIndex;
use rules::{MAX_ITEMS, MAX_SORT_RANK_CHARS, RuleError};
use shape::{CONTENT, DONE, ITEMS, SORT_RANK, TITLE};
pub use touched::Touched;

use crate::{ItemId, SortRank};

/// One list as an Automerge document. Not `Sync`: wrap it in a lock to share it.
#[derive(Debug, Clone)]
pub struct ListDoc {
    doc: AutoCommit,
    /// The display order at some heads. While changes are tracked it is brought up to date
    /// from what merges touched (only those items are read again); otherwise it is rebuilt
    /// when the heads moved on without it.
    order: Option<OrderIndex>,
    /// Set by [`ListDoc::track_changes`]: where reading what changed resumes.
    log: Option<ChangeLog>,
    /// What the order index read from the log and [`ListDoc::take_touched`] has not yet
    /// reported.
    pending: Touched,
}

/// What [`ListDoc::take_touched`] reads from: the heads it last read up to, and the owners of
/// the document's objects (see [`objects`]), `None` while the document is not a list yet.
#[derive(Debug, Clone)]
struct ChangeLog {
    heads: Vec<ChangeHash>,
    objects: Option<Objects>,
}

impl Default for ListDoc {
    fn default() -> Self {
        Self::empty()
    }
}

impl ListDoc {
    /// A new list with `title` and no items, made in one change.
    pub fn new(title: &str) -> Result<Self, EditError> {
        rules::check_title(title)?;
        let mut doc = AutoCommit::new();
        let text = doc.put_object(ROOT, TITLE, ObjType::Text)?;
        doc.update_text(&text, title)?;
        doc.put_object(ROOT, ITEMS, ObjType::Map)?;
        doc.commit();
        Ok(Self::from_automerge(doc))
    }

    /// A replica with no changes at all, to be filled from a peer (sync). It is not a valid
    /// list until the creator's first change arrives.
    pub fn empty() -> Self {
        Self::from_automerge(AutoCommit::new())
    }

    /// Loads a document from [`ListDoc::save`] output, optionally followed by change chunks.
    /// The result is not validated; call [`ListDoc::validate`] on untrusted bytes.
    pub fn load(bytes: &[u8]) -> Result<Self, LoadError> {
        let loaded = std::panic::catch_unwind(|| AutoCommit::load(bytes))
            .map_err(|_| LoadError::Malformed)??;
        Ok(Self::from_automerge(loaded))
    }

    /// Wraps an Automerge document (e.g. one received whole from a peer).
    pub fn from_automerge(doc: AutoCommit) -> Self {
        Self { doc, order: None, log: None, pending: Touched::default() }
    }

    /// Applies saved changes (from [`ListDoc::save_after`] or [`ListDoc::save`]).
    /// On [`LoadError::Malformed`] (Automerge panicked on the bytes) the document may be
    /// damaged: drop it.
    pub fn load_incremental(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        let doc = &mut self.doc;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.load_incremental(bytes)))
            .map_err(|_| LoadError::Malformed)??;
        Ok(())
    }

    /// The whole document, compacted. Changes whose dependencies are missing are left out.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save_with_options(automerge::SaveOptions { deflate: true, retain_orphans: false })
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

    /// Starts recording what changes from here on (see [`ListDoc::take_touched`]). A replica
    /// that merges other people's edits into a large list turns this on once.
    pub fn track_changes(&mut self) {
        let heads = self.doc.get_heads();
        self.log = Some(ChangeLog { heads: heads.clone(), objects: Objects::build(&self.doc) });
        self.pending = Touched::default();
        // From here the log holds every change: an index of older heads could not catch up.
        if self.order.as_ref().is_some_and(|order| order.heads != heads) {
            self.order = None;
        }
    }

    /// Whether [`ListDoc::track_changes`] was called.
    pub fn is_tracking_changes(&self) -> bool {
        self.log.is_some()
    }

    /// What changed since the last call (or since [`ListDoc::track_changes`]), read from the
    /// changes' own ops, and starts afresh. Costs in proportion to the changes, whatever the
    /// list's length. Without tracking, or while the document is not a list yet (an empty
    /// replica), it reports a change to the structure: check the whole document.
    pub fn take_touched(&mut self) -> Touched {
        let mut touched = std::mem::take(&mut self.pending);
        touched.merge(self.read_log());
        touched
    }

    /// Reads what the changes since the last read touched (from their ops), and brings the
    /// order index up to date with it: the touched items are read again, so a merge of one
    /// change into a long list costs one item, not the whole list. A change to the
    /// document's structure drops the index. Without tracking, everything counts as changed.
    fn read_log(&mut self) -> Touched {
        let heads = self.doc.get_heads();
        let Some(log) = &mut self.log else {
            return Touched { structure: true, ..Touched::default() };
        };
        if log.heads == heads {
            return Touched::default();
        }
        let changes = self.doc.get_changes(&log.heads);
        let touched = match &mut log.objects {
            Some(objects) => objects.read(&changes),
            None => Touched { structure: true, ..Touched::default() },
        };
        log.heads.clone_from(&heads);
        if touched.structure {
            log.objects = Objects::build(&self.doc);
        }
        if let Some(mut order) = self.order.take()
            && (order.heads == heads || order.refresh(&self.doc, &touched))
        {
            order.heads = heads;
            self.order = Some(order);
        }
        touched
    }

    /// Checks the whole document against its shape and the rules of what a list may hold:
    /// for a document that arrived whole, nothing of it checked before.
    pub fn validate_with_rules(&self) -> Result<(), ValidationError> {
        shape::validate_with_rules(&self.doc)
    }

    /// Whether the document is a list whose changes can be checked before they are applied
    /// ([`ListDoc::check_changes`]): a well-formed list whose changes are tracked.
    pub fn can_check_changes(&self) -> bool {
        self.log.as_ref().is_some_and(|log| log.objects.is_some())
    }

    /// Checks `changes` (in causal order, none of them applied yet, their dependencies all in
    /// the document or earlier in `changes`) from their operations alone: the list's shape,
    /// the rules of what a list may hold, and what they did. On success, apply them and call
    /// [`ListDoc::note_applied`] with the result's `touched`. Costs what the changes cost.
    pub fn check_changes(&mut self, changes: &[&Change]) -> Result<Checked, ValidationError> {
        let Some(objects) = self.log.as_mut().and_then(|log| log.objects.as_mut()) else {
            return Err(ValidationError::Unsupported {
                path: String::new(),
                what: "checking changes of a document that is not a tracked list",
            });
        };
        check::check_changes(&self.doc, objects, changes)
    }

    /// What `changes` did, for the history, without checking them (they were checked whole,
    /// as a new list's first changes are).
    pub fn summarize(
        &mut self,
        changes: &[&Change],
    ) -> Vec<(ChangeHash, Vec<crate::history::ChangeAction>)> {
        match Objects::build(&self.doc) {
            Some(mut objects) => changes
                .iter()
                .map(|change| (change.hash(), check::summarize(&self.doc, &mut objects, change)))
                .collect(),
            None => changes.iter().map(|change| (change.hash(), Vec::new())).collect(),
        }
    }

    /// Records that changes checked by [`ListDoc::check_changes`] were applied, with what
    /// they touched: the change log moves past them without reading them again.
    pub fn note_applied(&mut self, touched: &Touched) {
        let heads = self.doc.get_heads();
        let Some(log) = &mut self.log else { return };
        log.heads.clone_from(&heads);
        if touched.structure {
            log.objects = Objects::build(&self.doc);
        }
        if let Some(mut order) = self.order.take()
            && (order.heads == heads || order.refresh(&self.doc, touched))
        {
            order.heads = heads;
            self.order = Some(order);
        }
    }

    /// Checks what `touched` names, given that the document was valid before those changes:
    /// the same verdict as [`ListDoc::validate`] at a cost in proportion to the change.
    pub fn validate_touched(&self, touched: &Touched) -> Result<(), ValidationError> {
        shape::validate_touched(&self.doc, touched)
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
        rules::check_title(title)?;
        self.change(|doc, _| {
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
        rules::check_item_text(id, content)?;
        self.change(|doc, order| {
            if order.get(id).is_some() {
                return Err(EditError::DuplicateItem(id));
            }
            if order.len() >= MAX_ITEMS {
                return Err(RuleError::TooManyItems.into());
            }
            let rank = order.last_rank().map_or_else(SortRank::initial, SortRank::after);
            let items = shape::items_obj(doc)?;
            let obj = doc.put_object(&items, id.to_string(), ObjType::Map)?;
            let text = doc.put_object(&obj, CONTENT, ObjType::Text)?;
            doc.update_text(&text, content)?;
            doc.put(&obj, DONE, false)?;
            doc.put(&obj, SORT_RANK, rank.as_str())?;
            order.set(id, rank.clone(), obj);
            let rank = if too_long(&rank) {
                rerank(doc, order, &order.ids())?;
                order.get(id).expect("just placed").0.clone()
            } else {
                rank
            };
            Ok(Item { id, content: content.to_owned(), done: false, sort_rank: rank.to_string() })
        })
    }

    /// Replaces an item's text, as splices of the difference.
    pub fn edit_content(&mut self, id: ItemId, content: &str) -> Result<(), EditError> {
        rules::check_item_text(id, content)?;
        self.change(|doc, order| {
            let (_, obj) = order.get(id).ok_or(EditError::NoSuchItem(id))?;
            let text = shape::content_obj(doc, id, obj)?;
            doc.update_text(&text, content)?;
            Ok(())
        })
    }

    /// Checks an item off (`true`) or on again (`false`).
    pub fn set_done(&mut self, id: ItemId, done: bool) -> Result<(), EditError> {
        self.change(|doc, order| {
            let (_, obj) = order.get(id).ok_or(EditError::NoSuchItem(id))?;
            doc.put(obj, DONE, done)?;
            Ok(())
        })
    }

    /// Moves an item to the top of the list.
    pub fn move_to_first(&mut self, id: ItemId) -> Result<(), EditError> {
        self.change(|doc, order| {
            let (_, obj) = order.get(id).ok_or(EditError::NoSuchItem(id))?.clone();
            let Some((first, _)) = order.first_except(id) else {
                return Ok(()); // the only item is already first
            };
            let rank = first.before();
            if too_long(&rank) {
                let mut ids = order.ids();
                ids.retain(|&i| i != id);
                ids.insert(0, id);
                return rerank(doc, order, &ids);
            }
            doc.put(&obj, SORT_RANK, rank.as_str())?;
            order.set(id, rank, obj);
            Ok(())
        })
    }

    /// Moves an item to just after `after`, and returns the items whose rank changed (the
    /// moved one first). Items that share `after`'s rank and sorted after it (possible after
    /// concurrent edits) get new ranks behind the moved item, so that it lands exactly after
    /// `after`. When the ranks would grow past the rules' length (many moves into one gap),
    /// every item is ranked afresh in the same change.
    pub fn move_after(&mut self, id: ItemId, after: ItemId) -> Result<Vec<ItemId>, EditError> {
        if id == after {
            return Err(EditError::MoveAfterItself(id));
        }
        self.change(|doc, order| {
            let (_, moved) = order.get(id).ok_or(EditError::NoSuchItem(id))?.clone();
            let (lower, _) = order.get(after).ok_or(EditError::NoSuchItem(after))?.clone();
            let mut tied = Vec::new();
            let mut upper = None;
            for (rank, item) in order.after(&lower, after, id) {
                if *rank != lower {
                    upper = Some(rank.clone());
                    break;
                }
                tied.push(*item);
            }
            // The moved item, then the tied ones behind it, each between the last and `upper`.
            let mut placed = Vec::with_capacity(tied.len() + 1);
            let mut previous = lower;
            for item in std::iter::once(id).chain(tied) {
                let rank = SortRank::between(&previous, upper.as_ref())
                    .ok_or(EditError::NoRankBetween(item))?;
                placed.push((item, rank.clone()));
                previous = rank;
            }
            if placed.iter().any(|(_, rank)| too_long(rank)) {
                let mut ids = order.ids();
                ids.retain(|&i| i != id);
                let at = ids.iter().position(|&i| i == after).expect("listed by the index");
                ids.insert(at + 1, id);
                rerank(doc, order, &ids)?;
                let mut changed = vec![id];
                changed.extend(ids.into_iter().filter(|&i| i != id));
                return Ok(changed);
            }
            let mut changed = Vec::with_capacity(placed.len());
            for (item, rank) in placed {
                let obj = if item == id {
                    moved.clone()
                } else {
                    order.get(item).expect("listed by the index").1.clone()
                };
                doc.put(&obj, SORT_RANK, rank.as_str())?;
                order.set(item, rank, obj);
                changed.push(item);
            }
            Ok(changed)
        })
    }

    /// Removes an item.
    pub fn remove_item(&mut self, id: ItemId) -> Result<(), EditError> {
        self.change(|doc, order| {
            if order.get(id).is_none() {
                return Err(EditError::NoSuchItem(id));
            }
            let items = shape::items_obj(doc)?;
            doc.delete(&items, id.to_string())?;
            order.remove(id);
            Ok(())
        })
    }

    /// Runs `edit` as one Automerge change: committed if it succeeds, rolled back if not.
    /// `edit` gets the order index for the current heads and keeps it up to date; the index
    /// is dropped if the edit fails, so a half-applied index is never kept.
    fn change<T>(
        &mut self,
        edit: impl FnOnce(&mut AutoCommit, &mut OrderIndex) -> Result<T, EditError>,
    ) -> Result<T, EditError> {
        let heads = self.doc.get_heads();
        if self.log.is_some() && self.order.as_ref().is_some_and(|order| order.heads != heads) {
            let touched = self.read_log();
            self.pending.merge(touched);
        }
        let mut order = match self.order.take() {
            Some(order) if order.heads == heads => order,
            _ => OrderIndex::build(&self.doc, heads)?,
        };
        match edit(&mut self.doc, &mut order) {
            Ok(value) => {
                self.doc.commit();
                order.heads = self.doc.get_heads();
                self.order = Some(order);
                Ok(value)
            }
            Err(e) => {
                self.doc.rollback();
                Err(e)
            }
        }
    }
}

/// Whether a rank is longer than the rules allow.
fn too_long(rank: &SortRank) -> bool {
    rank.as_str().len() > MAX_SORT_RANK_CHARS
}

/// Gives `ids` (every item of the list, in the order wanted) fresh, short, evenly spread
/// ranks.
fn rerank(doc: &mut AutoCommit, order: &mut OrderIndex, ids: &[ItemId]) -> Result<(), EditError> {
    for (i, &id) in ids.iter().enumerate() {
        let (_, obj) = order.get(id).ok_or(EditError::NoSuchItem(id))?.clone();
        let rank = SortRank::spread(i, ids.len());
        doc.put(&obj, SORT_RANK, rank.as_str())?;
        order.set(id, rank, obj);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
