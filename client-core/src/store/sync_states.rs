//! The `sync_states` table: per list, the encoded automerge `sync::State` for the server
//! peer and the heads the server last advertised. The sync engine reads it when it
//! (re)connects, so that only missing changes travel, and compares the advertised heads with
//! the document's to tell whether a list is in step.

use rusqlite::{Connection, OptionalExtension, params};
use tandem_protocol::ListId;
use tandem_protocol::automerge::ChangeHash;

use crate::Error;

/// One list's sync state with the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStateRow {
    /// `automerge::sync::State::encode()` output.
    pub state: Vec<u8>,
    /// The heads the server last advertised for this list.
    pub server_heads: Vec<ChangeHash>,
}

/// The stored state, if any.
pub fn get(conn: &Connection, list: ListId) -> Result<Option<SyncStateRow>, Error> {
    let row: Option<(Vec<u8>, Vec<u8>)> = conn
        .prepare_cached("SELECT state, server_heads FROM sync_states WHERE list_id = ?1")?
        .query_row([list.as_i64()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((state, heads)) = row else { return Ok(None) };
    if !heads.len().is_multiple_of(32) {
        return Err(Error::Storage(format!("corrupt server heads for list {list}")));
    }
    let server_heads = heads
        .chunks(32)
        .map(|h| ChangeHash::try_from(h).map_err(|e| Error::Storage(e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(Some(SyncStateRow { state, server_heads }))
}

/// Stores the state (in the caller's transaction, with the document write it goes with).
pub fn put(conn: &Connection, list: ListId, row: &SyncStateRow) -> Result<(), Error> {
    let heads: Vec<u8> = row.server_heads.iter().flat_map(|h| h.0).collect();
    conn.prepare_cached(
        "INSERT INTO sync_states (list_id, state, server_heads) VALUES (?1, ?2, ?3)
         ON CONFLICT (list_id) DO UPDATE SET state = excluded.state,
             server_heads = excluded.server_heads",
    )?
    .execute(params![list.as_i64(), row.state, heads])?;
    Ok(())
}
