//! Local list operations: create, read, rename, delete. All work offline.

use rand::Rng;
use rusqlite::TransactionBehavior;
use tandem_protocol::id::MAX_ID;
use tandem_protocol::list_doc::rules;
use tandem_protocol::{ListDoc, ListId, Role};

use super::{Cached, Client, use_device_actor, visible_list};
use crate::events::ChangeKind;
use crate::list::{ListSummary, TodoList};
use crate::store::{account, documents, items, lists, reserved_ids};
use crate::{Error, Result};

/// Checks a title with the rule every side applies: 1 to 255 characters, not blank, no
/// control characters.
pub(crate) fn check_title(title: &str) -> Result<()> {
    rules::check_title(title).map_err(|e| Error::InvalidInput(e.to_string()))
}

impl Client {
    /// Creates a list owned by this user and returns it. Its id is one the server reserved
    /// for this user when one is left (so it stays the list's id after sync); otherwise a
    /// random provisional id that the first sync may remap (see
    /// [`Client::remap_list_id`]).
    pub fn create_list(&self, title: &str) -> Result<ListSummary> {
        check_title(title)?;
        let mut doc = ListDoc::new(title)?;
        let snapshot = doc.save();
        let id = {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let user = account::get(&tx)?.and_then(|a| a.user_id);
            let reserved = match user {
                Some(user) => reserved_ids::take(&tx, user)?,
                None => None,
            };
            let (id, provisional) = match reserved {
                Some(id) if !lists::exists(&tx, id)? => (id, false),
                _ => (provisional_id(&tx)?, true),
            };
            let row = lists::ListRow {
                id,
                title: title.to_owned(),
                role: Role::Owner,
                provisional,
                deleted: false,
            };
            lists::insert(&tx, &row)?;
            let generation = documents::insert(&tx, id, &snapshot)?;
            // The creating change keeps the actor `ListDoc::new` drew; every later one is the
            // device's.
            use_device_actor(&tx, &mut doc)?;
            tx.commit()?;
            inner.docs.insert(id, Cached { doc, generation });
            id
        };
        self.emit(id, ChangeKind::Created);
        Ok(ListSummary { id, title: title.to_owned(), role: Role::Owner })
    }

    /// Every list this user can see, in the order they were first known here.
    pub fn lists(&self) -> Result<Vec<ListSummary>> {
        let guard = self.lock();
        Ok(lists::all_visible(&guard.conn)?
            .into_iter()
            .map(|row| ListSummary { id: row.id, title: row.title, role: row.role })
            .collect())
    }

    /// One list with its items in display order. Reads the store only (no document load),
    /// so it is fast even for long lists.
    pub fn list(&self, list: ListId) -> Result<TodoList> {
        let mut guard = self.lock();
        // One read transaction: the title and the items come from the same snapshot.
        let tx = guard.conn.transaction()?;
        let row = visible_list(&tx, list)?;
        let items = items::in_order(&tx, list)?;
        Ok(TodoList { id: row.id, title: row.title, role: row.role, items })
    }

    /// Renames a list (OWNER or EDITOR).
    pub fn rename_list(&self, list: ListId, title: &str) -> Result<()> {
        check_title(title)?;
        self.edit(list, ChangeKind::Renamed, |doc| {
            doc.set_title(title)?;
            Ok(((), Vec::new()))
        })
    }

    /// Deletes a list (OWNER only). Locally it is hidden at once; the sync engine tells the
    /// server and then removes it from the store.
    pub fn delete_list(&self, list: ListId) -> Result<()> {
        {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = visible_list(&tx, list)?;
            if !row.role.can_delete() {
                return Err(Error::Forbidden(format!(
                    "only the owner can delete list {list}; you are {}",
                    row.role
                )));
            }
            lists::mark_deleted(&tx, list)?;
            tx.commit()?;
            inner.docs.remove(&list);
        }
        self.emit(list, ChangeKind::Deleted);
        Ok(())
    }
}

/// A random valid list id used by no list and no reservation of this store.
fn provisional_id(conn: &rusqlite::Connection) -> Result<ListId> {
    let mut rng = rand::thread_rng();
    loop {
        let id = ListId(rng.gen_range(1..=MAX_ID));
        if !lists::exists(conn, id)? && !reserved_ids::contains(conn, id)? {
            return Ok(id);
        }
    }
}
