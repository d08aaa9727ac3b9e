//! Which part of a list every Automerge object belongs to, so that the ops of a change say
//! what the change touched at a cost in proportion to the change.
//!
//! Automerge's own patch log answers the same question, but it places each patch in the
//! document (`PatchBuilder::get_path`), which in automerge 0.12 grows with the list: ~46 µs
//! for a one-item change on a 100-item list, ~190 µs on 1,000 items, ~5 ms on 10,000. Here an
//! op's object is looked up in a map built once from the document and extended as changes
//! make new objects: the title text, the items map, and every object inside an item (its map,
//! its content text, anything a malformed change puts there) under that item's key. An
//! object the map does not know (one inside an item removed before the map was built) is
//! looked up once through Automerge's parents of the object and remembered.

use std::collections::HashMap;

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{ActorId, AutoCommit, Change, ObjId, ObjType, Prop, ReadDoc as _};

use super::shape;
use super::touched::Touched;

/// An object's identity: the id of the op that made it.
pub(crate) type ObjKey = (u64, ActorId);

fn exid_key(obj: &ObjId) -> Option<ObjKey> {
    match obj {
        ObjId::Root => None,
        ObjId::Id(counter, actor, _) => Some((*counter, actor.clone())),
    }
}

/// The key of an op id.
pub(crate) fn op_key(OpId(counter, actor): &OpId) -> ObjKey {
    (*counter, actor.clone())
}

/// What an object inside an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inner {
    /// The item's map.
    Map,
    /// The item's content text.
    Content,
    /// Anything else (only a malformed change makes one).
    Other,
}

/// The owner of every object of a well-formed list.
#[derive(Debug, Clone)]
pub(crate) struct Objects {
    title: ObjKey,
    items: ObjKey,
    /// Objects inside items, by the key of their item.
    in_item: HashMap<ObjKey, (String, Inner)>,
}

/// What an op's object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    Root,
    Title,
    Items,
    /// Inside the item of this key.
    Item(String, Inner),
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
                in_item.extend(exid_key(&content).map(|c| (c, (key.clone(), Inner::Content))));
            }
            in_item.extend(exid_key(&obj).map(|o| (o, (key, Inner::Map))));
        }
        Some(Self { title, items, in_item })
    }

    /// The owner of `obj` as far as the map knows.
    pub(crate) fn owner(&self, obj: &ObjectId) -> Owner {
        let ObjectId::Id(id) = obj else { return Owner::Root };
        let key = op_key(id);
        if key == self.title {
            Owner::Title
        } else if key == self.items {
            Owner::Items
        } else {
            self.in_item
                .get(&key)
                .map_or(Owner::Unknown, |(item, inner)| Owner::Item(item.clone(), *inner))
        }
    }

    /// The owner of `obj`, looked up in `doc` if the map does not know it (see
    /// [`Objects::resolve`]).
    pub(crate) fn owner_in(&mut self, doc: &AutoCommit, obj: &ObjectId) -> Owner {
        match self.owner(obj) {
            Owner::Unknown if self.resolve(doc, obj) => self.owner(obj),
            owner => owner,
        }
    }

    /// Looks an object the map does not know up in `doc` (an object of an item removed
    /// before the map was built), and remembers it. False if it is no part of an item.
    pub(crate) fn resolve(&mut self, doc: &AutoCommit, obj: &ObjectId) -> bool {
        let ObjectId::Id(id) = obj else { return false };
        let Ok((exid, typ)) = doc.import(&format!("{}@{}", id.0, id.1)) else { return false };
        let Ok(parents) = doc.parents(&exid) else { return false };
        let path: Vec<(Option<ObjKey>, Prop)> =
            parents.map(|p| (exid_key(&p.obj), p.prop)).collect();
        let items = Some(self.items.clone());
        let found = match path.as_slice() {
            [(map, Prop::Map(key)), (root, Prop::Map(top))] if *map == items && root.is_none() => {
                (top == shape::ITEMS && typ == ObjType::Map).then(|| (key.clone(), Inner::Map))
            }
            [(_, Prop::Map(field)), (map, Prop::Map(key)), (root, Prop::Map(top))]
                if *map == items && root.is_none() && top == shape::ITEMS =>
            {
                let content = field == shape::CONTENT && typ == ObjType::Text;
                Some((key.clone(), if content { Inner::Content } else { Inner::Other }))
            }
            _ => None,
        };
        match found {
            Some(part) => {
                self.in_item.insert(op_key(id), part);
                true
            }
            None => false,
        }
    }

    /// Remembers an object made inside item `key`.
    pub(crate) fn learn(&mut self, made: ObjKey, key: String, inner: Inner) {
        self.in_item.insert(made, (key, inner));
    }

    /// What `changes` (in causal order, as `get_changes` gives them) touched; objects they
    /// make inside items are remembered. An op on an object the map does not know counts as
    /// a change to the structure, which is then checked whole.
    pub(crate) fn read(&mut self, changes: &[Change]) -> Touched {
        let mut touched = Touched::default();
        for change in changes {
            let expanded = change.decode();
            let start = expanded.start_op.get();
            for (i, op) in expanded.operations.iter().enumerate() {
                let (item, inner) = match (self.owner(&op.obj), &op.key) {
                    (Owner::Root, _) | (Owner::Unknown, _) | (Owner::Items, Key::Seq(_)) => {
                        touched.structure = true;
                        continue;
                    }
                    (Owner::Title, _) => {
                        touched.title = true;
                        continue;
                    }
                    (Owner::Items, Key::Map(key)) => (key.to_string(), None),
                    (Owner::Item(item, inner), key) => (item, Some((inner, key))),
                };
                if let OpType::Make(typ) = op.action {
                    let made_inner = match inner {
                        None if typ == ObjType::Map => Inner::Map,
                        Some((Inner::Map, Key::Map(field)))
                            if field == shape::CONTENT && typ == ObjType::Text =>
                        {
                            Inner::Content
                        }
                        _ => Inner::Other,
                    };
                    let made = (start + i as u64, expanded.actor_id.clone());
                    self.learn(made, item.clone(), made_inner);
                }
                touched.item_keys.insert(item);
            }
        }
        touched
    }
}
