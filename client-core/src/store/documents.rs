//! The `documents` and `document_changes` tables: each list's Automerge document as a
//! compacted snapshot plus the change chunks appended since.
//!
//! An edit appends one chunk (a few hundred bytes) instead of rewriting the document.
//! [`needs_compaction`] decides when the chunks have piled up: once there are at least
//! [`MIN_CHUNKS_TO_COMPACT`] chunks and they weigh as much as the snapshot (so compaction
//! costs O(1) amortised per edit), or once there are [`MAX_CHUNKS`] of them (so loading stays
//! quick).
//!
//! Two ways to compact: [`compact`] folds everything in the caller's transaction (it needs
//! the whole document saved, which the caller holds); [`compact_through`] is the background
//! compactor's, which saved the document from an earlier read ([`read`]) and folds only the
//! chunks that read saw, if the store changed since in no other way than by appends.
//!
//! Generations: a new document starts at a random generation (see [`insert`]), so that a
//! list purged and tracked again under the same id does not repeat a generation that a
//! cached copy or a compaction in flight saw for the old document.

use rand::Rng as _;
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

/// Where a new document's generation starts, at random below this (2^40: far from
/// overflowing, with room for a trillion writes).
const GENERATION_START_RANGE: i64 = 1 << 40;

/// Stores a new document for a list that has none, and returns its generation (random, see
/// the module docs).
pub fn insert(conn: &Connection, list: ListId, snapshot: &[u8]) -> Result<i64, Error> {
    let generation = rand::thread_rng().gen_range(1..GENERATION_START_RANGE);
    conn.prepare_cached(
        "INSERT INTO documents (list_id, snapshot, snapshot_bytes, generation)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![list.as_i64(), snapshot, snapshot.len() as i64, generation])?;
    Ok(generation)
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

/// A document as stored: the snapshot and the chunks after it, read in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    /// The compacted snapshot (empty for a replica not yet filled by sync).
    pub snapshot: Vec<u8>,
    /// Every chunk, concatenated in `seq` order (what `load_incremental` reads).
    pub changes: Vec<u8>,
    /// The highest `seq` among them; 0 when there are none.
    pub through_seq: i64,
    /// The generation read with them.
    pub generation: i64,
}

impl StoredDoc {
    /// The document these bytes hold.
    pub fn into_doc(self, list: ListId) -> Result<ListDoc, Error> {
        let corrupt = |e: tandem_protocol::list_doc::LoadError| {
            Error::Storage(format!("the stored document of list {list} is unreadable: {e}"))
        };
        let mut doc = if self.snapshot.is_empty() {
            ListDoc::empty()
        } else {
            ListDoc::load(&self.snapshot).map_err(corrupt)?
        };
        if !self.changes.is_empty() {
            doc.load_incremental(&self.changes).map_err(corrupt)?;
        }
        Ok(doc)
    }
}

/// Reads the stored document (call it in a transaction, so that the snapshot and the chunks
/// agree), or `None` if the list has no document.
pub fn read(conn: &Connection, list: ListId) -> Result<Option<StoredDoc>, Error> {
    let Some((snapshot, generation)) = conn
        .prepare_cached("SELECT snapshot, generation FROM documents WHERE list_id = ?1")?
        .query_row([list.as_i64()], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let mut changes = Vec::new();
    let mut through_seq = 0;
    let mut stmt = conn.prepare_cached(
        "SELECT seq, bytes FROM document_changes WHERE list_id = ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([list.as_i64()])?;
    while let Some(row) = rows.next()? {
        through_seq = row.get(0)?;
        changes.extend_from_slice(row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?);
    }
    Ok(Some(StoredDoc { snapshot, changes, through_seq, generation }))
}

/// Loads the document: the snapshot, then every chunk in order. Returns it with its
/// generation, or `None` if the list has no document.
pub fn load(conn: &Connection, list: ListId) -> Result<Option<(ListDoc, i64)>, Error> {
    let Some(stored) = read(conn, list)? else { return Ok(None) };
    let generation = stored.generation;
    Ok(Some((stored.into_doc(list)?, generation)))
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

/// The background compactor's write: `snapshot` is the document as [`read`] found it at
/// `read_generation`, with chunks up to `through_seq`. Folds those chunks into it, keeps the
/// ones appended since, and returns `true`; or writes nothing and returns `false` when the
/// store changed since the read in any other way than appends.
///
/// The check: every write that bumps the generation is an append of one chunk with a `seq`
/// above all others, or a [`replace`] (which deletes the chunks). A synchronous [`compact`]
/// deletes every chunk, so later appends restart at `seq` 1. So "the generation grew by
/// exactly the number of chunks above `through_seq`" holds iff every write since the read
/// was an append after the chunks read (or a compaction to the same content with none).
/// Then snapshot + the remaining chunks hold exactly what the store holds now, and the
/// generation stays. Call it in an IMMEDIATE transaction.
pub fn compact_through(
    conn: &Connection,
    list: ListId,
    read_generation: i64,
    through_seq: i64,
    snapshot: &[u8],
) -> Result<bool, Error> {
    let Some(generation) = conn
        .prepare_cached("SELECT generation FROM documents WHERE list_id = ?1")?
        .query_row([list.as_i64()], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(false); // the list went away (deleted, or its id remapped)
    };
    // Chunks appended since the read.
    let appended: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM document_changes WHERE list_id = ?1 AND seq > ?2")?
        .query_row(params![list.as_i64(), through_seq], |r| r.get(0))?;
    if generation - read_generation != appended {
        return Ok(false);
    }
    conn.prepare_cached("DELETE FROM document_changes WHERE list_id = ?1 AND seq <= ?2")?
        .execute(params![list.as_i64(), through_seq])?;
    // The counters describe the chunks left (those appended since the read).
    conn.prepare_cached(
        "UPDATE documents SET snapshot = ?2, snapshot_bytes = ?3,
             changes_count = (SELECT COUNT(*) FROM document_changes WHERE list_id = ?1),
             changes_bytes = (SELECT COALESCE(SUM(LENGTH(bytes)), 0) FROM document_changes
                              WHERE list_id = ?1)
         WHERE list_id = ?1",
    )?
    .execute(params![list.as_i64(), snapshot, snapshot.len() as i64])?;
    Ok(true)
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

#[cfg(test)]
mod tests {
    use tandem_protocol::{ItemId, Role};

    use super::*;
    use crate::store::{self, lists};

    /// A store with one list whose document has `chunks` appended edits.
    fn store_with_chunks(chunks: u64) -> (tempfile::TempDir, Connection, ListId, ListDoc) {
        let dir = tempfile::tempdir().unwrap();
        let conn = store::open(dir.path()).unwrap();
        let list = ListId(7);
        let row = lists::ListRow {
            id: list,
            title: "t".into(),
            role: Role::Owner,
            provisional: false,
            deleted: false,
        };
        lists::insert(&conn, &row).unwrap();
        let mut doc = ListDoc::new("t").unwrap();
        insert(&conn, list, &doc.save()).unwrap();
        for i in 1..=chunks {
            add(&conn, list, &mut doc, i);
        }
        (dir, conn, list, doc)
    }

    fn add(conn: &Connection, list: ListId, doc: &mut ListDoc, id: u64) {
        let heads = doc.heads();
        doc.add_item(ItemId(id), &format!("item {id}")).unwrap();
        append(conn, list, &doc.save_after(&heads)).unwrap();
    }

    /// What the store holds, loaded, and whether the counters match the chunk rows.
    fn check(conn: &Connection, list: ListId, expected: &mut ListDoc) -> DocStats {
        let (mut stored, _) = load(conn, list).unwrap().unwrap();
        assert_eq!(stored.items().unwrap(), expected.items().unwrap());
        assert_eq!(stored.heads(), expected.heads());
        let stats = stats(conn, list).unwrap().unwrap();
        let (count, bytes): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(bytes)), 0) FROM document_changes
                 WHERE list_id = ?1",
                [list.as_i64()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((stats.changes_count, stats.changes_bytes), (count, bytes));
        stats
    }

    fn saved(stored: StoredDoc, list: ListId) -> (i64, i64, Vec<u8>) {
        let (generation, through) = (stored.generation, stored.through_seq);
        (generation, through, stored.into_doc(list).unwrap().save())
    }

    #[test]
    fn compact_through_keeps_chunks_appended_after_the_read() {
        let (_dir, conn, list, mut doc) = store_with_chunks(5);
        let (generation, through, snapshot) = saved(read(&conn, list).unwrap().unwrap(), list);
        assert_eq!(through, 5);
        add(&conn, list, &mut doc, 6);
        add(&conn, list, &mut doc, 7);
        assert!(compact_through(&conn, list, generation, through, &snapshot).unwrap());
        let stats = check(&conn, list, &mut doc);
        assert_eq!(stats.changes_count, 2, "the two appends stay as chunks");
        assert_eq!(stats.generation, generation + 2, "the content did not change");
        // And appends go on after the kept chunks.
        add(&conn, list, &mut doc, 8);
        assert_eq!(check(&conn, list, &mut doc).changes_count, 3);
    }

    #[test]
    fn compact_through_skips_after_a_synchronous_compaction() {
        let (_dir, conn, list, mut doc) = store_with_chunks(5);
        let (generation, through, snapshot) = saved(read(&conn, list).unwrap().unwrap(), list);
        compact(&conn, list, &doc.save()).unwrap();
        // Numbering restarts at 1: these chunks have seq <= `through`.
        add(&conn, list, &mut doc, 6);
        add(&conn, list, &mut doc, 7);
        assert!(!compact_through(&conn, list, generation, through, &snapshot).unwrap());
        check(&conn, list, &mut doc);
        // More appends than the read saw chunks: still refused.
        for i in 8..=14 {
            add(&conn, list, &mut doc, i);
        }
        assert!(!compact_through(&conn, list, generation, through, &snapshot).unwrap());
        check(&conn, list, &mut doc);
    }

    #[test]
    fn compact_through_after_a_compaction_to_the_same_content_writes_the_same() {
        let (_dir, conn, list, mut doc) = store_with_chunks(5);
        let (generation, through, snapshot) = saved(read(&conn, list).unwrap().unwrap(), list);
        compact(&conn, list, &doc.save()).unwrap();
        assert!(compact_through(&conn, list, generation, through, &snapshot).unwrap());
        assert_eq!(check(&conn, list, &mut doc).changes_count, 0);
    }

    #[test]
    fn compact_through_skips_after_a_replace_or_a_purge() {
        let (_dir, conn, list, _doc) = store_with_chunks(5);
        let (generation, through, snapshot) = saved(read(&conn, list).unwrap().unwrap(), list);
        let mut older = ListDoc::new("other").unwrap();
        replace(&conn, list, &older.save()).unwrap();
        assert!(!compact_through(&conn, list, generation, through, &snapshot).unwrap());
        check(&conn, list, &mut older);
        lists::purge(&conn, list).unwrap();
        assert!(!compact_through(&conn, list, generation, through, &snapshot).unwrap());
    }

    #[test]
    fn a_document_tracked_again_does_not_repeat_generations() {
        let (_dir, conn, list, _doc) = store_with_chunks(0);
        let first = stats(&conn, list).unwrap().unwrap().generation;
        let row = lists::get(&conn, list).unwrap().unwrap();
        lists::purge(&conn, list).unwrap();
        lists::insert(&conn, &row).unwrap();
        let second = insert(&conn, list, &[]).unwrap();
        assert_ne!(first, second);
    }
}
