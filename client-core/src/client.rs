//! `Client`: the engine's public API. It owns the store connection, keeps the documents it
//! has loaded in memory, runs every edit as one store transaction, and tells subscribers what
//! changed. Local operations are synchronous (a few SQLite statements); calls to the server
//! are `async` and hold no lock while they wait.
//!
//! The methods live in one file per concern: [`lists`](self::lists) and
//! [`items`](self::items) (local, offline), [`account`](self::account) (REST: account and
//! sharing), [`history`](self::history) (REST: a list's verified history),
//! [`sync_support`](self::sync_support) and [`sync_exchange`](self::sync_exchange) (what the
//! sync engine calls). Compaction of the stored documents runs on a thread of the
//! client's own, off the edit path ([`compactor`](self::compactor)).

mod account;
mod compactor;
mod history;
mod items;
mod lists;
mod sync_exchange;
mod sync_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tandem_protocol::automerge::{ActorId, ChangeHash};
use tandem_protocol::{ItemId, ListDoc, ListId, Touched};

pub use account::Account;
pub use sync_exchange::{FrameApplied, SyncReceived};

use crate::events::{ChangeEvent, ChangeKind, Listeners, SubscriptionId};
use crate::rest::RestClient;
use crate::store::documents::{self, DocStats};
use crate::store::{self, account as account_row, lists as list_rows};
use crate::{Error, Result};
use compactor::Compactor;

/// The server URL used when neither the caller nor the store names one.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8080";

/// Where a [`Client`] keeps its data and which server it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The data directory; created if missing. One store per directory.
    pub data_dir: PathBuf,
    /// The server's base URL. `None`: the one the store last signed in to, else
    /// [`DEFAULT_SERVER_URL`].
    pub server_url: Option<String>,
}

impl ClientConfig {
    /// A configuration for `data_dir` with the default server.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into(), server_url: None }
    }

    /// The same configuration with `server_url`.
    pub fn with_server_url(mut self, server_url: impl Into<String>) -> Self {
        self.server_url = Some(server_url.into());
        self
    }
}

/// The client engine for one data directory. `Send + Sync`: share it (e.g. in an `Arc`)
/// between the UI, the sync loop and FFI callers; every call is safe from any thread.
pub struct Client {
    /// The store lock. Shared with the compactor thread, which holds it for its writes.
    inner: Arc<Mutex<Inner>>,
    /// Folds change chunks into snapshots in the background; dropping it joins its thread.
    compactor: Compactor,
    listeners: Listeners,
    rest: RestClient,
    data_dir: PathBuf,
}

/// What the store mutex guards.
struct Inner {
    conn: Connection,
    /// Documents loaded so far, with the store generation they reflect.
    docs: HashMap<ListId, Cached>,
}

struct Cached {
    doc: ListDoc,
    generation: i64,
}

