//! One abusive viewer cannot slow another member down (issue 11): while a viewer of a big list
//! keeps asking for the whole list as fast as its socket's rate limit allows, the owner's
//! edits are still acknowledged about as fast as with no abuse: p99 under 50 ms, or (on a
//! machine too slow for that even unabused, this being a debug build) under one and a half
//! times the unabused p99 measured just before.
//!
//! A test binary of its own, so that no other test shares the machine while it measures.

#[path = "server/support.rs"]
#[allow(dead_code)]
mod support;
#[path = "server/sync_client.rs"]
#[allow(dead_code)]
mod sync_client;

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tandem_protocol::automerge::sync::{State, SyncDoc as _};
use tandem_protocol::wire::{ClientMessage, ListErrorCode, ServerMessage};
use tandem_protocol::{ItemId, ListDoc, ListId};
use tokio_tungstenite::tungstenite::Message;

use support::{TestServer, email};
use sync_client::{SyncClient, open_socket};

/// Items in the list (the bigger the list, the dearer each whole-list send).
const ITEMS: u64 = 2_000;
/// The owner's edits measured.
const EDITS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abusive_viewer_does_not_delay_the_owners_acknowledgements() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let viewer = server.signup(&email("viewer")).await;
    let id = server.create_list(&alice, "Big").await;
    server.share(&alice, id, &viewer.email, "VIEWER").await;
    let list = ListId(id);

    let mut a = SyncClient::connect(&server, &alice).await;
    a.hold(list, ListDoc::empty());
    a.settle().await;
    a.edit(list, |d| {
        for i in 1..=ITEMS {
            d.add_item(ItemId(i), &format!("item number {i}, something to do")).unwrap();
        }
    });
    a.settle().await;

    let unabused = acknowledgements(&mut a, list, 1).await;

    // The viewer: says it has nothing, 150 times a second (under its socket's limit of 200),
    // and reads (and drops) whatever comes back, so that it is never cut as a slow reader.
    let mut empty = ListDoc::empty();
    let nothing =
        empty.automerge_mut().sync().generate_sync_message(&mut State::new()).unwrap().encode();
    let ws = open_socket(&server.base, &viewer, None).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::Binary(ClientMessage::hello().encode().into())).await.unwrap();
    let abuse = tokio::spawn(async move {
        let frame = ClientMessage::Sync { list, data: nothing }.encode();
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / 150));
        loop {
            tick.tick().await;
            if sink.send(Message::Binary(frame.clone().into())).await.is_err() {
                return;
            }
        }
    });
    let refusals = tokio::spawn(async move {
        let mut rate_limited = 0;
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Binary(bytes) = frame
                && let Ok(ServerMessage::ListError { code: ListErrorCode::RateLimited, .. }) =
                    ServerMessage::decode(&bytes)
            {
                rate_limited += 1;
            }
        }
        rate_limited
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let abused = acknowledgements(&mut a, list, 1 + EDITS as u64).await;
    abuse.abort();
    let (p50, p99) = percentiles(abused);
    let (calm_p50, calm_p99) = percentiles(unabused);
    println!(
        "owner's acknowledgements: unabused p50 {calm_p50:?}, p99 {calm_p99:?}; \
         abused p50 {p50:?}, p99 {p99:?}"
    );
    drop(a);
    let mut server = server;
    server.stop().await;
    let rate_limited = refusals.await.unwrap();
    assert!(rate_limited > 0, "the viewer's whole-list requests were throttled");
    let bound = Duration::from_millis(50).max(calm_p99.mul_f64(1.5));
    assert!(p99 < bound, "p99 {p99:?} under abuse against {calm_p99:?} without");
}

/// Checks items `first..first + EDITS` off one by one, each timed from its send to the
/// server's acknowledgement (a message whose heads include it).
async fn acknowledgements(a: &mut SyncClient, list: ListId, first: u64) -> Vec<Duration> {
    let mut waits = Vec::with_capacity(EDITS);
    for n in 0..EDITS as u64 {
        let (doc, state) = a.docs.get_mut(&list).unwrap();
        doc.set_done(ItemId(first + n), true).unwrap();
        let ours = doc.heads();
        let message = doc.automerge_mut().sync().generate_sync_message(state).unwrap();
        let sent = Instant::now();
        a.send(ClientMessage::Sync { list, data: message.encode() }).await;
        loop {
            match a.next().await {
                Some(message) => a.apply(message),
                None => panic!("the owner's socket closed"),
            }
            let state = &a.docs[&list].1;
            if state
                .their_heads
                .as_ref()
                .is_some_and(|theirs| ours.iter().all(|h| theirs.contains(h)))
            {
                break;
            }
        }
        waits.push(sent.elapsed());
    }
    waits
}

/// The median and the 99th percentile.
fn percentiles(mut waits: Vec<Duration>) -> (Duration, Duration) {
    waits.sort();
    (waits[waits.len() / 2], waits[waits.len() * 99 / 100])
}
