//! The background compactor: folds a list's change chunks into its snapshot off the edit
//! path.
//!
//! Why it exists: compacting saves the whole Automerge document (`ListDoc::save`), which
//! takes milliseconds on a 100-item list and tens of them on a 10,000-item one. Done inline,
//! inside the transaction of the edit that found the chunks piled up, it was the tail of
//! `add_item`'s latency (target: p99 ≤ 2 ms). Now an edit (or a sync merge) commits, and if
//! [`documents::needs_compaction`] says so, only hands the list to this thread
//! ([`Compactor::request`], which never blocks on the work).
//!
//! The thread has its own connection (opened on the first request) and, for each list:
//! 1. in a read transaction, reads the snapshot and the chunks (up to `seq` S) and the
//!    generation G0 ([`documents::read`]), if compaction is still due;
//! 2. with no transaction open, loads that and saves it whole;
//! 3. under the client's store lock, in an IMMEDIATE transaction, writes the new snapshot
//!    and deletes the chunks up to S, but only if every write since the read was an append
//!    ([`documents::compact_through`] has the check). Otherwise the work is dropped: the
//!    list's next append asks again.
//!
//! Step 3 takes the client's mutex so that the client's own writers queue on it (woken at
//! once) rather than in SQLite's busy handler, which sleeps 1, 2, 5... ms between tries.
//! `std`'s mutex is not fair, though: a thread that edits in a loop (or applies a long run of
//! sync messages) takes it again before a waiting compactor wakes up, for as long as the run
//! lasts. So the compactor announces itself first ([`Turn`]), and the client's next callers
//! let it go ahead: it waits for one operation at most. Its connection is opened under the
//! same lock (opening checks the schema in a write transaction).
//!
//! Its commit runs with `synchronous=NORMAL` (no fsync of its own): a compaction changes no
//! content, so losing it to a power cut loses nothing (the chunks it deleted come back with
//! it), and the next commit of a client writer (`synchronous=FULL`) makes the WAL durable up
//! to and including it.
//!
//! Failures are logged and dropped (`tracing::warn!`); the thread never takes the process
//! down. Dropping the [`Compactor`] (with its [`crate::Client`]) closes the queue, lets the
//! thread finish what is queued, and joins it: a process that makes one edit and exits (the
//! CLI) still compacts, and a store reopened in the same directory sees it done.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};
use tandem_protocol::ListId;

use super::Inner;
use crate::Result;
use crate::store::{self, documents};

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The chunks read were folded into a new snapshot.
    Compacted,
    /// Not due any more (another compaction got there first), or nothing to fold.
    NotDue,
    /// The store changed in a way other than appends since the read; nothing written.
    Raced,
    /// The list has no document any more.
    Gone,
}

/// The queue's bookkeeping, shared with the thread.
#[derive(Default)]
struct Queue {
    /// Lists requested and not yet taken up by the thread: a list is queued at most once.
    pending: HashSet<ListId>,
    /// The thread is working on a list.
    busy: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when the thread has nothing pending and is not busy.
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is a set and a flag, consistent after any panic.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Who goes next for the client's store lock: the compactor, when it is waiting for it.
#[derive(Default)]
struct Turn {
    /// The compactor is waiting for the store lock (read without a lock on the fast path).
    wanted: AtomicBool,
    lock: Mutex<()>,
    /// Signalled when `wanted` goes back to false.
    taken: Condvar,
}

impl Turn {
    fn set(&self, wanted: bool) {
        let _guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.wanted.store(wanted, Ordering::Release);
        if !wanted {
            self.taken.notify_all();
        }
    }

    /// Blocks while the compactor is waiting for the store lock.
    fn wait(&self) {
        if !self.wanted.load(Ordering::Acquire) {
            return;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while self.wanted.load(Ordering::Acquire) {
            guard = self.taken.wait(guard).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// The store lock, taken ahead of the client's callers that come after this call.
    fn take<'a>(&self, store: &'a Mutex<Inner>) -> MutexGuard<'a, Inner> {
        self.set(true);
        let guard = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.set(false);
        guard
    }
}

struct Worker {
    requests: Sender<ListId>,
    thread: JoinHandle<()>,
}

/// The background compactor of one [`crate::Client`]; see the module docs.
pub(super) struct Compactor {
    data_dir: PathBuf,
    /// The client's store lock, held for the write transaction.
    store: Arc<Mutex<Inner>>,
    /// Lets the compactor take that lock next when it waits for it.
    turn: Arc<Turn>,
    shared: Arc<Shared>,
    /// Started on the first request (most clients, a read-only CLI call say, never need it).
    worker: Mutex<Option<Worker>>,
}

impl Compactor {
    pub(super) fn new(data_dir: PathBuf, store: Arc<Mutex<Inner>>) -> Self {
        Self {
            data_dir,
            store,
            turn: Arc::default(),
            shared: Arc::default(),
            worker: Mutex::new(None),
        }
    }

    /// Called by the client before it takes its store lock: lets a compactor that is waiting
    /// for the lock go first. One atomic load when none is.
    pub(super) fn wait_turn(&self) {
        self.turn.wait();
    }

