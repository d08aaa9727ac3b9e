//! Checking changes from their own operations, before they are applied: refusing a bad change
//! then costs what the change costs, not a rebuild of the document (Automerge cannot take a
//! change back out; undoing one means rebuilding the document from its history).
//!
//! Every operation is placed with [`Objects`] (which part of the list its object is) and held
//! to the list's shape and [`rules`](super::rules):
//!
//! - nothing at the top of an existing list (its title and items objects are made once);
//! - on the items map: an item made (a map, under a canonical item id) or removed;
//! - in an item's map: `content` made as text, `done` put as a boolean, `sort_rank` put as
//!   a canonical rank within the length rule; a new item gets all three in the same message;
//! - in a text (the title or an item's content): one character inserted, or one removed;
//!   nothing else (no marks, no in-place updates, no objects).
//!
//! The rules on texts (length, control characters, a blank title) and on the number of items
//! hold for the result, which is known before applying: a text's visible characters are read
//! once with their element ids, an insert adds one, a delete removes the one it names if it is
//! still visible, and the rules concern the set of characters, not their order.
//!
//! What the changes did is collected on the way: the items they touched (for the rows) and,
//! per change, the [`ChangeAction`]s a person reads in the list's history.

use std::collections::HashMap;

use automerge::legacy::{ElementId, Key, Op, OpType};
use automerge::{AutoCommit, Change, ChangeHash, ObjId, ReadDoc as _, ScalarValue};

use super::error::ValidationError;
use super::objects::{Inner, ObjKey, Objects, Owner, op_key};
use super::rules::{self, MAX_ITEMS, RuleError};
use super::shape::{self, CONTENT, DONE, SORT_RANK};
use super::touched::Touched;
use crate::history::ChangeAction;
use crate::{ItemId, SortRank};

/// What a run of accepted changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// The parts of the list they touched.
    pub touched: Touched,
    /// Per change, in order: its hash and what it did.
    pub actions: Vec<(ChangeHash, Vec<ChangeAction>)>,
}

/// A text being checked: what it is, and its visible characters by element id.
struct Text {
    item: Option<ItemId>,
    visible: HashMap<ObjKey, char>,
}

/// An item made by the changes being checked: which of its fields they set.
#[derive(Default)]
struct NewItem {
    id: Option<ItemId>,
    content: bool,
    done: bool,
    sort_rank: bool,
}

/// Checks `changes` (in causal order) against `doc`, a well-formed list, before they are
/// applied. `objects` learns the objects they make; on an error nothing of them may be applied
/// (and `objects` may know objects that will never exist, which is harmless: their ids are
/// unique to the refused changes).
pub(crate) fn check_changes(
    doc: &AutoCommit,
    objects: &mut Objects,
    changes: &[&Change],
) -> Result<Checked, ValidationError> {
    let mut checker = Checker {
        doc,
        objects,
        items: shape::items_obj(doc)?,
        texts: HashMap::new(),
        new_items: HashMap::new(),
        present: HashMap::new(),
        count: None,
        checked: Checked::default(),
    };
    for change in changes {
        checker.change(change)?;
    }
    checker.finish()
}

struct Checker<'a> {
    doc: &'a AutoCommit,
    objects: &'a mut Objects,
    items: ObjId,
    texts: HashMap<ObjKey, Text>,
    new_items: HashMap<ObjKey, NewItem>,
    /// Item keys the changes put or removed: whether they are present now.
    present: HashMap<String, bool>,
    /// The number of items, once an item was added or removed.
    count: Option<usize>,
    checked: Checked,
}

