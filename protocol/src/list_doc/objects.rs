//! Which part of a list every Automerge object belongs to, so that the ops of a change say
//! what the change touched at a cost in proportion to the change.
//!
//! Automerge's own patch log answers the same question, but it places each patch in the
//! document (`PatchBuilder::get_path`), which in automerge 0.12 grows with the list: ~46 µs
//! for a one-item change on a 100-item list, ~190 µs on 1,000 items, ~5 ms on 10,000. Here an
//! op's object is looked up in a map built once from the document and extended as changes
//! make new objects: the title text, the items map, and every object inside an item (its map,
//! its content text, anything a malformed change puts there) under that item's key. An op on
//! an object the map does not know counts as a change to the structure, which is then checked
//! whole: never less safe than the patch log, only slower in that rare case.

use std::collections::HashMap;

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{ActorId, AutoCommit, Change, ObjId, ReadDoc as _};

use super::shape;
use super::touched::Touched;

/// An object's identity: the id of the op that made it.
type ObjKey = (u64, ActorId);

fn exid_key(obj: &ObjId) -> Option<ObjKey> {
    match obj {
        ObjId::Root => None,
        ObjId::Id(counter, actor, _) => Some((*counter, actor.clone())),
    }
}

/// The owner of every object of a well-formed list.
#[derive(Debug, Clone)]
pub(crate) struct Objects {
    title: ObjKey,
    items: ObjKey,
    /// Objects inside items (maps, texts, anything), by the key of their item.
    in_item: HashMap<ObjKey, String>,
}

/// What an op's object is.
enum Owner<'a> {
    Root,
    Title,
    Items,
    Item(&'a str),
    Unknown,
}

impl Objects {
    /// Reads the owners of a document's objects; `None` if it is not a well-formed list yet
    /// (an empty replica, or a malformed document), whose changes then count as structural.
    pub(crate) fn build(doc: &AutoCommit) -> Option<Self> {
        let title = exid_key(&shape::title_obj(doc).ok()?)?;
        let items_obj = shape::items_obj(doc).ok()?;
        let items = exid_key(&items_obj)?;
        let mut in_item = HashMap::new();
        for entry in doc.map_range(&items_obj, ..) {
            let key = entry.key.to_string();
            let obj = entry.id();
            if let Ok(Some((_, content))) = doc.get(&obj, shape::CONTENT) {
                in_item.extend(exid_key(&content).map(|c| (c, key.clone())));
            }
            in_item.extend(exid_key(&obj).map(|o| (o, key)));
        }
        Some(Self { title, items, in_item })
    }

    fn owner(&self, obj: &ObjectId) -> Owner<'_> {
        let ObjectId::Id(OpId(counter, actor)) = obj else { return Owner::Root };
        let key = (*counter, actor.clone());
        if key == self.title {
            Owner::Title
        } else if key == self.items {
            Owner::Items
        } else {
            self.in_item.get(&key).map_or(Owner::Unknown, |item| Owner::Item(item))
        }
    }

    /// What `changes` (in causal order, as `get_changes` gives them) touched; objects they
    /// make inside items are remembered.
    pub(crate) fn read(&mut self, changes: &[Change]) -> Touched {
        let mut touched = Touched::default();
        for change in changes {
            let expanded = change.decode();
            let start = expanded.start_op.get();
            for (i, op) in expanded.operations.iter().enumerate() {
                let item = match (self.owner(&op.obj), &op.key) {
                    (Owner::Root, _) | (Owner::Unknown, _) | (Owner::Items, Key::Seq(_)) => {
                        touched.structure = true;
                        None
                    }
                    (Owner::Title, _) => {
                        touched.title = true;
                        None
                    }
                    (Owner::Items, Key::Map(key)) => Some(key.to_string()),
                    (Owner::Item(item), _) => Some(item.to_owned()),
                };
                if let Some(item) = item {
                    if let OpType::Make(_) = op.action {
                        let made = (start + i as u64, expanded.actor_id.clone());
                        self.in_item.insert(made, item.clone());
                    }
                    touched.item_keys.insert(item);
                }
            }
        }
        touched
    }
}
