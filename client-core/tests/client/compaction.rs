//! Background compaction: edits that pile up chunks get them folded into the snapshot by the
//! client's compactor thread, and nothing is lost, also when edits from other threads and
//! another client on the same store race with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tandem_client::store::documents::{self, MIN_CHUNKS_TO_COMPACT};
use tandem_client::{Client, ClientConfig, ItemId, ListId};
use tandem_protocol::ListDoc;

use super::{fresh, reopen};

/// How many chunk rows the list has (checking that the document's counters agree), and
/// whether compaction is still due.
fn chunk_rows(dir: &Path, list: ListId) -> (i64, bool) {
    let conn = rusqlite::Connection::open(dir.join("tandem.db")).unwrap();
    let (rows, bytes): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(bytes)), 0) FROM document_changes
             WHERE list_id = ?1",
            [list.as_i64()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (count, counted_bytes): (i64, i64) = conn
        .query_row(
            "SELECT changes_count, changes_bytes FROM documents WHERE list_id = ?1",
            [list.as_i64()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((count, counted_bytes), (rows, bytes), "the counters describe the chunks");
    let stats = documents::stats(&conn, list).unwrap().unwrap();
    (rows, documents::needs_compaction(&stats))
}

/// The items the client shows, checked against its stored document.
fn shown(client: &Client, list: ListId) -> BTreeMap<ItemId, String> {
    let rows = client.list(list).unwrap().items;
    let doc = ListDoc::load(&client.document_bytes(list).unwrap()).unwrap();
    assert_eq!(doc.items().unwrap(), rows, "the rows agree with the document");
    rows.into_iter().map(|i| (i.id, i.content)).collect()
}

#[test]
fn edits_get_compacted_in_the_background_and_all_survive_reopening() {
    let (dir, client) = fresh();
    let list = client.create_list("Compact me").unwrap().id;
    let mut expected = BTreeMap::new();
    for i in 0..200 {
        let id = client.add_item(list, &format!("item {i}")).unwrap();
        expected.insert(id, format!("item {i}"));
    }
    client.wait_for_compaction();
    let (rows, due) = chunk_rows(dir.path(), list);
    assert!(rows < 200, "200 edits and still {rows} chunks: nothing was compacted");
    assert!(!due, "{rows} chunks left and compaction still due");
    assert_eq!(shown(&client, list), expected);
    // The cached document stays in use: edits go on.
    let id = client.add_item(list, "after").unwrap();
    expected.insert(id, "after".into());
    drop(client);
    assert_eq!(shown(&reopen(&dir), list), expected);
}

#[test]
fn dropping_the_client_finishes_queued_compactions() {
    let (dir, client) = fresh();
    let list = client.create_list("One-shot").unwrap().id;
    for i in 0..MIN_CHUNKS_TO_COMPACT * 3 {
        client.add_item(list, &format!("item {i}")).unwrap();
    }
    drop(client); // no wait: the drop is the sync point
    let (rows, due) = chunk_rows(dir.path(), list);
    assert!(rows < MIN_CHUNKS_TO_COMPACT * 3, "{rows} chunks: nothing was compacted");
    assert!(!due, "{rows} chunks left and compaction still due after the client closed");
    assert_eq!(reopen(&dir).list(list).unwrap().items.len() as i64, MIN_CHUNKS_TO_COMPACT * 3);
}

#[test]
fn compactions_racing_with_edits_from_two_threads_and_two_clients_lose_nothing() {
    let (dir, first) = fresh();
    let list = first.create_list("Busy").unwrap().id;
    let first = Arc::new(first);
    // A second client on the same store stands for a second process: its writes reach the
    // first one's compactor only through the store.
    let second = Arc::new(Client::open(ClientConfig::new(dir.path())).unwrap());
    let writers: Vec<_> = [Arc::clone(&first), Arc::clone(&first), second]
        .into_iter()
        .enumerate()
        .map(|(w, client)| {
            std::thread::spawn(move || {
                let mut mine = BTreeMap::new();
                for i in 0..120 {
                    let id = client.add_item(list, &format!("w{w} item {i}")).unwrap();
                    mine.insert(id, format!("w{w} item {i}"));
                    if i % 3 == 0 {
                        client.edit_item(list, id, &format!("w{w} item {i} edited")).unwrap();
                        mine.insert(id, format!("w{w} item {i} edited"));
                    }
                    if w == 0 && i % 20 == 19 {
                        // A synchronous compaction renumbers the chunks under the
                        // background ones in flight.
                        client.compact(list).unwrap();
                    }
                }
                mine
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    for writer in writers {
        expected.extend(writer.join().unwrap());
    }
    assert_eq!(expected.len(), 360);
    first.wait_for_compaction();
    assert_eq!(shown(&first, list), expected);
    drop(first);
    let (rows, _) = chunk_rows(dir.path(), list);
    assert!(rows < 360, "{rows} chunks: nothing was compacted");
    let reopened = reopen(&dir);
    assert_eq!(shown(&reopened, list), expected);
}

#[test]
fn a_client_editing_in_a_tight_loop_does_not_starve_the_compactor() {
    let (dir, client) = fresh();
    let list = client.create_list("Busy loop").unwrap().id;
    for i in 0..400 {
        client.add_item(list, &format!("item {i}")).unwrap();
    }
    // No wait: compaction must have kept up while the loop held the store lock between
    // every pair of edits (a compaction is due about every 50 edits here).
    let (rows, _) = chunk_rows(dir.path(), list);
    assert!(rows < 200, "{rows} chunks after 400 edits: the compactor never got the lock");
}
