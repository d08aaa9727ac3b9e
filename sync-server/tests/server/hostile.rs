//! Attacks by members of a list, replayed from outside over the documented protocol (issue 11):
//! each is refused with a clear per-list error, nothing of it is stored or served by REST, and
//! the other member's sync goes on working.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tandem_protocol::automerge::sync::{Have, Message, MessageVersion};
use tandem_protocol::automerge::transaction::Transactable as _;
use tandem_protocol::automerge::{ActorId, AutoCommit, Change, ChangeHash, ROOT, ReadDoc as _};
use tandem_protocol::wire::{ClientMessage, ErrorCode, ListErrorCode, ServerMessage};
use tandem_protocol::{ItemId, ListDoc, ListId};

use crate::support::{TestServer, TestUser, email};
use crate::sync_client::{QUIET, SyncClient, rest_items};

/// A list of `alice`'s with one item, "kept", shared with `bob` as an editor; both connected
/// and in step.
struct Shared {
    server: TestServer,
    alice: TestUser,
    bob: TestUser,
    list: ListId,
    a: SyncClient,
    b: SyncClient,
}

async fn shared_list(server: TestServer, title: &str) -> Shared {
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let id = server.create_list(&alice, title).await;
    server.share(&alice, id, &bob.email, "EDITOR").await;
    let list = ListId(id);
    let mut a = SyncClient::connect(&server, &alice).await;
    a.hold(list, ListDoc::empty());
    a.settle().await;
    a.edit(list, |d| {
        d.add_item(ItemId(1), "kept").unwrap();
    });
    a.settle().await;
    let mut b = SyncClient::connect(&server, &bob).await;
    b.hold(list, ListDoc::empty());
    b.wait_for(|c| texts(c.doc(list)) == ["kept"]).await;
    Shared { server, alice, bob, list, a, b }
}

impl Shared {
    /// Alice adds an item and it reaches the server: her sync still works.
    async fn alice_still_syncs(&mut self, text: &str) {
        let id = ItemId(rand_id());
        self.a.edit(self.list, |d| {
            d.add_item(id, text).unwrap();
        });
        self.a.settle().await;
        let items = rest_items(&self.server, &self.alice, self.list.get()).await;
        assert!(items.iter().any(|i| i == text), "{items:?}");
    }
}

