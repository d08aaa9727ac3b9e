//! The `reserved_ids` table: list ids the server reserved for this user (hi/lo), so that a
//! list created offline keeps its id after the first sync.

use rusqlite::{Connection, OptionalExtension, params};
use tandem_protocol::{ListId, UserId};

use crate::Error;

/// Takes (removes and returns) the smallest id reserved for `user`.
pub fn take(conn: &Connection, user: UserId) -> Result<Option<ListId>, Error> {
    let id: Option<i64> = conn
        .prepare_cached(
            "DELETE FROM reserved_ids WHERE list_id =
                 (SELECT MIN(list_id) FROM reserved_ids WHERE user_id = ?1)
             RETURNING list_id",
        )?
        .query_row([user.as_i64()], |r| r.get(0))
        .optional()?;
    Ok(id.map(|id| ListId(id as u64)))
}

/// Adds ids reserved for `user`; ids already known are ignored.
pub fn add(conn: &Connection, user: UserId, ids: &[ListId]) -> Result<(), Error> {
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO reserved_ids (list_id, user_id) VALUES (?1, ?2)")?;
    for id in ids {
        stmt.execute(params![id.as_i64(), user.as_i64()])?;
    }
    Ok(())
}

/// How many ids are reserved for `user`.
pub fn count(conn: &Connection, user: UserId) -> Result<usize, Error> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM reserved_ids WHERE user_id = ?1")?
        .query_row([user.as_i64()], |r| r.get(0))?;
    Ok(n as usize)
}

/// Whether `id` is reserved (for anyone), so that a provisional id never takes it.
pub fn contains(conn: &Connection, id: ListId) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM reserved_ids WHERE list_id = ?1")?
        .query_row([id.as_i64()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Drops the ids of every user but `user` (after a different user signs in).
pub fn keep_only(conn: &Connection, user: UserId) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM reserved_ids WHERE user_id <> ?1")?
        .execute([user.as_i64()])?;
    Ok(())
}
