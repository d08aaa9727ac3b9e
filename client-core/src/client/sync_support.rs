//! What the sync engine (and the server's answers) need from the client: lists seen on the
//! server, role changes, id remapping, remote changes and per-list sync state. These are
//! public so that the sync loop, the FFI and tests drive the same code.

use rusqlite::TransactionBehavior;
use tandem_protocol::{ListId, Role};

use super::{Client, cached_doc, merge_tracked, write_merge};
use crate::events::ChangeKind;
use crate::store::documents::{self, DocStats};
use crate::store::lists;
use crate::store::sync_states::{self, SyncStateRow};
use crate::{Error, Result};

impl Client {
    /// Records a list the server says this user can see. Unknown lists get an empty
    /// document that sync then fills (`Created`); known ones get their role updated
    /// (`RoleChanged`, if it differs). Returns whether the list was new.
    pub fn track_list(&self, list: ListId, title: &str, role: Role) -> Result<bool> {
        if !list.is_valid() {
            return Err(Error::InvalidInput(format!("{list} is not a valid list id")));
        }
        let kind = {
            let mut guard = self.lock();
            let tx = guard.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let kind = match lists::get(&tx, list)? {
                Some(row) if row.role == role => None,
                Some(_) => {
                    lists::set_role(&tx, list, role)?;
                    Some(ChangeKind::RoleChanged)
                }
                None => {
                    let row = lists::ListRow {
                        id: list,
                        title: title.to_owned(),
                        role,
                        provisional: false,
                        deleted: false,
                    };
                    lists::insert(&tx, &row)?;
                    documents::insert(&tx, list, &[])?;
                    Some(ChangeKind::Created)
                }
            };
            tx.commit()?;
            kind
        };
        let created = kind == Some(ChangeKind::Created);
        if let Some(kind) = kind {
            self.emit(list, kind);
        }
        Ok(created)
    }

    /// Removes a list and everything stored for it (deletion confirmed by the server, or
    /// the user no longer has access). Emits `Deleted`.
    pub fn forget_list(&self, list: ListId) -> Result<()> {
        {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !lists::exists(&tx, list)? {
                return Err(Error::NotFound(format!("no list {list}")));
            }
            lists::purge(&tx, list)?;
            tx.commit()?;
            inner.docs.remove(&list);
        }
        self.emit(list, ChangeKind::Deleted);
        Ok(())
    }

    /// Changes a list's id everywhere in the store (document, items, sync state) and in
    /// memory, clears its provisional flag and emits `IdRemapped { old }` under the new id.
    /// Called when the server does not keep an id drawn on this device.
    pub fn remap_list_id(&self, old: ListId, new: ListId) -> Result<()> {
        if !new.is_valid() {
            return Err(Error::InvalidInput(format!("{new} is not a valid list id")));
        }
        {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !lists::exists(&tx, old)? {
                return Err(Error::NotFound(format!("no list {old}")));
            }
            if lists::exists(&tx, new)? {
                return Err(Error::Conflict(format!("list id {new} is already used here")));
            }
            lists::change_id(&tx, old, new)?;
            tx.commit()?;
            if let Some(cached) = inner.docs.remove(&old) {
                inner.docs.insert(new, cached);
            }
        }
        self.emit(new, ChangeKind::IdRemapped { old });
        Ok(())
    }

    /// The lists whose id is provisional (created offline with no reserved id left).
    pub fn provisional_lists(&self) -> Result<Vec<ListId>> {
        let guard = self.lock();
        let all = lists::all_ids(&guard.conn)?;
        let mut out = Vec::new();
        for id in all {
            if lists::get(&guard.conn, id)?.is_some_and(|r| r.provisional && !r.deleted) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// The lists deleted here whose deletion the server has not confirmed yet.
    pub fn pending_deletions(&self) -> Result<Vec<ListId>> {
        let guard = self.lock();
        let all = lists::all_ids(&guard.conn)?;
        let mut out = Vec::new();
        for id in all {
            if lists::get(&guard.conn, id)?.is_some_and(|r| r.deleted) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Merges changes from elsewhere (Automerge change bytes or a saved document) into the
    /// list, checks what they touched with `ListDoc::validate_touched`, stores them with the
    /// touched rows in one transaction and emits `RemoteChanged`. A result that is not a valid list is
    /// refused and nothing is kept. Returns whether anything new arrived.
    pub fn apply_remote_changes(&self, list: ListId, bytes: &[u8]) -> Result<bool> {
        let written = {
            let mut guard = self.lock();
            let super::Inner { conn, docs } = &mut *guard;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if lists::get(&tx, list)?.is_none_or(|r| r.deleted) {
                return Err(Error::NotFound(format!("no list {list}")));
            }
            let result = (|| -> Result<Option<DocStats>> {
                let cached = cached_doc(&tx, docs, list)?;
                let heads = cached.doc.heads();
                let touched = merge_tracked(&mut cached.doc, |doc| {
                    doc.load_incremental(bytes).map_err(|e| Error::InvalidInput(e.to_string()))
                })?;
                let stats = write_merge(&tx, list, cached, &heads, &touched)?;
                if let Some(stats) = &stats {
                    tx.commit()?;
                    cached.generation = stats.generation;
                }
                Ok(stats)
            })();
            if result.is_err() {
                docs.remove(&list);
            }
            result?
        };
        let changed = written.is_some();
        if let Some(stats) = written {
            self.compact_if_due(list, &stats);
            self.emit(list, ChangeKind::RemoteChanged);
        }
        Ok(changed)
    }

    /// The whole document of a list, saved (for a peer that has nothing yet, or a backup).
    pub fn document_bytes(&self, list: ListId) -> Result<Vec<u8>> {
        let mut guard = self.lock();
        let super::Inner { conn, docs } = &mut *guard;
        let tx = conn.transaction()?;
        if !lists::exists(&tx, list)? {
            return Err(Error::NotFound(format!("no list {list}")));
        }
        Ok(cached_doc(&tx, docs, list)?.doc.save())
    }

    /// The stored sync state with the server for a list.
    pub fn sync_state(&self, list: ListId) -> Result<Option<SyncStateRow>> {
        let guard = self.lock();
        sync_states::get(&guard.conn, list)
    }

    /// Stores the sync state with the server for a list.
    pub fn put_sync_state(&self, list: ListId, state: &SyncStateRow) -> Result<()> {
        let guard = self.lock();
        if !lists::exists(&guard.conn, list)? {
            return Err(Error::NotFound(format!("no list {list}")));
        }
        sync_states::put(&guard.conn, list, state)
    }

    /// Folds a list's change chunks into one snapshot now, in the caller's thread (it also
    /// happens on its own, in the background, as chunks pile up).
    pub fn compact(&self, list: ListId) -> Result<()> {
        let mut guard = self.lock();
        let super::Inner { conn, docs } = &mut *guard;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !lists::exists(&tx, list)? {
            return Err(Error::NotFound(format!("no list {list}")));
        }
        let snapshot = cached_doc(&tx, docs, list)?.doc.save();
        documents::compact(&tx, list, &snapshot)?;
        tx.commit()?;
        Ok(())
    }
}
