//! The store side of an Automerge sync exchange with the server. The sync engine keeps one
//! in-memory `automerge::sync::State` per list and connection; these methods run each step
//! of the exchange on the list's stored document under the store lock, so that a received
//! message, the document it changes, the derived item rows and the persisted sync state are
//! written in ONE transaction (a crash never leaves the sync state ahead of the document).
//! Also here: the housekeeping sync needs before it connects (provisional ids, deletions).

use rusqlite::TransactionBehavior;
use tandem_protocol::automerge::sync::{Message, State, SyncDoc as _};
use tandem_protocol::automerge::{Change, ChangeHash};
use tandem_protocol::{ListId, streaming};

use super::{Client, Inner, cached_doc, merge_tracked, use_device_actor, write_merge};
use crate::events::ChangeKind;
use crate::store::documents::{self, DocStats};
use crate::store::sync_states::{self, SyncStateRow};
use crate::store::{account, items, lists, reserved_ids};
use crate::{Error, Result};

/// What [`Client::apply_server_changes`] did with a version 2 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameApplied {
    /// Whether the document changed (new remote changes were merged and stored).
    pub changed: bool,
    /// Whether the document now holds every head the frame named. When not, a dependency was
    /// missing (a batch was missed): nothing was stored, and the list must catch up through
    /// sync messages.
    pub complete: bool,
}

/// What [`Client::sync_receive`] did with a server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReceived {
    /// Whether the document changed (new remote changes were merged and stored).
    pub changed: bool,
    /// The heads the server advertised in this message.
    pub server_heads: Vec<ChangeHash>,
}

impl Client {
    /// The sync state to begin a connection with for `list`: the persisted one (so only
    /// missing changes travel), else a fresh one. Also returns the server heads last seen.
    pub fn load_sync_state(&self, list: ListId) -> Result<(State, Vec<ChangeHash>)> {
        match self.sync_state(list)? {
            Some(row) => match State::decode(&row.state) {
                Ok(state) => Ok((state, row.server_heads)),
                Err(e) => {
                    // A state that does not decode costs one full exchange, nothing more.
                    tracing::warn!(%list, error = %e, "stored sync state unreadable; starting over");
                    Ok((State::new(), row.server_heads))
                }
            },
            None => Ok((State::new(), Vec::new())),
        }
    }

    /// The next sync message for the server about `list`, if one is due (encoded
    /// `automerge::sync::Message`). Reads the stored document; writes nothing.
    pub fn sync_generate(&self, list: ListId, state: &mut State) -> Result<Option<Vec<u8>>> {
        let mut guard = self.lock();
        let Inner { conn, docs } = &mut *guard;
        let tx = conn.transaction()?;
        if lists::get(&tx, list)?.is_none_or(|r| r.deleted) {
            return Err(Error::NotFound(format!("no list {list}")));
        }
        let cached = cached_doc(&tx, docs, list)?;
        Ok(cached.doc.automerge_mut().sync().generate_sync_message(state).map(Message::encode))
    }

