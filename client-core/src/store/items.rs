//! The `items` table: each list's items as its document shows them, kept in the same
//! transaction as every document write. Reading a list is one indexed query; Automerge is
//! only loaded to edit. The document stays the source of truth: [`replace_all`] rebuilds a
//! list's rows from it (after remote changes or a repair).

use rusqlite::{Connection, params};
use tandem_protocol::{Item, ItemId, ListDoc, ListId};

use crate::Error;

/// The list's items in display order: by sort_rank, ties broken by item id.
pub fn in_order(conn: &Connection, list: ListId) -> Result<Vec<Item>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT item_id, content, done, sort_rank FROM items
         WHERE list_id = ?1 ORDER BY sort_rank, item_id",
    )?;
    let items = stmt
        .query_map([list.as_i64()], |r| {
            Ok(Item {
                id: ItemId(r.get::<_, i64>(0)? as u64),
                content: r.get(1)?,
                done: r.get(2)?,
                sort_rank: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(items)
}

/// Writes the rows of `ids` as `doc` has them now: updated if present, deleted if not.
pub fn refresh(
    conn: &Connection,
    list: ListId,
    doc: &ListDoc,
    ids: &[ItemId],
) -> Result<(), Error> {
    for &id in ids {
        match doc.item(id).map_err(|e| Error::Internal(e.to_string()))? {
            Some(item) => upsert(conn, list, &item)?,
            None => {
                conn.prepare_cached("DELETE FROM items WHERE list_id = ?1 AND item_id = ?2")?
                    .execute(params![list.as_i64(), id.as_i64()])?;
            }
        }
    }
    Ok(())
}

/// Replaces every row of the list with the document's items.
pub fn replace_all(conn: &Connection, list: ListId, doc: &ListDoc) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM items WHERE list_id = ?1")?.execute([list.as_i64()])?;
    // An empty replica (not yet filled by sync) has no items.
    if let Ok(items) = doc.items() {
        for item in items {
            upsert(conn, list, &item)?;
        }
    }
    Ok(())
}

fn upsert(conn: &Connection, list: ListId, item: &Item) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO items (list_id, item_id, content, done, sort_rank)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (list_id, item_id) DO UPDATE SET content = excluded.content,
             done = excluded.done, sort_rank = excluded.sort_rank",
    )?
    .execute(params![
        list.as_i64(),
        item.id.as_i64(),
        item.content,
        item.done,
        item.sort_rank
    ])?;
    Ok(())
}