impl Client {
    /// Opens (creating if needed) the store in `config.data_dir`. Works with no network.
    pub fn open(config: ClientConfig) -> Result<Self> {
        let conn = store::open(&config.data_dir)?;
        let stored = store::account::get(&conn)?.map(|a| a.server_url);
        let server_url =
            config.server_url.or(stored).unwrap_or_else(|| DEFAULT_SERVER_URL.to_owned());
        let rest = RestClient::new(&server_url)?;
        let inner = Arc::new(Mutex::new(Inner { conn, docs: HashMap::new() }));
        Ok(Self {
            compactor: Compactor::new(config.data_dir.clone(), Arc::clone(&inner)),
            inner,
            listeners: Listeners::default(),
            rest,
            data_dir: config.data_dir,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's base URL.
    pub fn server_url(&self) -> &str {
        self.rest.base()
    }

    /// Calls `listener` after every committed change, with the list and the kind of change.
    /// See [`crate::events`] for the threading rules.
    pub fn subscribe(
        &self,
        listener: impl Fn(&ChangeEvent) + Send + Sync + 'static,
    ) -> SubscriptionId {
        self.listeners.add(std::sync::Arc::new(listener))
    }

    /// Ends a subscription; returns whether it existed.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.listeners.remove(id)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store half-written (SQLite rolls
        // back the open transaction), and the document cache is checked against the store's
        // generation before use, so a poisoned lock is safe to keep using.
        self.compactor.wait_turn();
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, list_id: ListId, kind: ChangeKind) {
        self.listeners.emit(ChangeEvent { list_id, kind });
    }

    /// After a committed write of `list`'s document: queues the list for the background
    /// compactor if its chunks have piled up. Call it with the store lock released.
    fn compact_if_due(&self, list: ListId, stats: &DocStats) {
        if documents::needs_compaction(stats) {
            self.compactor.request(list);
        }
    }

    /// Blocks until the background compactor has nothing queued and is idle. For tests and
    /// benchmarks: nothing needs compaction to have happened.
    #[doc(hidden)]
    pub fn wait_for_compaction(&self) {
        self.compactor.wait_idle();
    }

    /// Runs one edit of `list`'s document as one store transaction: checks that the list is
    /// visible and editable, applies `edit` (which returns its value and the items it
    /// touched), appends the change, refreshes the touched item rows and the title cache,
    /// and commits. Then queues the list for compaction if due, and emits `kind` if anything
    /// changed.
    fn edit<T>(
        &self,
        list: ListId,
        kind: ChangeKind,
        edit: impl FnOnce(&mut ListDoc) -> Result<(T, Vec<ItemId>)>,
    ) -> Result<T> {
        let (value, written) = {
            let mut guard = self.lock();
            let Inner { conn, docs } = &mut *guard;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = visible_list(&tx, list)?;
            if !row.role.can_edit() {
                return Err(Error::Forbidden(format!(
                    "list {list} is shared with you as {}: it cannot be edited",
                    row.role
                )));
            }
            match write_edit(tx, docs, list, edit) {
                Ok(done) => done,
                Err(e) => {
                    // The in-memory document may hold a change the store does not: drop it,
                    // the next use reloads the committed state.
                    docs.remove(&list);
                    return Err(e);
                }
            }
        };
        if let Some(stats) = written {
            self.compact_if_due(list, &stats);
            self.emit(list, kind);
        }
        Ok(value)
    }
}

/// The body of [`Client::edit`] once the checks passed. Returns the document's new stats, or
/// `None` if the edit changed nothing.
fn write_edit<T>(
    tx: Transaction<'_>,
    docs: &mut HashMap<ListId, Cached>,
    list: ListId,
    edit: impl FnOnce(&mut ListDoc) -> Result<(T, Vec<ItemId>)>,
) -> Result<(T, Option<DocStats>)> {
    let cached = cached_doc(&tx, docs, list)?;
    let heads = cached.doc.heads();
    let (value, touched) = edit(&mut cached.doc)?;
    let chunk = cached.doc.save_after(&heads);
    if chunk.is_empty() {
        return Ok((value, None)); // e.g. the same text again: nothing to store
    }
    let stats = documents::append(&tx, list, &chunk)?;
    store::items::refresh(&tx, list, &cached.doc, &touched)?;
    let title = cached.doc.title().map_err(|e| Error::Internal(e.to_string()))?;
    list_rows::set_title(&tx, list, &title)?;
    tx.commit()?;
    cached.generation = stats.generation;
    Ok((value, Some(stats)))
}

/// Runs `merge` (changes from elsewhere going into `doc`) and returns what it touched, at a
/// cost in proportion to the change (not to the list). The document tracks changes from its
/// first merge on (building its object index once); what local edits touched since the last
/// merge is dropped first, as their rows are already written. Not read when nothing new
/// arrived (most sync messages only acknowledge).
fn merge_tracked(
    doc: &mut ListDoc,
    merge: impl FnOnce(&mut ListDoc) -> Result<()>,
) -> Result<Touched> {
    let before = doc.heads();
    if doc.is_tracking_changes() {
        doc.take_touched();
    } else {
        doc.track_changes();
    }
    let merged = merge(doc);
    let touched = match merged {
        Ok(()) if doc.heads() != before => doc.take_touched(),
        _ => Touched::default(),
    };
    merged.map(|()| touched)
}

/// Stores what a merge brought into `cached.doc` since `before` (its heads then), in the
/// caller's transaction: checks the parts the merge `touched` (the document was valid
/// before), appends the chunk, rewrites the rows of the touched items (every row if the
/// merge changed the document's top level) and the title. Returns the new stats, or `None`
/// if nothing new arrived. An invalid result is `InvalidInput`; the caller must then drop
/// `cached` (the document in memory holds the refused changes) and not commit.
fn write_merge(
    tx: &Transaction<'_>,
    list: ListId,
    cached: &mut Cached,
    before: &[ChangeHash],
    touched: &Touched,
) -> Result<Option<DocStats>> {
    let chunk = cached.doc.save_after(before);
    if chunk.is_empty() {
        return Ok(None);
    }
    cached.doc.validate_touched(touched).map_err(|e| {
        Error::InvalidInput(format!("list {list}: the changes make a malformed list: {e}"))
    })?;
    let stats = documents::append(tx, list, &chunk)?;
    let ids: Option<Vec<ItemId>> = if touched.structure {
        None
    } else {
        // validate_touched read every key as an item id; a key that is not one (it cannot
        // get here) costs a full rewrite, not a wrong row.
        touched.item_keys.iter().map(|key| key.parse().ok().map(ItemId)).collect()
    };
    match ids {
        Some(ids) => store::items::refresh(tx, list, &cached.doc, &ids)?,
        None => store::items::replace_all(tx, list, &cached.doc)?,
    }
    let title = cached.doc.title().map_err(|e| Error::Internal(e.to_string()))?;
    list_rows::set_title(tx, list, &title)?;
    Ok(Some(stats))
}

/// The list's metadata, or `NotFound` if it is unknown or deleted.
fn visible_list(conn: &Connection, list: ListId) -> Result<list_rows::ListRow> {
    match list_rows::get(conn, list)? {
        Some(row) if !row.deleted => Ok(row),
        _ => Err(Error::NotFound(format!("no list {list}"))),
    }
}

/// The list's document, from memory when the store has not changed it since, else loaded.
fn cached_doc<'a>(
    conn: &Connection,
    docs: &'a mut HashMap<ListId, Cached>,
    list: ListId,
) -> Result<&'a mut Cached> {
    let stats = documents::stats(conn, list)?
        .ok_or_else(|| Error::Storage(format!("list {list} has no stored document")))?;
    let fresh = docs.get(&list).is_some_and(|c| c.generation == stats.generation);
    if !fresh {
        let (mut doc, generation) = documents::load(conn, list)?
            .ok_or_else(|| Error::Storage(format!("list {list} has no stored document")))?;
        use_device_actor(conn, &mut doc)?;
        docs.insert(list, Cached { doc, generation });
    }
    Ok(docs.get_mut(&list).expect("inserted above"))
}

/// Makes `doc`'s next changes with this device's actor, once someone signed in here (before
/// that, each loaded document keeps the random actor Automerge gave it). Call it on every
/// document loaded, created or rebuilt before editing it: one actor per user per device is
/// what the server binds to the user (see `store::account`).
///
/// Safe to share across loads and processes: a document is only edited after it was
/// checked against the store's generation (reloaded if another process wrote), so the
/// actor's next sequence number always follows the last change stored with it.
fn use_device_actor(conn: &Connection, doc: &mut ListDoc) -> Result<()> {
    if let Some(actor) = account_row::device_actor(conn)? {
        doc.automerge_mut().set_actor(ActorId::from(actor));
    }
    Ok(())
}