    /// Receives a server sync message about `list` into its document and `state`. New
    /// changes are validated (the parts of the list they touched), then the document chunk,
    /// the touched item rows, the title and the encoded sync state with the server's heads
    /// are committed together; then `RemoteChanged` is emitted. A message that does not decode, or whose changes would
    /// make the list malformed, is refused with nothing stored (`InvalidInput`); the caller
    /// should then restart `state` from [`Client::load_sync_state`].
    pub fn sync_receive(
        &self,
        list: ListId,
        state: &mut State,
        data: &[u8],
    ) -> Result<SyncReceived> {
        let message = Message::decode(data)
            .map_err(|e| Error::InvalidInput(format!("list {list}: not a sync message: {e}")))?;
        let server_heads = message.heads.clone();
        let written = {
            let mut guard = self.lock();
            let Inner { conn, docs } = &mut *guard;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if lists::get(&tx, list)?.is_none_or(|r| r.deleted) {
                return Err(Error::NotFound(format!("no list {list}")));
            }
            let result = (|| -> Result<Option<DocStats>> {
                let cached = cached_doc(&tx, docs, list)?;
                let before = cached.doc.heads();
                let touched = merge_tracked(&mut cached.doc, |doc| {
                    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        doc.automerge_mut().sync().receive_sync_message(state, message)
                    }));
                    match applied {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(Error::InvalidInput(format!("list {list}: {e}"))),
                        Err(_) => Err(Error::InvalidInput(format!(
                            "list {list}: the sync message could not be applied"
                        ))),
                    }
                })?;
                let stats = write_merge(&tx, list, cached, &before, &touched)?;
                let row =
                    SyncStateRow { state: state.encode(), server_heads: server_heads.clone() };
                sync_states::put(&tx, list, &row)?;
                tx.commit()?;
                if let Some(stats) = &stats {
                    cached.generation = stats.generation;
                }
                Ok(stats)
            })();
            if result.is_err() {
                // The in-memory document may hold what the store refused: reload next time.
                docs.remove(&list);
            }
            result?
        };
        let changed = written.is_some();
        if let Some(stats) = written {
            self.compact_if_due(list, &stats);
            self.emit(list, ChangeKind::RemoteChanged);
        }
        Ok(SyncReceived { changed, server_heads })
    }

    /// Applies a version 2 frame: a batch of changes the server saved (`data`, change chunks)
    /// and the list's heads after it. Validated and stored like [`Client::sync_receive`], in
    /// one transaction with `state`, which is brought to where the server's would be after
    /// sending the batch (so it generates nothing while the list stays in step). When a
    /// dependency is missing nothing is stored and `complete` is false: the caller goes back
    /// to sync messages (`state` then knows the server's heads and asks for what is missing).
    pub fn apply_server_changes(
        &self,
        list: ListId,
        state: &mut State,
        data: &[u8],
        server_heads: &[ChangeHash],
    ) -> Result<FrameApplied> {
        let written = {
            let mut guard = self.lock();
            let Inner { conn, docs } = &mut *guard;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if lists::get(&tx, list)?.is_none_or(|r| r.deleted) {
                return Err(Error::NotFound(format!("no list {list}")));
            }
            let result = (|| -> Result<Option<Option<DocStats>>> {
                let cached = cached_doc(&tx, docs, list)?;
                let before = cached.doc.heads();
                let touched = merge_tracked(&mut cached.doc, |doc| {
                    doc.load_incremental(data).map_err(|e| {
                        Error::InvalidInput(format!("list {list}: the server's changes: {e}"))
                    })
                })?;
                if !streaming::holds(cached.doc.automerge_mut(), server_heads) {
                    return Ok(None);
                }
                let stats = write_merge(&tx, list, cached, &before, &touched)?;
                streaming::note_frame(cached.doc.automerge_mut(), state, server_heads);
                let row =
                    SyncStateRow { state: state.encode(), server_heads: server_heads.to_vec() };
                sync_states::put(&tx, list, &row)?;
                tx.commit()?;
                if let Some(stats) = &stats {
                    cached.generation = stats.generation;
                }
                Ok(Some(stats))
            })();
            if !matches!(result, Ok(Some(_))) {
                // The in-memory document holds what was refused or could not be placed: reload
                // it from the store next time.
                docs.remove(&list);
            }
            match result? {
                Some(stats) => stats,
                None => {
                    // Asks for what is missing in the next sync message.
                    state.their_heads = Some(server_heads.to_vec());
                    state.in_flight = false;
                    return Ok(FrameApplied { changed: false, complete: false });
                }
            }
        };
        let changed = written.is_some();
        if let Some(stats) = written {
            self.compact_if_due(list, &stats);
            self.emit(list, ChangeKind::RemoteChanged);
        }
        Ok(FrameApplied { changed, complete: true })
    }

    /// The changes of a list's document that are not in the history at `heads` (the
    /// server's): what a version 2 client in step sends as `Changes` (their
    /// `Change::raw_bytes`, one after another). `None` when the document does not hold all of
    /// `heads`.
    pub fn changes_since(&self, list: ListId, heads: &[ChangeHash]) -> Result<Option<Vec<Change>>> {
        let mut guard = self.lock();
        let Inner { conn, docs } = &mut *guard;
        let tx = conn.transaction()?;
        if lists::get(&tx, list)?.is_none_or(|r| r.deleted) {
            return Err(Error::NotFound(format!("no list {list}")));
        }
        let doc = cached_doc(&tx, docs, list)?.doc.automerge_mut();
        Ok(streaming::changes_since(doc, heads))
    }

    /// The current heads of a list's document.
    pub fn heads(&self, list: ListId) -> Result<Vec<ChangeHash>> {
        let mut guard = self.lock();
        let Inner { conn, docs } = &mut *guard;
        let tx = conn.transaction()?;
        if !lists::exists(&tx, list)? {
            return Err(Error::NotFound(format!("no list {list}")));
        }
        Ok(cached_doc(&tx, docs, list)?.doc.heads())
    }

    /// Whether the list's document holds every change in `hashes`.
    pub fn has_changes(&self, list: ListId, hashes: &[ChangeHash]) -> Result<bool> {
        let mut guard = self.lock();
        let Inner { conn, docs } = &mut *guard;
        let tx = conn.transaction()?;
        if !lists::exists(&tx, list)? {
            return Err(Error::NotFound(format!("no list {list}")));
        }
        let doc = &mut cached_doc(&tx, docs, list)?.doc;
        Ok(hashes.iter().all(|h| doc.automerge_mut().get_change_by_hash(h).is_some()))
    }

    /// Drops every change of the list's document that is not in the history at `heads`
    /// (the server's): used when the server holds this user as a viewer and so will never
    /// take the changes made here (say, edits made offline just before a downgrade). The
    /// document, items and title go back to the server's state in one transaction, and
    /// `RemoteChanged` is emitted. Returns whether anything was dropped. Refuses (and
    /// changes nothing) unless the document holds all of `heads`.
    pub fn discard_changes_after(&self, list: ListId, heads: &[ChangeHash]) -> Result<bool> {
        if heads.is_empty() {
            return Ok(false);
        }
        let changed = {
            let mut guard = self.lock();
            let Inner { conn, docs } = &mut *guard;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if lists::get(&tx, list)?.is_none_or(|r| r.deleted) {
                return Err(Error::NotFound(format!("no list {list}")));
            }
            let cached = cached_doc(&tx, docs, list)?;
            let mut ours = cached.doc.heads();
            let mut theirs = heads.to_vec();
            ours.sort();
            theirs.sort();
            if ours == theirs {
                return Ok(false);
            }
            let fork = cached.doc.automerge_mut().fork_at(heads).map_err(|e| {
                Error::InvalidInput(format!(
                    "list {list}: cannot go back to the server's state: {e}"
                ))
            })?;
            let mut doc = tandem_protocol::ListDoc::from_automerge(fork);
            doc.validate().map_err(|e| Error::InvalidInput(e.to_string()))?;
            // A fork draws a random actor; edits go on with the device's.
            use_device_actor(&tx, &mut doc)?;
            let stats = documents::replace(&tx, list, &doc.save())?;
            items::replace_all(&tx, list, &doc)?;
            let title = doc.title().map_err(|e| Error::Internal(e.to_string()))?;
            lists::set_title(&tx, list, &title)?;
            tx.commit()?;
            cached.doc = doc;
            cached.generation = stats.generation;
            true
        };
        if changed {
            self.emit(list, ChangeKind::RemoteChanged);
        }
        Ok(changed)
    }

    /// Gives every provisional list an id the server reserved for this user (each one list,
    /// id change and reservation use in one transaction) and emits `IdRemapped` for each.
    /// Lists left provisional (no reserved id left) stay so. Returns `(old, new)` pairs.
    pub fn adopt_provisional_lists(&self) -> Result<Vec<(ListId, ListId)>> {
        let mut done = Vec::new();
        for old in self.provisional_lists()? {
            let new = {
                let mut guard = self.lock();
                let inner = &mut *guard;
                let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let Some(user) = account::get(&tx)?.and_then(|a| a.user_id) else { break };
                let new = loop {
                    match reserved_ids::take(&tx, user)? {
                        Some(id) if lists::exists(&tx, id)? => continue,
                        other => break other,
                    }
                };
                let Some(new) = new else { break };
                lists::change_id(&tx, old, new)?;
                tx.commit()?;
                if let Some(cached) = inner.docs.remove(&old) {
                    inner.docs.insert(new, cached);
                }
                new
            };
            self.emit(new, ChangeKind::IdRemapped { old });
            done.push((old, new));
        }
        Ok(done)
    }

    /// Tells the server about every list deleted here (REST `delete`) and then removes it
    /// from the store. A list the server does not know (never synced) is removed too.
    /// Returns the lists whose deletion failed, with why; they stay pending.
    pub async fn confirm_deletions(&self) -> Result<Vec<(ListId, Error)>> {
        let pending = self.pending_deletions()?;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let token = self.token()?;
        let mut failed = Vec::new();
        for list in pending {
            match self.rest.delete(&token, list).await {
                Ok(()) | Err(Error::NotFound(_)) => self.purge_list(list)?,
                Err(e @ (Error::Offline(_) | Error::Unauthorized(_))) => return Err(e),
                Err(e) => failed.push((list, e)),
            }
        }
        Ok(failed)
    }

    /// Removes a list from the store with no event (its deletion was already announced).
    fn purge_list(&self, list: ListId) -> Result<()> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        lists::purge(&tx, list)?;
        tx.commit()?;
        inner.docs.remove(&list);
        Ok(())
    }

    /// Tells subscribers that the server refused something for `list` (`SyncError`).
    pub fn report_sync_error(&self, list: ListId, code: &str, message: &str) {
        self.emit(
            list,
            ChangeKind::SyncError { code: code.to_owned(), message: message.to_owned() },
        );
    }

    /// The stored bearer token, or `Unauthorized` when signed out.
    pub fn token(&self) -> Result<String> {
        let guard = self.lock();
        account::get(&guard.conn)?
            .and_then(|a| a.token)
            .ok_or_else(|| Error::Unauthorized("not signed in: run login first".into()))
    }

    /// The role this user has on a list here, if the list is visible.
    pub fn role(&self, list: ListId) -> Result<Option<tandem_protocol::Role>> {
        let guard = self.lock();
        Ok(lists::get(&guard.conn, list)?.filter(|r| !r.deleted).map(|r| r.role))
    }
}
