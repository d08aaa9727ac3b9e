//! The `documents` and `document_changes` tables: each list's Automerge document as a
//! compacted snapshot plus the change chunks appended since.
//!
//! An edit appends one chunk (a few hundred bytes) instead of rewriting the document.
//! [`needs_compaction`] decides when the chunks have piled up: once there are at least
//! [`MIN_CHUNKS_TO_COMPACT`] chunks and they weigh as much as the snapshot (so compaction
//! costs O(1) amortised per edit), or once there are [`MAX_CHUNKS`] of them (so loading stays
//! quick).

use rusqlite::{Connection, OptionalExtension, params};
use tandem_protocol::{ListDoc, ListId};

use crate::Error;

/// Compact no sooner than this many chunks.
pub const MIN_CHUNKS_TO_COMPACT: i64 = 32;
/// Compact at the latest at this many chunks.
pub const MAX_CHUNKS: i64 = 1024;

/// Sizes that drive compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocStats {
    /// Bytes of the snapshot.
    pub snapshot_bytes: i64,
    /// Chunks appended since the snapshot.
    pub changes_count: i64,
    /// Their total bytes.
    pub changes_bytes: i64,
    /// Grows with every write; see the store's concurrency contract.
    pub generation: i64,
}

/// Stores a new document for a list that has none.
pub fn insert(conn: &Connection, list: ListId, snapshot: &[u8]) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO documents (list_id, snapshot, snapshot_bytes) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![list.as_i64(), snapshot, snapshot.len() as i64])?;
    Ok(())
}

/// The document's sizes and generation, if the list has a document.
pub fn stats(conn: &Connection, list: ListId) -> Result<Option<DocStats>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT snapshot_bytes, changes_count, changes_bytes, generation
             FROM documents WHERE list_id = ?1",
        )?
        .query_row([list.as_i64()], doc_stats)
        .optional()?)
}

/// Loads the document: the snapshot, then every chunk in order. Returns it with its
/// generation, or `None` if the list has no document.
pub fn load(conn: &Connection, list: ListId) -> Result<Option<(ListDoc, i64)>, Error> {
    let Some((snapshot, generation)) = conn
        .prepare_cached("SELECT snapshot, generation FROM documents WHERE list_id = ?1")?
        .query_row([list.as_i64()], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let corrupt = |e: tandem_protocol::list_doc::LoadError| {
        Error::Storage(format!("the stored document of list {list} is unreadable: {e}"))
    };
    let mut doc = if snapshot.is_empty() {
        ListDoc::empty()
    } else {
        ListDoc::load(&snapshot).map_err(corrupt)?
    };
    let mut changes = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM document_changes WHERE list_id = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([list.as_i64()])?;
    while let Some(row) = rows.next()? {
        changes.extend_from_slice(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?);
    }
    if !changes.is_empty() {
        doc.load_incremental(&changes).map_err(corrupt)?;
    }
    Ok(Some((doc, generation)))
}

/// Appends one chunk of changes and returns the new stats (generation bumped).
pub fn append(conn: &Connection, list: ListId, chunk: &[u8]) -> Result<DocStats, Error> {
    conn.prepare_cached(
        "INSERT INTO document_changes (list_id, seq, bytes)
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM document_changes
                      WHERE list_id = ?1), ?2)",
    )?
    .execute(params![list.as_i64(), chunk])?;
    let stats = conn
        .prepare_cached(
            "UPDATE documents SET changes_count = changes_count + 1,
                 changes_bytes = changes_bytes + ?2, generation = generation + 1
             WHERE list_id = ?1
             RETURNING snapshot_bytes, changes_count, changes_bytes, generation",
        )?
        .query_row(params![list.as_i64(), chunk.len() as i64], doc_stats)
        .optional()?;
    stats.ok_or_else(|| Error::Storage(format!("list {list} has no stored document")))
}

/// Reads `snapshot_bytes, changes_count, changes_bytes, generation` (as `RETURNING` gives them).
fn doc_stats(r: &rusqlite::Row<'_>) -> rusqlite::Result<DocStats> {
    Ok(DocStats {
        snapshot_bytes: r.get(0)?,
        changes_count: r.get(1)?,
        changes_bytes: r.get(2)?,
        generation: r.get(3)?,
    })
}

/// Whether the chunks have piled up enough to be folded into the snapshot.
pub fn needs_compaction(stats: &DocStats) -> bool {
    stats.changes_count >= MAX_CHUNKS
        || (stats.changes_count >= MIN_CHUNKS_TO_COMPACT
            && stats.changes_bytes >= stats.snapshot_bytes)
}

/// Replaces the snapshot with `snapshot` (the whole document, saved) and drops the chunks.
/// The content does not change, so the generation stays.
pub fn compact(conn: &Connection, list: ListId, snapshot: &[u8]) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM document_changes WHERE list_id = ?1")?
        .execute([list.as_i64()])?;
    conn.prepare_cached(
        "UPDATE documents SET snapshot = ?2, snapshot_bytes = ?3, changes_count = 0,
             changes_bytes = 0
         WHERE list_id = ?1",
    )?
    .execute(params![list.as_i64(), snapshot, snapshot.len() as i64])?;
    Ok(())
}

/// Replaces the whole document with `snapshot` (different content: some changes were
/// dropped) and bumps the generation so that other processes reload it.
pub fn replace(conn: &Connection, list: ListId, snapshot: &[u8]) -> Result<DocStats, Error> {
    compact(conn, list, snapshot)?;
    let stats = conn
        .prepare_cached(
            "UPDATE documents SET generation = generation + 1 WHERE list_id = ?1
             RETURNING snapshot_bytes, changes_count, changes_bytes, generation",
        )?
        .query_row([list.as_i64()], doc_stats)
        .optional()?;
    stats.ok_or_else(|| Error::Storage(format!("list {list} has no stored document")))
}
