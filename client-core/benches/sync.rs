//! Client sync benchmarks (issue 6), on a real store (SQLite, WAL, `synchronous=FULL`, in a
//! temporary directory) and through the calls the sync engine's session makes for every
//! server message: `Client::sync_receive`, then `Client::sync_generate` for the answer.
//!
//! - `apply_1000_remote_changes_*`: another replica (a `ListDoc` in memory) made 1,000
//!   changes (adds, text edits, check-offs) to a list this store holds; the client absorbs
//!   them either as one sync message or as 1,000 (one per change, as a live connection
//!   delivers someone typing).
//! - `sync_round_1000_offline_edits_*`: the client made 1,000 edits offline; one sync
//!   exchange with the server's side of the list (the protocol's `Room`, in memory, saving
//!   nothing) from the first message until both sides are quiet and the client is in step
//!   (the server advertised the client's heads).
//!
//! - `apply_remote_edit_as_frame_1000_item_list`: version 2: the same 1,000 changes reach
//!   the client as 1,000 `Changes` frames (`Client::apply_server_changes`, no answer), on a
//!   list of 1,000 items. Timed in CPU time of the applying thread (the store's fsync waits
//!   are off the CPU); divide by 1,000 for one remote edit (issue 12's target: 30 µs).
//!
//! Each iteration starts from a copy of a prepared store with the list's document already
//! loaded (the first touch of a long list loads it: see the `store` bench). Not included: the
//! socket, CBOR framing, and the engine's pacing under the server's message rate limit.
//!
//! Run: `cargo bench -p tandem-client --bench sync`

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use criterion::{Criterion, SamplingMode};
use tandem_client::{Client, ClientConfig, ListId, Role};
use tandem_protocol::automerge::sync::{Message, State, SyncDoc as _};
use tandem_protocol::room::Room;
use tandem_protocol::{ItemId, ListDoc};
use tempfile::TempDir;

/// Changes (or offline edits) per run.
const CHANGES: u64 = 1_000;
/// The list this store holds.
const LIST: ListId = ListId(4242);

/// A store holding one list of `n` items, closed (so the database is one file to copy).
/// Returns the directory and the list's document as stored.
fn template(n: u64) -> (TempDir, ListDoc) {
    let dir = tempfile::tempdir().unwrap();
    let (client, doc) = support::store_with_list(dir.path(), LIST, n, Role::Editor);
    drop(client);
    (dir, doc)
}

/// A client on a fresh copy of the store in `from`, with the list's document loaded.
fn copy_of(from: &Path) -> (TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let client = Client::open(ClientConfig::new(dir.path())).unwrap();
    client.heads(LIST).unwrap(); // loads the document
    (dir, client)
}

/// Change number `i` of 1,000 on a list of `n` items: half adds, a quarter text edits of
/// items spread over the list, a quarter check-offs of items just added (each a change).
fn change(doc: &mut ListDoc, n: u64, i: u64) {
    match i % 4 {
        0 | 2 => drop(doc.add_item(ItemId(1_000_000 + i), &format!("added remotely {i}")).unwrap()),
        1 => doc.edit_content(ItemId(1 + (i * 7919) % n), &format!("edited remotely {i}")).unwrap(),
        _ => doc.set_done(ItemId(1_000_000 + i - 1), true).unwrap(),
    }
}

/// Runs the sync protocol between two in-memory documents until both are quiet; returns
/// the messages `from` sent.
fn exchange(from: &mut ListDoc, a: &mut State, to: &mut ListDoc, b: &mut State) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    loop {
        let there = from.automerge_mut().sync().generate_sync_message(a);
        let back = to.automerge_mut().sync().generate_sync_message(b);
        if there.is_none() && back.is_none() {
            return sent;
        }
        if let Some(m) = there {
            sent.push(m.clone().encode());
            to.automerge_mut().sync().receive_sync_message(b, m).unwrap();
        }
        if let Some(m) = back {
            from.automerge_mut().sync().receive_sync_message(a, m).unwrap();
        }
    }
}

/// The server messages that carry the remote replica's 1,000 changes to this client, either
/// all in one (`per_change = false`) or one per change.
fn remote_messages(doc: &ListDoc, n: u64, per_change: bool) -> Vec<Vec<u8>> {
    let (mut remote, mut mirror) = (doc.clone(), doc.clone());
    let (mut a, mut b) = (State::new(), State::new());
    exchange(&mut remote, &mut a, &mut mirror, &mut b);
    let mut messages = Vec::new();
    for i in 0..CHANGES {
        change(&mut remote, n, i);
        if per_change {
            messages.extend(exchange(&mut remote, &mut a, &mut mirror, &mut b));
        }
    }
    if !per_change {
        messages.extend(exchange(&mut remote, &mut a, &mut mirror, &mut b));
    }
    // Check: the messages carry every change, in one message or in one each.
    let mut check = doc.clone();
    let mut carrying = 0;
    for m in &messages {
        let changes = Message::decode(m).unwrap().changes;
        carrying += usize::from(!changes.is_empty());
        for chunk in changes.iter() {
            check.load_incremental(chunk).unwrap();
        }
    }
    assert_eq!(check.heads(), remote.heads());
    assert_eq!(carrying as u64, if per_change { CHANGES } else { 1 });
    messages
}