impl Checker<'_> {
    fn change(&mut self, change: &Change) -> Result<(), ValidationError> {
        let expanded = change.decode();
        let start = expanded.start_op.get();
        let mut actions = Vec::new();
        for (i, op) in expanded.operations.iter().enumerate() {
            let id = (start + i as u64, expanded.actor_id.clone());
            if let Some(action) = self.op(id, op)?
                && !actions.contains(&action)
            {
                actions.push(action);
            }
        }
        // An item added by this change was not also edited, moved or unchecked by it.
        let added: Vec<ItemId> = actions
            .iter()
            .filter_map(|a| match a {
                ChangeAction::Added { item } => Some(*item),
                _ => None,
            })
            .collect();
        actions.retain(|a| match a {
            ChangeAction::Edited { item }
            | ChangeAction::Moved { item }
            | ChangeAction::Unchecked { item } => !added.contains(item),
            _ => true,
        });
        self.checked.actions.push((change.hash(), actions));
        Ok(())
    }

    /// Checks one op (`id` is its own id); returns what it did for the history.
    fn op(&mut self, id: ObjKey, op: &Op) -> Result<Option<ChangeAction>, ValidationError> {
        match self.objects.owner_in(self.doc, &op.obj) {
            Owner::Root => Err(unsupported("(top level)", "a change to the list's top level")),
            Owner::Unknown => Err(unsupported("(unknown object)", "a change to no part of a list")),
            Owner::Title => {
                self.checked.touched.title = true;
                self.text_op(id, &op.obj, None, op)?;
                Ok(Some(ChangeAction::Renamed))
            }
            Owner::Items => self.items_op(id, op),
            Owner::Item(key, inner) => {
                let item = shape::parse_item_key(&key)?;
                self.checked.touched.item_keys.insert(key.clone());
                match inner {
                    Inner::Map => self.item_op(id, item, key, op),
                    Inner::Content => {
                        self.text_op(id, &op.obj, Some(item), op)?;
                        Ok(Some(ChangeAction::Edited { item }))
                    }
                    Inner::Other => Err(unsupported(&format!("items/{key}"), "an unknown field")),
                }
            }
        }
    }

    /// An op on the items map: an item made or removed.
    fn items_op(&mut self, id: ObjKey, op: &Op) -> Result<Option<ChangeAction>, ValidationError> {
        let Key::Map(key) = &op.key else {
            return Err(unsupported("items", "a list position in the items map"));
        };
        let key = key.to_string();
        let item = shape::parse_item_key(&key)?;
        if op.insert {
            return Err(unsupported(&format!("items/{key}"), "an insertion"));
        }
        self.checked.touched.item_keys.insert(key.clone());
        let was_present = self.is_present(&key)?;
        match &op.action {
            OpType::Make(automerge::ObjType::Map) => {
                self.objects.learn(id.clone(), key.clone(), Inner::Map);
                self.new_items.insert(id, NewItem { id: Some(item), ..NewItem::default() });
                if !was_present {
                    self.adjust_count(1)?;
                }
                self.present.insert(key, true);
                Ok(Some(ChangeAction::Added { item }))
            }
            OpType::Delete => {
                if was_present {
                    self.adjust_count(-1)?;
                }
                self.present.insert(key, false);
                Ok(Some(ChangeAction::Removed { item }))
            }
            _ => {
                Err(ValidationError::WrongType { path: format!("items/{key}"), expected: "a map" })
            }
        }
    }

    /// An op on an item's map: a field set.
    fn item_op(
        &mut self,
        id: ObjKey,
        item: ItemId,
        key: String,
        op: &Op,
    ) -> Result<Option<ChangeAction>, ValidationError> {
        let obj = match &op.obj {
            automerge::legacy::ObjectId::Id(obj) => op_key(obj),
            automerge::legacy::ObjectId::Root => unreachable!("an item's map is not the root"),
        };
        let Key::Map(field) = &op.key else {
            return Err(unsupported(&format!("items/{key}"), "a list position in an item"));
        };
        let path = || format!("items/{key}/{field}");
        if op.insert {
            return Err(unsupported(&path(), "an insertion"));
        }
        let new = self.new_items.get_mut(&obj);
        let is_new = new.is_some();
        let action = match (field.as_str(), &op.action) {
            (CONTENT, OpType::Make(automerge::ObjType::Text)) => {
                self.objects.learn(id.clone(), key.clone(), Inner::Content);
                self.texts.insert(id, Text { item: Some(item), visible: HashMap::new() });
                if let Some(new) = new {
                    new.content = true;
                }
                ChangeAction::Edited { item }
            }
            (DONE, OpType::Put(ScalarValue::Boolean(done))) => {
                if let Some(new) = new {
                    new.done = true;
                }
                if *done {
                    ChangeAction::Checked { item }
                } else {
                    ChangeAction::Unchecked { item }
                }
            }
            (SORT_RANK, OpType::Put(ScalarValue::Str(rank))) => {
                SortRank::parse(rank)
                    .map_err(|_| ValidationError::BadSortRank { item, value: rank.to_string() })?;
                rules::check_sort_rank_len(item, rank)?;
                if let Some(new) = new {
                    new.sort_rank = true;
                }
                ChangeAction::Moved { item }
            }
            (CONTENT | DONE | SORT_RANK, OpType::Delete) => {
                return Err(unsupported(&path(), "removing a field of an item"));
            }
            (CONTENT, _) => {
                return Err(ValidationError::WrongType { path: path(), expected: "text" });
            }
            (DONE, _) => {
                return Err(ValidationError::WrongType { path: path(), expected: "a boolean" });
            }
            (SORT_RANK, _) => {
                return Err(ValidationError::WrongType { path: path(), expected: "a string" });
            }
            _ => return Err(ValidationError::UnexpectedKey { path: path() }),
        };
        // A new item's own fields are part of adding it, not separate actions.
        Ok((!is_new).then_some(action))
    }

    /// An op on a text: one character inserted or removed.
    fn text_op(
        &mut self,
        id: ObjKey,
        obj: &automerge::legacy::ObjectId,
        item: Option<ItemId>,
        op: &Op,
    ) -> Result<(), ValidationError> {
        let automerge::legacy::ObjectId::Id(text_id) = obj else {
            unreachable!("a text is not the root")
        };
        let text_key = op_key(text_id);
        let path = || match item {
            Some(item) => format!("items/{item}/{CONTENT}"),
            None => shape::TITLE.to_owned(),
        };
        let Key::Seq(element) = &op.key else {
            return Err(unsupported(&path(), "a map key in a text"));
        };
        if !self.texts.contains_key(&text_key) {
            let visible = self.visible(text_id)?;
            self.texts.insert(text_key.clone(), Text { item, visible });
        }
        let text = self.texts.get_mut(&text_key).expect("inserted above");
        match (&op.action, op.insert) {
            (OpType::Put(ScalarValue::Str(s)), true) => {
                let mut chars = s.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    return Err(unsupported(&path(), "an insertion of other than one character"));
                };
                // The element an insert makes is named by the insert's own op id.
                text.visible.insert(id, c);
                Ok(())
            }
            (OpType::Delete, false) => {
                if let ElementId::Id(removed) = element {
                    text.visible.remove(&op_key(removed));
                }
                Ok(())
            }
            _ => Err(unsupported(&path(), "an operation texts do not take")),
        }
    }

    /// The visible characters of an existing text, by element id.
    fn visible(
        &self,
        text: &automerge::legacy::OpId,
    ) -> Result<HashMap<ObjKey, char>, ValidationError> {
        let Ok((exid, automerge::ObjType::Text)) =
            self.doc.import(&format!("{}@{}", text.0, text.1))
        else {
            return Err(unsupported("(unknown text)", "a change to no text of the list"));
        };
        let mut visible = HashMap::new();
        for element in self.doc.list_range(&exid, ..) {
            let ObjId::Id(counter, actor, _) = element.id() else { continue };
            let value = match element.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                    s.chars().next().unwrap_or('\u{0}')
                }
                _ => '\u{0}',
            };
            visible.insert((counter, actor), value);
        }
        Ok(visible)
    }

    fn is_present(&self, key: &str) -> Result<bool, ValidationError> {
        if let Some(present) = self.present.get(key) {
            return Ok(*present);
        }
        Ok(self
            .doc
            .get(&self.items, key)
            .map_err(|e| ValidationError::Unreadable(e.to_string()))?
            .is_some())
    }

    fn adjust_count(&mut self, by: isize) -> Result<(), ValidationError> {
        let count = match self.count {
            Some(count) => count,
            None => self.doc.length(&self.items),
        };
        let count = count.saturating_add_signed(by);
        self.count = Some(count);
        if count > MAX_ITEMS { Err(RuleError::TooManyItems.into()) } else { Ok(()) }
    }

    /// The checks on results: texts within the rules, new items complete.
    fn finish(self) -> Result<Checked, ValidationError> {
        for text in self.texts.values() {
            let chars = text.visible.values().copied();
            match text.item {
                Some(item) => rules::check_item_chars(item, chars)?,
                None => rules::check_title_chars(chars)?,
            }
        }
        for new in self.new_items.values() {
            let item = new.id.expect("set when made");
            for (set, field) in
                [(new.content, CONTENT), (new.done, DONE), (new.sort_rank, SORT_RANK)]
            {
                if !set {
                    return Err(ValidationError::Missing { path: format!("items/{item}/{field}") });
                }
            }
        }
        Ok(self.checked)
    }
}

