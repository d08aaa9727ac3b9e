//! Client store benchmarks: open a store and read a 10,000-item list (target <= 50 ms); add
//! one item including the SQLite commit (target p99 <= 2 ms). Criterion reports means; the
//! p50/p99/max of single adds are measured directly and printed first, because criterion
//! does not report percentiles.
//!
//! Run: `cargo bench -p tandem-client --bench store`

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use criterion::Criterion;
use tandem_client::{Client, ClientConfig, ListId, Role};

const BIG: u64 = 10_000;
const SMALL: u64 = 100;

/// A store holding one list of `n` items.
fn store_with_list(dir: &Path, n: u64) -> (Client, ListId) {
    let list = ListId(n);
    (support::store_with_list(dir, list, n, Role::Owner).0, list)
}

fn percentiles(client: &Client, list: ListId, label: &str) {
    client.add_item(list, "warm-up: loads the document").unwrap();
    let mut times: Vec<Duration> = (0..2_000)
        .map(|i| {
            let start = Instant::now();
            client.add_item(list, &format!("added {i}")).unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "add_item ({label}), 2000 single adds incl. commit: p50 {:?}  p99 {:?}  max {:?}",
        at(0.50),
        at(0.99),
        times[times.len() - 1]
    );
}

fn benches(c: &mut Criterion) {
    let big_dir = tempfile::tempdir().unwrap();
    let (big, big_list) = store_with_list(big_dir.path(), BIG);
    drop(big);

    let mut group = c.benchmark_group("client");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    group.bench_function("open_store_and_read_10k_item_list", |b| {
        b.iter(|| {
            let client = Client::open(ClientConfig::new(big_dir.path())).unwrap();
            let list = client.list(big_list).unwrap();
            assert!(list.items.len() >= BIG as usize);
            list
        })
    });

    let small_dir = tempfile::tempdir().unwrap();
    let (small, small_list) = store_with_list(small_dir.path(), SMALL);
    small.add_item(small_list, "warm-up").unwrap();
    group.sample_size(50);
    group.bench_function("add_item_incl_commit_100_item_list", |b| {
        b.iter(|| small.add_item(small_list, "one more").unwrap())
    });
    let big = Client::open(ClientConfig::new(big_dir.path())).unwrap();
    big.add_item(big_list, "warm-up").unwrap();
    group.bench_function("add_item_incl_commit_10k_item_list", |b| {
        b.iter(|| big.add_item(big_list, "one more").unwrap())
    });
    group.finish();
}

fn main() {
    let small_dir = tempfile::tempdir().unwrap();
    let (small, small_list) = store_with_list(small_dir.path(), SMALL);
    percentiles(&small, small_list, "100-item list");
    let big_dir = tempfile::tempdir().unwrap();
    let (big, big_list) = store_with_list(big_dir.path(), BIG);
    percentiles(&big, big_list, "10,000-item list");
    drop((small, big));

    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
