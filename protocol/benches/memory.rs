//! How much memory a loaded list document takes against its saved size: the floor under the
//! load generator's `big-list` figure, without the server's passing allocations (the
//! whole-document message, compaction) that its process keeps for a while.
//!
//! Loads the same snapshot several times and reports what each further copy adds to the
//! process's resident memory (the first load also warms the allocator, so it costs more).
//! Run with `cargo bench -p tandem-protocol --bench memory`; prints one line per list size.

use tandem_protocol::{ItemId, ListDoc};

/// Copies loaded after the first, to average over.
const COPIES: u64 = 4;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn case(items: u64) {
    let mut doc = ListDoc::new("big").unwrap();
    for i in 1..=items {
        doc.add_item(ItemId(i), &format!("item {i} of the big list")).unwrap();
    }
    let saved = doc.save();
    drop(doc);

    let before = rss_kib();
    let first = ListDoc::load(&saved).unwrap();
    let first_kib = rss_kib() - before;
    let before = rss_kib();
    let copies: Vec<ListDoc> = (0..COPIES).map(|_| ListDoc::load(&saved).unwrap()).collect();
    let per_copy_kib = (rss_kib() - before) as f64 / COPIES as f64;
    assert_eq!(copies[0].item_count().unwrap() as u64, items);
    println!(
        "{items} items: saved {} bytes; first load +{:.1} MiB; each further copy +{:.1} MiB \
         ({:.0}x the saved size, {:.0} bytes per item)",
        saved.len(),
        first_kib as f64 / 1024.0,
        per_copy_kib / 1024.0,
        per_copy_kib * 1024.0 / saved.len() as f64,
        per_copy_kib * 1024.0 / items as f64,
    );
    drop((first, copies));
}

fn main() {
    // `cargo test --benches` runs benches with no arguments in test mode: keep it short.
    if std::env::args().all(|a| a != "--bench") {
        case(100);
        return;
    }
    for items in [1_000, 10_000] {
        case(items);
    }
}
