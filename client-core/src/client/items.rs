//! Local item operations: add, edit, check off, move, remove. All work offline; each is one
//! Automerge change and one store transaction (see [`Client::edit`]).

use rand::Rng;
use tandem_protocol::id::MAX_ID;
use tandem_protocol::{ItemId, ListDoc, ListId};

use super::Client;
use crate::events::ChangeKind;
use crate::{Error, Result};

/// The longest item text accepted, in characters.
pub const MAX_CONTENT_CHARS: usize = 10_000;

fn check_content(content: &str) -> Result<()> {
    if content.chars().count() > MAX_CONTENT_CHARS {
        return Err(Error::InvalidInput(format!(
            "an item's text is at most {MAX_CONTENT_CHARS} characters"
        )));
    }
    Ok(())
}

/// A random item id not yet used in `doc`. Ids are drawn from the OS-seeded CSPRNG over
/// 1..=2^53-1, so two devices adding items concurrently practically never draw the same id
/// (and one device never reuses one: it redraws on a hit).
fn new_item_id(doc: &ListDoc) -> Result<ItemId> {
    let mut rng = rand::thread_rng();
    loop {
        let id = ItemId(rng.gen_range(1..=MAX_ID));
        if !doc.contains_item(id).map_err(|e| Error::Internal(e.to_string()))? {
            return Ok(id);
        }
    }
}

impl Client {
    /// Adds an item at the end of the list and returns its id.
    pub fn add_item(&self, list: ListId, content: &str) -> Result<ItemId> {
        check_content(content)?;
        self.edit(list, ChangeKind::ItemsChanged, |doc| {
            let id = new_item_id(doc)?;
            doc.add_item(id, content)?;
            Ok((id, vec![id]))
        })
    }

    /// Replaces an item's text. Stored as the splices of the difference, so a concurrent
    /// edit of the same text by someone else merges character by character.
    pub fn edit_item(&self, list: ListId, item: ItemId, content: &str) -> Result<()> {
        check_content(content)?;
        self.edit(list, ChangeKind::ItemsChanged, |doc| {
            doc.edit_content(item, content)?;
            Ok(((), vec![item]))
        })
    }

    /// Checks an item off (`true`) or on again (`false`).
    pub fn set_done(&self, list: ListId, item: ItemId, done: bool) -> Result<()> {
        self.edit(list, ChangeKind::ItemsChanged, |doc| {
            doc.set_done(item, done)?;
            Ok(((), vec![item]))
        })
    }

    /// Moves an item to the top (`after = None`) or just after another item.
    pub fn move_item(&self, list: ListId, item: ItemId, after: Option<ItemId>) -> Result<()> {
        self.edit(list, ChangeKind::ItemsChanged, |doc| match after {
            None => {
                doc.move_to_first(item)?;
                Ok(((), vec![item]))
            }
            Some(after) => Ok(((), doc.move_after(item, after)?)),
        })
    }

    /// Removes an item.
    pub fn remove_item(&self, list: ListId, item: ItemId) -> Result<()> {
        self.edit(list, ChangeKind::ItemsChanged, |doc| {
            doc.remove_item(item)?;
            Ok(((), vec![item]))
        })
    }
}
