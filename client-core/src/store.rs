//! `Store`: the client's SQLite database (rusqlite, WAL) holding every list the device knows.
//!
//! Layout: one file `tandem.db` in the data directory; the schema is the numbered `.sql`
//! files in `client-core/migrations/`, applied by [`migrations`]. One module per table group:
//! [`account`], [`lists`] (metadata), [`documents`] (Automerge snapshot + change chunks),
//! [`items`] (the items as displayed, derived from the documents), [`reserved_ids`] and
//! [`sync_states`].
//!
//! # Durability
//! The database runs in WAL mode with `synchronous=FULL`: a transaction that returned from
//! `COMMIT` is on disk, and a process killed at any instant leaves the last committed state.
//! Every user edit is exactly one transaction (document chunk, derived rows and metadata
//! together), so a crash never leaves half an edit.
//!
//! # Concurrency contract
//! - Within one process, share one [`crate::Client`]; it serialises all store access behind
//!   one mutex. The functions of this module take a `&Connection` and do no locking of their
//!   own: callers hold that mutex and, for writes, a transaction. One exception: the
//!   client's background compactor has a connection of its own; it reads a document with no
//!   lock (WAL readers block no one) and holds the client's mutex for its one short write
//!   transaction, which writes only if the document changed by appends alone since the read
//!   (see [`documents::compact_through`]).
//! - Several processes (say `tandem watch` and `tandem add` in two terminals) may open the
//!   same data directory. Every write starts with `BEGIN IMMEDIATE`, so writers queue on
//!   SQLite's lock (with a busy timeout of [`BUSY_TIMEOUT`]) instead of failing midway, and
//!   every document carries a `generation` that a process compares before reusing the copy it
//!   holds in memory, so it never writes on top of a stale document.

pub mod account;
pub mod documents;
pub mod items;
pub mod lists;
pub mod migrations;
pub mod reserved_ids;
pub mod sync_states;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use crate::Error;

/// The database file inside the data directory.
pub const DB_FILE: &str = "tandem.db";

/// How long a write waits for another process's write to finish before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating if needed) the store in `data_dir` and brings its schema up to date.
pub fn open(data_dir: &Path) -> Result<Connection, Error> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        Error::Storage(format!("cannot create data directory {}: {e}", data_dir.display()))
    })?;
    let path = data_dir.join(DB_FILE);
    let mut conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::Storage(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer; FULL: a commit is durable once it returns.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Storage(format!(
            "cannot switch {} to WAL (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrations::apply(&mut conn)?;
    Ok(conn)
}

/// Now, in Unix milliseconds, as stored in the `*_at` columns.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