fn unsupported(path: &str, what: &'static str) -> ValidationError {
    ValidationError::Unsupported { path: path.to_owned(), what }
}

/// What an applied change did, for the history, read leniently from its operations: for
/// changes that were checked whole rather than op by op (a new list's first changes).
pub(crate) fn summarize(
    doc: &AutoCommit,
    objects: &mut Objects,
    change: &Change,
) -> Vec<ChangeAction> {
    let expanded = change.decode();
    let start = expanded.start_op.get();
    let mut actions = Vec::new();
    let mut push = |action: ChangeAction| {
        if !actions.contains(&action) {
            actions.push(action);
        }
    };
    for (i, op) in expanded.operations.iter().enumerate() {
        let owner = objects.owner_in(doc, &op.obj);
        let id = (start + i as u64, expanded.actor_id.clone());
        match (owner, &op.key, &op.action) {
            (Owner::Root, _, _) => push(ChangeAction::Created),
            (Owner::Title, _, _) => push(ChangeAction::Renamed),
            (Owner::Items, Key::Map(key), action) => {
                let Ok(item) = shape::parse_item_key(key) else { continue };
                match action {
                    OpType::Make(_) => {
                        objects.learn(id, key.to_string(), Inner::Map);
                        push(ChangeAction::Added { item });
                    }
                    OpType::Delete => push(ChangeAction::Removed { item }),
                    _ => {}
                }
            }
            (Owner::Item(key, inner), field, action) => {
                let Ok(item) = shape::parse_item_key(&key) else { continue };
                match (inner, field, action) {
                    (Inner::Content, _, _) => push(ChangeAction::Edited { item }),
                    (Inner::Map, Key::Map(f), OpType::Make(_)) if f == CONTENT => {
                        objects.learn(id, key, Inner::Content);
                        push(ChangeAction::Edited { item });
                    }
                    (Inner::Map, Key::Map(f), OpType::Put(ScalarValue::Boolean(done)))
                        if f == DONE =>
                    {
                        push(if *done {
                            ChangeAction::Checked { item }
                        } else {
                            ChangeAction::Unchecked { item }
                        })
                    }
                    (Inner::Map, Key::Map(f), OpType::Put(_)) if f == SORT_RANK => {
                        push(ChangeAction::Moved { item })
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let added: Vec<ItemId> = actions
        .iter()
        .filter_map(|a| match a {
            ChangeAction::Added { item } => Some(*item),
            _ => None,
        })
        .collect();
    let created = actions.contains(&ChangeAction::Created);
    actions.retain(|a| match a {
        ChangeAction::Edited { item }
        | ChangeAction::Moved { item }
        | ChangeAction::Unchecked { item } => !added.contains(item),
        ChangeAction::Renamed => !created,
        _ => true,
    });
    actions
}