/// The items' texts, none while the document is not a list yet.
fn texts(doc: &ListDoc) -> Vec<String> {
    doc.items().map(|items| items.into_iter().map(|i| i.content).collect()).unwrap_or_default()
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A sync message carrying exactly `changes` (raw chunks), claiming `heads`.
fn message_with(mut heads: Vec<ChangeHash>, changes: Vec<Vec<u8>>) -> Vec<u8> {
    heads.sort();
    Message {
        heads,
        need: Vec::new(),
        have: vec![Have::default()],
        changes: changes.into(),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode()
}

async fn send_raw(client: &mut SyncClient, list: ListId, data: Vec<u8>) {
    client.send(ClientMessage::Sync { list, data }).await;
}

/// Reads what comes within `QUIET`, keeping it; false if the socket closed.
async fn drain(client: &mut SyncClient) -> bool {
    loop {
        match client.next_within(QUIET).await {
            Some(Some(message)) => client.events.push(message),
            Some(None) => return false,
            None => return true,
        }
    }
}

fn list_error_messages(client: &SyncClient, list: ListId) -> Vec<(ListErrorCode, String)> {
    client
        .events
        .iter()
        .filter_map(|e| match e {
            ServerMessage::ListError { list: l, code, message } if *l == list => {
                Some((*code, message.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The changes of `client`'s document of `list` since `heads`.
fn changes_since(client: &mut SyncClient, list: ListId, heads: &[ChangeHash]) -> Vec<Change> {
    client.docs.get_mut(&list).unwrap().0.automerge_mut().get_changes(heads)
}

fn heads(client: &mut SyncClient, list: ListId) -> Vec<ChangeHash> {
    client.docs.get_mut(&list).unwrap().0.heads()
}

#[tokio::test]
async fn changes_whose_dependencies_never_arrive_are_dropped_and_their_sender_cut_off() {
    let mut s = shared_list(TestServer::start().await, "Orphans").await;
    let list = s.list;
    let base = heads(&mut s.b, list);
    s.b.edit(list, |d| {
        d.add_item(ItemId(2), "never sent").unwrap();
        d.add_item(ItemId(3), "waits for it").unwrap();
    });
    let orphan = changes_since(&mut s.b, list, &base).pop().unwrap();
    let claimed = heads(&mut s.b, list);
    let quiet = message_with(claimed.clone(), Vec::new());

    // The orphan, then messages that never bring what it waits for.
    send_raw(&mut s.b, list, message_with(claimed.clone(), vec![orphan.raw_bytes().to_vec()]))
        .await;
    let mut open = drain(&mut s.b).await;
    for _ in 0..8 {
        if !open {
            break;
        }
        send_raw(&mut s.b, list, quiet.clone()).await;
        send_raw(&mut s.b, list, message_with(claimed.clone(), vec![orphan.raw_bytes().to_vec()]))
            .await;
        open = drain(&mut s.b).await;
    }
    let errors = list_error_messages(&s.b, list);
    assert!(
        errors
            .iter()
            .any(|(code, m)| *code == ListErrorCode::InvalidDocument && m.contains("dropped")),
        "{errors:?}"
    );
    assert!(!open, "a peer that keeps sending orphans is cut off");
    assert!(
        s.b.events
            .iter()
            .any(|e| matches!(e, ServerMessage::Error { code: ErrorCode::BadMessage, .. })),
        "{:?}",
        s.b.events
    );

    // Nothing of it was kept: REST, and a new replica, see the list as it was.
    assert_eq!(rest_items(&s.server, &s.alice, list.get()).await, ["kept"]);
    s.alice_still_syncs("after the orphans").await;
    let mut fresh = SyncClient::connect(&s.server, &s.alice).await;
    fresh.hold(list, ListDoc::empty());
    fresh.wait_for(|c| c.doc(list).item_count().unwrap_or(0) == 2).await;
    let saved = fresh.docs.get_mut(&list).unwrap().0.save();
    assert!(saved.len() < 2_000, "a new device gets the list, not the orphan: {}", saved.len());
}

#[tokio::test]
async fn another_members_device_id_cannot_be_used_to_block_their_next_change() {
    let mut s = shared_list(TestServer::start().await, "Actors").await;
    let list = s.list;
    let alice_actor = s.a.doc(list).automerge().get_actor().clone();
    // Bob takes Alice's device id and her next sequence number.
    s.b.edit(list, |d| {
        d.automerge_mut().set_actor(alice_actor.clone());
        d.add_item(ItemId(66), "squatting").unwrap();
    });
    s.b.settle().await;
    assert!(s.b.list_errors(list).contains(&ListErrorCode::Forbidden), "{:?}", s.b.events);
    // Alice's real next change, under her own id and that same sequence number, goes through.
    s.alice_still_syncs("mine").await;
    let items = rest_items(&s.server, &s.bob, list.get()).await;
    assert!(!items.iter().any(|i| i == "squatting"), "{items:?}");
    // And the history names the right author for each change.
    let (status, body) =
        s.server.get(&format!("/api/todolist/history?id={}", list.get()), Some(&s.bob.token)).await;
    assert_eq!(status, 200, "{body}");
    let authors: Vec<u64> = body["data"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user_id"].as_u64().unwrap())
        .collect();
    assert!(authors.iter().all(|&u| u == s.alice.id), "{body}");
}

/// `body` as an uncompressed change chunk, with the checksum Automerge would compute.
fn change_chunk(kind: u8, body: &[u8], checksum_of: &[u8]) -> Vec<u8> {
    let leb = |mut n: u64| {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                return out;
            }
        }
    };
    let mut hashed = vec![1u8];
    hashed.extend(leb(checksum_of.len() as u64));
    hashed.extend_from_slice(checksum_of);
    let hash = Sha256::digest(&hashed);
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, hash[0], hash[1], hash[2], hash[3], kind];
    chunk.extend(leb(body.len() as u64));
    chunk.extend_from_slice(body);
    chunk
}

/// A compressed change chunk of `size` zero bytes once inflated.
fn deflate_bomb(size: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..size / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    change_chunk(2, &encoder.finish().unwrap(), &[])
}

/// A change chunk whose action column claims `ops` operations in a few bytes.
fn rle_bomb(ops: u64) -> Vec<u8> {
    let actor = ActorId::random();
    let mut body = vec![0]; // no dependencies
    body.push(actor.to_bytes().len() as u8);
    body.extend_from_slice(actor.to_bytes());
    body.extend_from_slice(&[1, 1, 0, 0, 0]); // seq, start op, time, message, other actors
    let mut action = Vec::new();
    let mut n = ops;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        let done = n == 0 && byte & 0x40 == 0;
        action.push(if done { byte } else { byte | 0x80 });
        if done {
            break;
        }
    }
    action.push(1);
    body.extend_from_slice(&[1, 66, action.len() as u8]);
    body.extend_from_slice(&action);
    change_chunk(1, &body, &body)
}

/// The peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn decompression_and_operation_bombs_are_refused_within_the_memory_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = crate::binary::start(dir.path());
    let child = KillOnDrop(child);
    let pid = child.0.id();
    let mut s = shared_list(TestServer::at(base), "Bombs").await;
    let list = s.list;
    let before = peak_rss_kib(pid);

    let bomb = deflate_bomb(1024 * 1024 * 1024);
    assert!(bomb.len() < 1024 * 1024, "one frame: {} bytes", bomb.len());
    let claimed = heads(&mut s.b, list);
    send_raw(&mut s.b, list, message_with(claimed.clone(), vec![bomb])).await;
    drain(&mut s.b).await;
    send_raw(&mut s.b, list, message_with(claimed, vec![rle_bomb(1 << 40)])).await;
    drain(&mut s.b).await;
    let errors = s.b.list_errors(list);
    assert_eq!(
        errors.iter().filter(|c| **c == ListErrorCode::TooLarge).count(),
        2,
        "{:?}",
        s.b.events
    );
    // 1 GiB claimed; the decoded limit is 8 MiB a message.
    let grown = peak_rss_kib(pid).saturating_sub(before);
    assert!(grown < 64 * 1024, "the server's peak memory grew by {grown} KiB");
    assert_eq!(rest_items(&s.server, &s.alice, list.get()).await, ["kept"]);
    s.alice_still_syncs("after the bombs").await;
}

/// A server process, killed when the test ends (or fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bob's client, bypassing `ListDoc`'s rules: a raw Automerge edit of his copy of the list.
fn raw_edit(client: &mut SyncClient, list: ListId, f: impl FnOnce(&mut AutoCommit)) {
    client.edit(list, |d| {
        f(d.automerge_mut());
        d.automerge_mut().commit();
    });
}

#[tokio::test]
async fn sync_refuses_what_rest_refuses_and_rest_never_serves_it() {
    let mut s = shared_list(TestServer::start().await, "Rules").await;
    let list = s.list;
    let title = |d: &AutoCommit| d.get(ROOT, "title").unwrap().unwrap().1;
    let item = |d: &AutoCommit| {
        let items = d.get(ROOT, "items").unwrap().unwrap().1;
        d.get(items, "1").unwrap().unwrap().1
    };
    type Attack<'a> = Box<dyn Fn(&mut AutoCommit) + 'a>;
    let attacks: Vec<(&str, Attack)> = vec![
        (
            "a 10,000-character title with NUL and ESC",
            Box::new(|d| {
                let t = title(d);
                d.update_text(&t, format!("{}\u{0}\u{1b}[2J", "t".repeat(10_000))).unwrap();
            }),
        ),
        (
            "an empty title",
            Box::new(|d| {
                let t = title(d);
                d.update_text(&t, "").unwrap();
            }),
        ),
        (
            "a 900,000-character sort_rank",
            Box::new(|d| {
                let i = item(d);
                d.put(&i, "sort_rank", format!("{}80", "7f".repeat(449_999))).unwrap();
            }),
        ),
        (
            "a 10,001-character item",
            Box::new(|d| {
                let i = item(d);
                let text = d.get(&i, "content").unwrap().unwrap().1;
                d.update_text(&text, "y".repeat(10_001)).unwrap();
            }),
        ),
    ];
    for (name, attack) in attacks {
        // Each attack from a fresh copy of the list, on a fresh socket (a socket whose
        // messages keep being refused is cut off).
        let mut b = SyncClient::connect(&s.server, &s.bob).await;
        b.hold(list, ListDoc::empty());
        b.wait_for(|c| c.doc(list).item_count().unwrap_or(0) >= 1).await;
        raw_edit(&mut b, list, |d| attack(d));
        b.settle().await;
        let errors = b.list_errors(list);
        assert!(errors.contains(&ListErrorCode::InvalidDocument), "{name}: {:?}", b.events);
    }
    let (status, body) =
        s.server.get(&format!("/api/todolist/read?id={}", list.get()), Some(&s.alice.token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["title"], "Rules");
    assert_eq!(body["data"]["items"][0]["content"], "kept");
    assert_eq!(body["data"]["items"][0]["sort_rank"].as_str().unwrap().len(), 2);
    s.alice_still_syncs("after the rule breakers").await;
}

#[tokio::test]
async fn a_viewer_that_keeps_saying_it_has_nothing_gets_the_list_a_few_times_a_minute() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let viewer = server.signup(&email("viewer")).await;
    let id = server.create_list(&alice, "Watched").await;
    server.share(&alice, id, &viewer.email, "VIEWER").await;
    let list = ListId(id);
    let mut v = SyncClient::connect(&server, &viewer).await;
    let mut empty = ListDoc::empty();
    let mut state = tandem_protocol::automerge::sync::State::new();
    use tandem_protocol::automerge::sync::SyncDoc as _;
    let nothing = empty.automerge_mut().sync().generate_sync_message(&mut state).unwrap().encode();
    for _ in 0..12 {
        send_raw(&mut v, list, nothing.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    drain(&mut v).await;
    let whole: usize = v.events.iter().filter(|e| matches!(e, ServerMessage::Sync { .. })).count();
    let limited = v.list_errors(list).iter().filter(|c| **c == ListErrorCode::RateLimited).count();
    assert!(whole <= 6, "sent the whole list {whole} times");
    assert!(limited >= 6, "{:?}", v.events);
}
