//! The `lists` table: per-list metadata (role, cached title, provisional and deleted flags).

use rusqlite::{Connection, OptionalExtension, Row, params};
use tandem_protocol::{ListId, Role};

use super::now_ms;
use crate::Error;

/// One list's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    /// The list.
    pub id: ListId,
    /// The title, as of the last write of the document.
    pub title: String,
    /// This user's role on the list.
    pub role: Role,
    /// The id was drawn on this device and may still be remapped by the server.
    pub provisional: bool,
    /// Deleted here, not yet confirmed by the server.
    pub deleted: bool,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<ListRow> {
    let role: i64 = r.get(2)?;
    Ok(ListRow {
        id: ListId(r.get::<_, i64>(0)? as u64),
        title: r.get(1)?,
        role: Role::from_code(role).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Integer, e.into())
        })?,
        provisional: r.get(3)?,
        deleted: r.get(4)?,
    })
}

const COLUMNS: &str = "list_id, title, role, provisional, deleted";

/// The metadata of `id`, deleted or not.
pub fn get(conn: &Connection, id: ListId) -> Result<Option<ListRow>, Error> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM lists WHERE list_id = ?1"))?
        .query_row([id.as_i64()], from_row)
        .optional()?)
}

/// Whether any row (deleted or not) uses `id`.
pub fn exists(conn: &Connection, id: ListId) -> Result<bool, Error> {
    Ok(get(conn, id)?.is_some())
}

/// Every list not deleted, in the order they were created.
pub fn all_visible(conn: &Connection) -> Result<Vec<ListRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM lists WHERE deleted = 0 ORDER BY created_at, list_id"
    ))?;
    let rows = stmt.query_map([], from_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Every list id the store holds, deleted ones included.
pub fn all_ids(conn: &Connection) -> Result<Vec<ListId>, Error> {
    let mut stmt = conn.prepare_cached("SELECT list_id FROM lists ORDER BY list_id")?;
    let ids = stmt.query_map([], |r| r.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(ids.into_iter().map(|id| ListId(id as u64)).collect())
}

/// Adds a list's metadata.
pub fn insert(conn: &Connection, row: &ListRow) -> Result<(), Error> {
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO lists (list_id, title, role, provisional, deleted, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![
        row.id.as_i64(),
        row.title,
        row.role.code(),
        row.provisional,
        row.deleted,
        now
    ])?;
    Ok(())
}

/// Stores the title cache and the time of the change.
pub fn set_title(conn: &Connection, id: ListId, title: &str) -> Result<(), Error> {
    conn.prepare_cached("UPDATE lists SET title = ?2, updated_at = ?3 WHERE list_id = ?1")?
        .execute(params![id.as_i64(), title, now_ms()])?;
    Ok(())
}

/// Records that the list changed now.
pub fn touch(conn: &Connection, id: ListId) -> Result<(), Error> {
    conn.prepare_cached("UPDATE lists SET updated_at = ?2 WHERE list_id = ?1")?
        .execute(params![id.as_i64(), now_ms()])?;
    Ok(())
}

/// Changes this user's role on the list.
pub fn set_role(conn: &Connection, id: ListId, role: Role) -> Result<(), Error> {
    conn.prepare_cached("UPDATE lists SET role = ?2 WHERE list_id = ?1")?
        .execute(params![id.as_i64(), role.code()])?;
    Ok(())
}

/// Marks the list deleted (hidden, waiting for the server to confirm).
pub fn mark_deleted(conn: &Connection, id: ListId) -> Result<(), Error> {
    conn.prepare_cached("UPDATE lists SET deleted = 1, updated_at = ?2 WHERE list_id = ?1")?
        .execute(params![id.as_i64(), now_ms()])?;
    Ok(())
}

/// Removes the list and, through the foreign keys, its document, items and sync state.
pub fn purge(conn: &Connection, id: ListId) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM lists WHERE list_id = ?1")?.execute([id.as_i64()])?;
    Ok(())
}

/// Changes a list's id; the foreign keys carry the change to every other table. The new id
/// is no longer provisional.
pub fn change_id(conn: &Connection, old: ListId, new: ListId) -> Result<(), Error> {
    conn.prepare_cached("UPDATE lists SET list_id = ?2, provisional = 0 WHERE list_id = ?1")?
        .execute(params![old.as_i64(), new.as_i64()])?;
    Ok(())
}
