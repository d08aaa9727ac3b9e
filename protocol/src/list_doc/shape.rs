//! The document's shape, read strictly: every reader and [`validate`] go through these
//! functions, so there is one definition of what a list document is.
//!
//! ```text
//! ROOT (map, exactly these two keys)
//! ├── title: Text
//! └── items: Map, keys = canonical decimal item ids (1..=2^53-1)
//!     └── "<id>": Map, exactly these three keys
//!         ├── content: Text
//!         ├── done: boolean
//!         └── sort_rank: string, a canonical fractional-index string (see SortRank)
//! ```
//!
//! Unknown keys are refused at every level. A later schema change therefore needs a protocol
//! version bump, with servers upgraded before clients; in exchange, no replica ever carries
//! data that the others cannot see or that would bloat a document unnoticed.
//! Only the winning value of a conflicted key is checked: that is what every reader sees, and
//! a later write supersedes all conflicting values at once.

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use super::error::ValidationError;
use super::item::Item;
use super::rules;
use super::touched::Touched;
use crate::id::is_valid_id;
use crate::{ItemId, SortRank};

pub(crate) const TITLE: &str = "title";
pub(crate) const ITEMS: &str = "items";
pub(crate) const CONTENT: &str = "content";
pub(crate) const DONE: &str = "done";
pub(crate) const SORT_RANK: &str = "sort_rank";

/// One item's place in the display order, without its text.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    pub(crate) id: ItemId,
    pub(crate) rank: SortRank,
    pub(crate) obj: ObjId,
}

fn unreadable(e: automerge::AutomergeError) -> ValidationError {
    ValidationError::Unreadable(e.to_string())
}

/// The object id at `obj[key]`, which must be an object of type `typ`.
fn object(
    doc: &AutoCommit,
    obj: &ObjId,
    key: &str,
    typ: ObjType,
    path: impl Fn() -> String,
    expected: &'static str,
) -> Result<ObjId, ValidationError> {
    match doc.get(obj, key).map_err(unreadable)? {
        Some((Value::Object(t), id)) if t == typ => Ok(id),
        Some(_) => Err(ValidationError::WrongType { path: path(), expected }),
        None => Err(ValidationError::Missing { path: path() }),
    }
}

/// The title text object.
pub(crate) fn title_obj(doc: &AutoCommit) -> Result<ObjId, ValidationError> {
    object(doc, &ROOT, TITLE, ObjType::Text, || TITLE.to_owned(), "text")
}

/// The items map.
pub(crate) fn items_obj(doc: &AutoCommit) -> Result<ObjId, ValidationError> {
    object(doc, &ROOT, ITEMS, ObjType::Map, || ITEMS.to_owned(), "a map")
}

/// The map of item `id`, if the list has it.
pub(crate) fn item_obj(
    doc: &AutoCommit,
    items: &ObjId,
    id: ItemId,
) -> Result<Option<ObjId>, ValidationError> {
    let key = id.to_string();
    match doc.get(items, key.as_str()).map_err(unreadable)? {
        Some((Value::Object(ObjType::Map), obj)) => Ok(Some(obj)),
        Some(_) => {
            Err(ValidationError::WrongType { path: format!("items/{key}"), expected: "a map" })
        }
        None => Ok(None),
    }
}

/// Parses an item key: the canonical decimal form of a valid id, nothing else.
pub(crate) fn parse_item_key(key: &str) -> Result<ItemId, ValidationError> {
    let bad = || ValidationError::BadItemKey { key: key.to_owned() };
    let canonical = !key.is_empty()
        && key.len() <= 16
        && key.bytes().all(|b| b.is_ascii_digit())
        && !key.starts_with('0');
    if !canonical {
        return Err(bad());
    }
    let raw: u64 = key.parse().map_err(|_| bad())?;
    if !is_valid_id(raw) {
        return Err(bad());
    }
    Ok(ItemId(raw))
}

/// Reads the `sort_rank` of the item map `obj`.
pub(crate) fn sort_rank(
    doc: &AutoCommit,
    id: ItemId,
    obj: &ObjId,
) -> Result<SortRank, ValidationError> {
    match doc.get(obj, SORT_RANK).map_err(unreadable)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(value) => SortRank::parse(value)
                .map_err(|_| ValidationError::BadSortRank { item: id, value: value.to_string() }),
            _ => Err(ValidationError::WrongType {
                path: format!("items/{id}/{SORT_RANK}"),
                expected: "a string",
            }),
        },
        Some(_) => Err(ValidationError::WrongType {
            path: format!("items/{id}/{SORT_RANK}"),
            expected: "a string",
        }),
        None => Err(ValidationError::Missing { path: format!("items/{id}/{SORT_RANK}") }),
    }
}

