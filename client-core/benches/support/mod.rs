//! What the client benchmarks share: a store holding one list of many items, built in memory
//! and stored in one transaction, compacted as a long-lived store would be.

use std::path::Path;

use tandem_client::{Client, ClientConfig, ListId, Role};
use tandem_protocol::{ItemId, ListDoc};

/// Opens the store in `dir` holding `list` with `n` items, as `role`; returns the client and
/// the list's document as stored.
pub fn store_with_list(dir: &Path, list: ListId, n: u64, role: Role) -> (Client, ListDoc) {
    let client = Client::open(ClientConfig::new(dir)).unwrap();
    let mut doc = ListDoc::new("bench").unwrap();
    for i in 1..=n {
        doc.add_item(ItemId(i), &format!("item number {i}, something to do")).unwrap();
    }
    client.track_list(list, "bench", role).unwrap();
    client.apply_remote_changes(list, &doc.save()).unwrap();
    client.compact(list).unwrap();
    (client, doc)
}