/// What the session does with each server message: receive it, then generate the answer.
fn absorb(client: &Client, messages: &[Vec<u8>]) {
    let mut state = State::new();
    for m in messages {
        client.sync_receive(LIST, &mut state, m).unwrap();
        client.sync_generate(LIST, &mut state).unwrap();
    }
}

/// The `Changes` frames that carry the remote replica's 1,000 changes, one change each:
/// (change chunk, heads after it).
fn remote_frames(
    doc: &ListDoc,
    n: u64,
) -> Vec<(Vec<u8>, Vec<tandem_protocol::automerge::ChangeHash>)> {
    let mut remote = doc.clone();
    let mut frames = Vec::new();
    for i in 0..CHANGES {
        let before = remote.heads();
        change(&mut remote, n, i);
        frames.push((remote.save_after(&before), remote.heads()));
    }
    frames
}

/// CPU time this thread has run.
fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// A store with the list synced to a server room and then 1,000 edits made offline. Returns
/// the store and the server's document (before the edits).
fn offline_template(n: u64) -> (TempDir, ListDoc) {
    let (dir, doc) = template(n);
    let client = Client::open(ClientConfig::new(dir.path())).unwrap();
    // Synced once, so that the store keeps a sync state with the server.
    let mut room = Room::new(doc.clone());
    let rounds = sync_round(&client, &mut room);
    assert!(rounds > 0);
    let mut added = Vec::new();
    for i in 0..CHANGES {
        match i % 4 {
            0 | 2 => added.push(client.add_item(LIST, &format!("offline {i}")).unwrap()),
            1 => {
                client.edit_item(LIST, ItemId(1 + (i * 7919) % n), &format!("edited {i}")).unwrap()
            }
            _ => client.set_done(LIST, added[added.len() - 1], true).unwrap(),
        }
    }
    client.wait_for_compaction();
    drop(client);
    (dir, doc)
}

/// One connection's exchange between the client and the server's room until both are quiet.
/// Checks that the client ends in step; returns the messages exchanged.
fn sync_round(client: &Client, room: &mut Room) -> usize {
    const PEER: u64 = 1;
    room.leave(PEER);
    room.join(PEER, tandem_protocol::UserId(1), Role::Editor);
    let (mut state, mut server_heads) = client.load_sync_state(LIST).unwrap();
    let mut messages = 0;
    loop {
        let mut quiet = true;
        if let Some(m) = client.sync_generate(LIST, &mut state).unwrap() {
            quiet = false;
            messages += 1;
            room.receive(PEER, &m).unwrap();
            if room.unsaved().is_some() {
                room.mark_saved(); // the server saves here; not measured
            }
        }
        if let Some(m) = room.outgoing(PEER) {
            quiet = false;
            messages += 1;
            server_heads = client.sync_receive(LIST, &mut state, &m).unwrap().server_heads;
        }
        if quiet {
            break;
        }
    }
    let mut ours = client.heads(LIST).unwrap();
    ours.sort();
    server_heads.sort();
    assert_eq!(ours, server_heads, "in step");
    messages
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("client_sync");
    // One run per sample: each takes from milliseconds to seconds, and needs a fresh store.
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));

    // Stores are prepared inside each benchmark, so that a filtered run prepares only its own.
    for (n, label) in [(100, "100_item_list"), (10_000, "10k_item_list")] {
        for (per_change, how) in [(false, "one_message"), (true, "1000_messages")] {
            group.bench_function(format!("apply_1000_remote_changes_{how}_{label}"), |b| {
                let (store, doc) = template(n);
                let messages = remote_messages(&doc, n, per_change);
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (_dir, client) = copy_of(store.path());
                        let start = Instant::now();
                        absorb(&client, &messages);
                        total += start.elapsed();
                        let shown = client.list(LIST).unwrap().items.len() as u64;
                        assert_eq!(shown, n + CHANGES / 2);
                    }
                    total
                })
            });
        }

        if n == 100 {
            group.bench_function("apply_remote_edit_as_frame_1000_item_list", |b| {
                let (store, doc) = template(1_000);
                let frames = remote_frames(&doc, 1_000);
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (_dir, client) = copy_of(store.path());
                        let mut state = State::new();
                        let start = thread_cpu();
                        for (chunk, heads) in &frames {
                            let applied = client
                                .apply_server_changes(LIST, &mut state, chunk, heads)
                                .unwrap();
                            assert!(applied.complete && applied.changed);
                        }
                        total += thread_cpu() - start;
                        let shown = client.list(LIST).unwrap().items.len() as u64;
                        assert_eq!(shown, 1_000 + CHANGES / 2);
                    }
                    total
                })
            });
        }

        group.bench_function(format!("sync_round_1000_offline_edits_{label}"), |b| {
            let (store, server_doc) = offline_template(n);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_dir, client) = copy_of(store.path());
                    let mut room = Room::new(server_doc.clone());
                    let start = Instant::now();
                    sync_round(&client, &mut room);
                    total += start.elapsed();
                    assert_eq!(room.doc().item_count().unwrap() as u64, n + CHANGES / 2);
                }
                total
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