/// The text object holding the content of item map `obj`.
pub(crate) fn content_obj(
    doc: &AutoCommit,
    id: ItemId,
    obj: &ObjId,
) -> Result<ObjId, ValidationError> {
    object(doc, obj, CONTENT, ObjType::Text, || format!("items/{id}/{CONTENT}"), "text")
}

/// Reads the whole item map `obj`, checking every field and refusing unknown keys.
pub(crate) fn read_item(
    doc: &AutoCommit,
    id: ItemId,
    obj: &ObjId,
) -> Result<Item, ValidationError> {
    for key in doc.keys(obj) {
        if ![CONTENT, DONE, SORT_RANK].contains(&key.as_str()) {
            return Err(ValidationError::UnexpectedKey { path: format!("items/{id}/{key}") });
        }
    }
    let content_obj = content_obj(doc, id, obj)?;
    let content = doc.text(&content_obj).map_err(unreadable)?;
    let done = match doc.get(obj, DONE).map_err(unreadable)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Boolean(b) => *b,
            _ => {
                return Err(ValidationError::WrongType {
                    path: format!("items/{id}/{DONE}"),
                    expected: "a boolean",
                });
            }
        },
        Some(_) => {
            return Err(ValidationError::WrongType {
                path: format!("items/{id}/{DONE}"),
                expected: "a boolean",
            });
        }
        None => return Err(ValidationError::Missing { path: format!("items/{id}/{DONE}") }),
    };
    let sort_rank = sort_rank(doc, id, obj)?.as_str().to_owned();
    Ok(Item { id, content, done, sort_rank })
}

/// Every item key of the items map with its object id, checking keys and value types.
pub(crate) fn item_objs(
    doc: &AutoCommit,
    items: &ObjId,
) -> Result<Vec<(ItemId, ObjId)>, ValidationError> {
    doc.map_range(items, ..)
        .map(|entry| {
            let id = parse_item_key(&entry.key)?;
            match entry.value {
                automerge::ValueRef::Object(ObjType::Map) => Ok((id, entry.id())),
                _ => Err(ValidationError::WrongType {
                    path: format!("items/{id}"),
                    expected: "a map",
                }),
            }
        })
        .collect()
}

/// Every item with its rank, in display order: by rank, ties broken by item id.
pub(crate) fn placed_items(doc: &AutoCommit) -> Result<Vec<Placed>, ValidationError> {
    let items = items_obj(doc)?;
    let mut placed = item_objs(doc, &items)?
        .into_iter()
        .map(|(id, obj)| Ok(Placed { id, rank: sort_rank(doc, id, &obj)?, obj }))
        .collect::<Result<Vec<_>, ValidationError>>()?;
    placed.sort_by(|a, b| a.rank.cmp(&b.rank).then(a.id.cmp(&b.id)));
    Ok(placed)
}

/// Checks the whole document against the shape above.
pub(crate) fn validate(doc: &AutoCommit) -> Result<(), ValidationError> {
    let items = validate_top(doc)?;
    for (id, obj) in item_objs(doc, &items)? {
        read_item(doc, id, &obj)?;
    }
    Ok(())
}

/// Checks the whole document against the shape above and the rules of what a list may hold
/// (see [`super::rules`]): for a document that arrives whole (a list first synced by its
/// creator), where nothing of it was checked before.
pub(crate) fn validate_with_rules(doc: &AutoCommit) -> Result<(), ValidationError> {
    let items = validate_top(doc)?;
    let title = doc.text(title_obj(doc)?).map_err(unreadable)?;
    rules::check_title(&title)?;
    let objs = item_objs(doc, &items)?;
    if objs.len() > rules::MAX_ITEMS {
        return Err(rules::RuleError::TooManyItems.into());
    }
    for (id, obj) in objs {
        let item = read_item(doc, id, &obj)?;
        rules::check_item_text(id, &item.content)?;
        rules::check_sort_rank_len(id, &item.sort_rank)?;
    }
    Ok(())
}

/// Checks what changed (see [`Touched`]), given that the document was valid before: the top
/// level, and each touched item that is still there. A change to the root map itself is
/// checked whole.
pub(crate) fn validate_touched(doc: &AutoCommit, touched: &Touched) -> Result<(), ValidationError> {
    if touched.structure {
        return validate(doc);
    }
    let items = validate_top(doc)?;
    for key in &touched.item_keys {
        let id = parse_item_key(key)?;
        if let Some(obj) = item_obj(doc, &items, id)? {
            read_item(doc, id, &obj)?;
        }
    }
    Ok(())
}

/// Checks the root map and the title; returns the items map.
fn validate_top(doc: &AutoCommit) -> Result<ObjId, ValidationError> {
    for key in doc.keys(ROOT) {
        if key != TITLE && key != ITEMS {
            return Err(ValidationError::UnexpectedKey { path: key });
        }
    }
    let title = title_obj(doc)?;
    doc.text(&title).map_err(unreadable)?;
    items_obj(doc)
}