    /// Queues `list` for compaction, unless it is queued already. Returns at once: the
    /// caller has committed its write and must not wait for this.
    pub(super) fn request(&self, list: ListId) {
        let mut worker = self.worker.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.shared.lock().pending.insert(list) {
            return;
        }
        if worker.is_none() {
            match self.start() {
                Ok(started) => *worker = Some(started),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the compactor thread");
                    self.forget(list);
                    return;
                }
            }
        }
        let sent = worker.as_ref().is_some_and(|w| w.requests.send(list).is_ok());
        if !sent {
            // The thread is gone (it never panics out of its loop, but be safe).
            tracing::warn!(%list, "the compactor thread is gone; compaction skipped");
            self.forget(list);
        }
    }

    /// Blocks until nothing is queued and the thread is idle.
    pub(super) fn wait_idle(&self) {
        let mut queue = self.shared.lock();
        while queue.busy || !queue.pending.is_empty() {
            queue = self.shared.idle.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn forget(&self, list: ListId) {
        let mut queue = self.shared.lock();
        queue.pending.remove(&list);
        if queue.pending.is_empty() && !queue.busy {
            self.shared.idle.notify_all();
        }
    }

    fn start(&self) -> std::io::Result<Worker> {
        let (requests, received) = mpsc::channel();
        let data_dir = self.data_dir.clone();
        let store = Arc::clone(&self.store);
        let turn = Arc::clone(&self.turn);
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("tandem-compactor".into())
            .spawn(move || run(&data_dir, (&store, &turn), &shared, &received))?;
        Ok(Worker { requests, thread })
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        let worker = self.worker.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(Worker { requests, thread }) = worker {
            drop(requests); // the thread drains what is queued, then its loop ends
            if thread.join().is_err() {
                tracing::warn!("the compactor thread panicked");
            }
        }
    }
}

/// The thread's loop: one list at a time until the queue closes.
fn run(data_dir: &Path, store: Store<'_>, shared: &Shared, received: &Receiver<ListId>) {
    let mut conn: Option<Connection> = None;
    for list in received {
        {
            let mut queue = shared.lock();
            // Taken off the set now: an append during this compaction queues the list again.
            queue.pending.remove(&list);
            queue.busy = true;
        }
        let done = catch_unwind(AssertUnwindSafe(|| {
            let conn = match &mut conn {
                Some(conn) => conn,
                empty => empty.insert(open(data_dir, store)?),
            };
            compact(conn, store, list)
        }));
        match done {
            Ok(Ok(outcome)) => tracing::debug!(%list, ?outcome, "background compaction"),
            Ok(Err(e)) => tracing::warn!(%list, error = %e, "background compaction failed"),
            Err(_) => {
                tracing::warn!(%list, "background compaction panicked; reopening its connection");
                conn = None;
            }
        }
        let mut queue = shared.lock();
        queue.busy = false;
        if queue.pending.is_empty() {
            shared.idle.notify_all();
        }
    }
}

/// The thread's own connection; see the module docs for `synchronous=NORMAL`. Opened under
/// the client's store lock: opening checks the schema version in a write transaction, which
/// would otherwise wait in SQLite's busy handler for a gap between the client's writes.
fn open(data_dir: &Path, (store, turn): Store<'_>) -> Result<Connection> {
    let _store = turn.take(store);
    let conn = store::open(data_dir)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// The client's store lock and the turn to take it.
type Store<'a> = (&'a Mutex<Inner>, &'a Turn);

/// Compacts one list: read, save with no transaction open, write if still safe.
fn compact(conn: &mut Connection, store: Store<'_>, list: ListId) -> Result<Outcome> {
    compact_with(conn, store, list, || ())
}

/// [`compact`], running `meanwhile` between the save and the write (tests race it there).
fn compact_with(
    conn: &mut Connection,
    (store, turn): Store<'_>,
    list: ListId,
    meanwhile: impl FnOnce(),
) -> Result<Outcome> {
    let stored = {
        // Deferred: a read snapshot from the first SELECT, so the snapshot, the chunks and
        // the generation agree. It takes no write lock.
        let tx = conn.transaction()?;
        let Some(stats) = documents::stats(&tx, list)? else { return Ok(Outcome::Gone) };
        if !documents::needs_compaction(&stats) {
            return Ok(Outcome::NotDue);
        }
        let Some(stored) = documents::read(&tx, list)? else { return Ok(Outcome::Gone) };
        tx.commit()?;
        stored
    };
    if stored.through_seq == 0 {
        return Ok(Outcome::NotDue);
    }
    let (generation, through_seq) = (stored.generation, stored.through_seq);
    let snapshot = stored.into_doc(list)?.save();
    meanwhile();

    // The client's writers wait on its mutex while this short transaction runs.
    let _store = turn.take(store);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let written = documents::compact_through(&tx, list, generation, through_seq, &snapshot)?;
    tx.commit()?;
    Ok(if written { Outcome::Compacted } else { Outcome::Raced })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tandem_protocol::{ItemId, ListDoc};

    use super::*;
    use crate::store::items;
    use crate::{Client, ClientConfig};

    impl Client {
        fn store(&self) -> Store<'_> {
            (&self.inner, &self.compactor.turn)
        }
    }

    /// A writer on a connection of its own, as another process would be; it never asks
    /// any compactor, so compactions in these tests run only when a test says so.
    struct Other {
        conn: Connection,
        doc: ListDoc,
        list: ListId,
        next: u64,
    }

    impl Other {
        fn new(dir: &Path, list: ListId) -> Self {
            let conn = store::open(dir).unwrap();
            let (doc, _) = documents::load(&conn, list).unwrap().unwrap();
            Self { conn, doc, list, next: 900_000 }
        }

        /// Appends an item (chunk and row) the way an edit does, in one transaction.
        fn add(&mut self) -> ItemId {
            self.next += 1;
            let id = ItemId(self.next);
            let heads = self.doc.heads();
            self.doc.add_item(id, &format!("other {} {}", self.next, "y".repeat(100))).unwrap();
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
            documents::append(&tx, self.list, &self.doc.save_after(&heads)).unwrap();
            items::refresh(&tx, self.list, &self.doc, &[id]).unwrap();
            tx.commit().unwrap();
            id
        }

        /// Appends until compaction is due.
        fn pile_up(&mut self) {
            while !documents::needs_compaction(&self.stats()) {
                self.add();
            }
        }

        fn stats(&self) -> documents::DocStats {
            documents::stats(&self.conn, self.list).unwrap().unwrap()
        }
    }

    /// A client with a small list, a writer beside it with compaction due, and the
    /// compactor's own connection.
    fn due() -> (tempfile::TempDir, Client, Other, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::open(ClientConfig::new(dir.path())).unwrap();
        let list = client.create_list("Race").unwrap().id;
        for i in 0..3 {
            client.add_item(list, &format!("item {i}")).unwrap();
        }
        let mut other = Other::new(dir.path(), list);
        other.pile_up();
        let conn = open(dir.path(), client.store()).unwrap();
        (dir, client, other, conn)
    }

    /// The items as shown, checked against the stored document.
    fn items_of(client: &Client, list: ListId) -> BTreeMap<ItemId, String> {
        let rows = client.list(list).unwrap().items;
        let doc = ListDoc::load(&client.document_bytes(list).unwrap()).unwrap();
        assert_eq!(doc.items().unwrap(), rows);
        rows.into_iter().map(|i| (i.id, i.content)).collect()
    }

    fn reopened(dir: &tempfile::TempDir, list: ListId) -> BTreeMap<ItemId, String> {
        items_of(&Client::open(ClientConfig::new(dir.path())).unwrap(), list)
    }

    #[test]
    fn appends_during_the_save_are_kept_as_chunks() {
        let (dir, client, mut other, mut conn) = due();
        let list = other.list;
        let before = other.stats();
        let mut added = Vec::new();
        let outcome = compact_with(&mut conn, client.store(), list, || {
            added.extend([other.add(), other.add()])
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Compacted);
        let after = other.stats();
        assert_eq!(after.changes_count, 2, "only the two appends are left as chunks");
        assert_eq!(after.generation, before.generation + 2, "compaction bumps no generation");
        let shown = items_of(&client, list);
        // Three items of the client's and one per chunk piled up (the first three chunks are
        // the client's), and the two added meanwhile.
        assert_eq!(shown.len(), before.changes_count as usize + 2);
        assert!(added.iter().all(|id| shown.contains_key(id)));
        drop(client);
        assert_eq!(reopened(&dir, list), shown);
        // The kept chunks go on: the next append is numbered after them.
        other.add();
        assert_eq!(other.stats().changes_count, 3);
    }

    #[test]
    fn a_synchronous_compaction_during_the_save_wins() {
        let (dir, client, mut other, mut conn) = due();
        let list = other.list;
        let outcome = compact_with(&mut conn, client.store(), list, || {
            client.compact(list).unwrap();
            other.add();
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Raced);
        assert_eq!(other.stats().changes_count, 1, "nothing deleted under the new numbering");
        let shown = items_of(&client, list);
        drop(client);
        assert_eq!(reopened(&dir, list), shown);
    }

    #[test]
    fn a_list_deleted_during_the_save_is_left_alone() {
        let (_dir, client, other, mut conn) = due();
        let list = other.list;
        let outcome =
            compact_with(&mut conn, client.store(), list, || client.forget_list(list).unwrap())
                .unwrap();
        assert_eq!(outcome, Outcome::Raced);
        assert!(documents::stats(&conn, list).unwrap().is_none());
        assert_eq!(compact(&mut conn, client.store(), list).unwrap(), Outcome::Gone);
    }

    #[test]
    fn nothing_is_done_when_compaction_is_not_due() {
        let (_dir, client, other, mut conn) = due();
        let list = other.list;
        client.compact(list).unwrap();
        assert_eq!(compact(&mut conn, client.store(), list).unwrap(), Outcome::NotDue);
    }
}
