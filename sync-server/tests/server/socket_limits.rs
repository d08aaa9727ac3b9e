//! The sync socket's limits and closes, attacked from outside over real sockets: a socket that
//! never says Hello, one user opening many sockets or spreading messages over them, a member
//! that never reads, and the close code and reason that every fatal close carries.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use rand::distributions::Alphanumeric;
use tandem_protocol::automerge::sync::{State, SyncDoc as _};
use tandem_protocol::wire::{ClientMessage, ErrorCode, MAX_CLOSE_REASON, ServerMessage};
use tandem_protocol::{ItemId, ListDoc, ListId};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::{TestServer, TestUser, email};
use crate::sync_client::{
    PATIENCE, QUIET, SyncClient, metric, open_socket, rest_items, wait_for_metric,
};

/// Checks what a fatal close must carry: the error first, then its close code and a reason.
fn assert_fatal(got: (ErrorCode, u16, String), expected: ErrorCode) {
    let (code, close, reason) = got;
    assert_eq!(code, expected, "the Error frame names the problem");
    assert_eq!(close, expected.close_code(), "close code of {}", expected.name());
    assert!(!reason.is_empty() && reason.len() <= MAX_CLOSE_REASON, "reason {reason:?}");
}

#[tokio::test]
async fn a_socket_that_never_says_hello_is_closed_even_while_it_answers_pings() {
    let server = TestServer::start_with(|c| {
        c.sync.hello_timeout_secs = 2;
        c.sync.ping_secs = 1;
    })
    .await;
    let user = server.signup(&email("mute")).await;
    let mut ws = open_socket(&server.base, &user, None).await.unwrap();
    // It answers the server's pings (tungstenite does, while reading) and pings on its own.
    let mut ping = tokio::time::interval(Duration::from_millis(200));
    let deadline = tokio::time::sleep(PATIENCE);
    tokio::pin!(deadline);
    let mut error = None;
    let close = loop {
        tokio::select! {
            _ = ping.tick() => {
                let _ = ws.send(Message::Ping(Vec::new().into())).await;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    let message = ServerMessage::decode(&bytes).unwrap();
                    if let ServerMessage::Error { code, .. } = message {
                        error = Some(code);
                    }
                }
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                other => panic!("the socket ended without a close frame: {other:?}"),
            },
            () = &mut deadline => panic!("a socket without Hello is still open after {PATIENCE:?}"),
        }
    };
    let close = close.expect("a close frame with a code");
    assert_fatal(
        (error.expect("an Error frame first"), close.code.into(), close.reason.to_string()),
        ErrorCode::HelloTimeout,
    );
    assert_eq!(metric(&server, "tandem_handshake_timeouts_total").await, 1);

    // A socket that said Hello in time is not affected by the limit.
    let list = ListId(server.create_list(&user, "Still here").await);
    let mut a = SyncClient::connect(&server, &user).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.hold(list, ListDoc::empty());
    a.settle().await;
    assert_eq!(a.doc(list).title().unwrap(), "Still here");
    assert_eq!(metric(&server, "tandem_handshake_timeouts_total").await, 1);
}

#[tokio::test]
async fn every_fatal_close_carries_its_close_code_and_a_reason() {
    let mut server = TestServer::start_with(|c| {
        c.sync.messages_per_second = 3;
        c.sync.idle_timeout_secs = 2;
        c.sync.max_message_bytes = 4096;
    })
    .await;
    let user = server.signup(&email("closes")).await;

    // Not CBOR.
    let mut a = SyncClient::connect(&server, &user).await;
    a.ws.send(Message::Binary(vec![0xFF, 0x00].into())).await.unwrap();
    assert_fatal(a.expect_fatal().await, ErrorCode::BadMessage);
    // Text.
    let mut a = SyncClient::connect(&server, &user).await;
    a.ws.send(Message::Text("hello?".into())).await.unwrap();
    assert_fatal(a.expect_fatal().await, ErrorCode::BadMessage);
    // Hello twice.
    let mut a = SyncClient::connect(&server, &user).await;
    a.send(ClientMessage::hello()).await;
    assert_fatal(a.expect_fatal().await, ErrorCode::BadMessage);
    // A frame over max_message_bytes.
    let mut a = SyncClient::connect(&server, &user).await;
    a.send(ClientMessage::Sync { list: ListId(1), data: vec![7; 8192] }).await;
    assert_fatal(a.expect_fatal().await, ErrorCode::BadMessage);
    // Over the socket's message rate.
    let mut a = SyncClient::connect(&server, &user).await;
    for n in 0..20u64 {
        a.send(ClientMessage::Unsubscribe { list: ListId(n + 1) }).await;
    }
    assert_fatal(a.expect_fatal().await, ErrorCode::RateLimited);
    // Silent for longer than idle_timeout_secs (and not reading, so not answering pings).
    let mut a = SyncClient::connect(&server, &user).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_fatal(a.expect_fatal().await, ErrorCode::IdleTimeout);
    // No version in common.
    let ws = open_socket(&server.base, &user, None).await.unwrap();
    let mut a = SyncClient::unwelcomed(ws);
    a.send(ClientMessage::Hello { min_version: 99, max_version: 120 }).await;
    assert_fatal(a.expect_fatal().await, ErrorCode::UnsupportedVersion);
    // The server going down.
    let mut a = SyncClient::connect(&server, &user).await;
    server.stop().await;
    assert_fatal(a.expect_fatal().await, ErrorCode::ShuttingDown);
}

#[tokio::test]
async fn a_raised_oldest_version_turns_older_clients_away_as_unsupported() {
    let server = TestServer::start_with(|c| {
        c.sync.min_client_version = tandem_protocol::wire::PROTOCOL_VERSION + 1;
    })
    .await;
    let user = server.signup(&email("old-app")).await;
    let ws = open_socket(&server.base, &user, None).await.unwrap();
    let mut a = SyncClient::unwelcomed(ws);
    a.send(ClientMessage::hello()).await;
    assert_fatal(a.expect_fatal().await, ErrorCode::UnsupportedVersion);
}

/// The status and body of a refused upgrade.
fn refused(err: tungstenite::Error) -> (u16, serde_json::Value, bool) {
    match err {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body = response.body().clone().unwrap_or_default();
            (status, serde_json::from_slice(&body).expect("a JSON envelope"), retry_after)
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn a_user_at_the_socket_cap_is_refused_before_the_upgrade_until_a_socket_closes() {
    let server = TestServer::start_with(|c| c.sync.max_sockets_per_user = 2).await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let mut first = SyncClient::connect(&server, &alice).await;
    // A socket counts from its upgrade, Hello or not.
    let _second = open_socket(&server.base, &alice, None).await.unwrap();

    let (status, body, retry_after) =
        refused(open_socket(&server.base, &alice, None).await.unwrap_err());
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], 429, "{body}");
    assert!(body["message"].as_str().unwrap().contains("sockets"), "{body}");
    assert!(retry_after, "a 429 says when to retry");
    assert_eq!(metric(&server, "tandem_sockets_refused_total").await, 1);
    assert_eq!(metric(&server, "tandem_open_sockets").await, 2, "no socket task was started");

    // Another user is not affected.
    let _bob = SyncClient::connect(&server, &bob).await;

    // A socket that closes frees its slot.
    first.ws.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let third = loop {
        match open_socket(&server.base, &alice, None).await {
            Ok(ws) => break ws,
            Err(err) => assert_eq!(refused(err).0, 429),
        }
        assert!(tokio::time::Instant::now() < deadline, "the closed socket kept its slot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let third = SyncClient::hello_on(third, &alice).await;
    assert_eq!(third.welcome, Vec::new());
}

/// Sends `per_socket` cheap messages on each socket, round robin, and returns which sockets
/// the server then closed, with the close they got.
async fn spread_messages(
    sockets: &mut [SyncClient],
    per_socket: u64,
) -> Vec<(ErrorCode, u16, String)> {
    for n in 0..per_socket {
        for socket in sockets.iter_mut() {
            let frame = ClientMessage::Unsubscribe { list: ListId(n + 1) }.encode();
            let _ = socket.ws.send(Message::Binary(frame.into())).await;
        }
    }
    let mut closed = Vec::new();
    for socket in sockets.iter_mut() {
        match socket.next_within(QUIET * 3).await {
            None => {} // still open, nothing to say
            Some(Some(ServerMessage::Error { code, .. })) => {
                assert!(socket.next().await.is_none(), "the socket closes after the Error");
                let (close, reason) = socket.close.clone().expect("a close frame");
                closed.push((code, close, reason));
            }
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    closed
}

#[tokio::test]
async fn opening_more_sockets_buys_no_more_messages() {
    let server = TestServer::start_with(|c| {
        c.sync.messages_per_second = 1000;
        c.sync.user_messages_per_second = 10;
    })
    .await;
    let greedy = server.signup(&email("greedy")).await;
    let modest = server.signup(&email("modest")).await;

    // Under the user's rate in all: nothing happens.
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(SyncClient::connect(&server, &modest).await);
    }
    assert!(spread_messages(&mut sockets, 2).await.is_empty());

    // Four sockets with 10 messages each: each is far under the socket's limit, together
    // four times the user's.
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(SyncClient::connect(&server, &greedy).await);
    }
    let closed = spread_messages(&mut sockets, 10).await;
    assert!(!closed.is_empty(), "the user's budget is shared by their sockets");
    for close in &closed {
        assert_fatal(close.clone(), ErrorCode::RateLimited);
    }
    assert_eq!(metric(&server, "tandem_rate_limited_closed_total").await, closed.len() as u64);

    // The modest user, on the same server, still has their own budget.
    let mut sockets = vec![SyncClient::connect(&server, &modest).await];
    assert!(spread_messages(&mut sockets, 3).await.is_empty());
}

/// A list of about `bytes` of random (incompressible) item text, made by `owner` through sync
/// in changes small enough for every per-change limit.
async fn big_list(server: &TestServer, owner: &TestUser, bytes: usize) -> (ListId, SyncClient) {
    let list = ListId(server.create_list(owner, "Big").await);
    let mut a = SyncClient::connect(server, owner).await;
    a.hold(list, ListDoc::empty());
    a.settle().await;
    let mut rng = rand::thread_rng();
    let per_item = 400;
    let items = bytes / per_item;
    for batch in 0..items.div_ceil(50) {
        a.edit(list, |d| {
            for n in 0..50 {
                let text: String =
                    (&mut rng).sample_iter(&Alphanumeric).take(per_item).map(char::from).collect();
                d.add_item(ItemId((batch * 50 + n + 1) as u64), &text).unwrap();
            }
            d.automerge_mut().commit();
        });
        a.settle().await;
    }
    assert_eq!(rest_items(server, owner, list.get()).await.len(), items.div_ceil(50) * 50);
    (list, a)
}

/// What a peer that has nothing sends: a sync message with no heads, which asks for the whole
/// document.
fn i_have_nothing() -> Vec<u8> {
    let mut doc = ListDoc::empty();
    doc.automerge_mut().sync().generate_sync_message(&mut State::new()).unwrap().encode()
}

#[tokio::test]
async fn a_member_that_never_reads_is_closed_once_its_queue_passes_the_byte_bound() {
    const BOUND: u64 = 512 * 1024;
    let server = TestServer::start_with(|c| {
        c.sync.outbound_queue_bytes = BOUND as usize;
        c.sync.full_syncs_per_minute = 100_000;
    })
    .await;
    let owner = server.signup(&email("owner")).await;
    let viewer = server.signup(&email("viewer")).await;
    let (list, mut a) = big_list(&server, &owner, 200 * 1024).await;
    server.share(&owner, list.get(), &viewer.email, "VIEWER").await;

    // The viewer's socket has a tiny receive buffer and is never read after the Welcome.
    let ws = open_socket(&server.base, &viewer, Some(4096)).await.unwrap();
    let mut v = SyncClient::hello_on(ws, &viewer).await;
    let request = i_have_nothing();
    let mut sent = 0;
    while metric(&server, "tandem_slow_readers_closed_total").await == 0 {
        assert!(sent < 400, "{sent} requests for the whole list and the socket is still open");
        let frame = ClientMessage::Sync { list, data: request.clone() }.encode();
        if v.ws.send(Message::Binary(frame.into())).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for_metric(&server, "tandem_slow_readers_closed_total", 1).await;
    let peak = metric(&server, "tandem_outbound_queued_bytes_peak").await;
    println!("closed after {sent} requests for the whole list; peak queued {peak} bytes");
    assert!(peak <= BOUND, "queued {peak} bytes with a bound of {BOUND}");
    assert!(peak > BOUND / 2, "the queue did fill before the close ({peak} bytes)");
    // Once the socket is gone its queue is released.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&server, "tandem_outbound_queued_bytes").await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the closed socket's queue stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Everyone else carries on.
    a.edit(list, |d| {
        d.add_item(ItemId(1_000_000), "after the attack").unwrap();
    });
    a.settle().await;
    let items = rest_items(&server, &owner, list.get()).await;
    assert!(items.iter().any(|i| i == "after the attack"));
}

#[tokio::test]
async fn a_frame_bigger_than_the_byte_bound_still_reaches_a_reader_that_keeps_up() {
    let server = TestServer::start_with(|c| c.sync.outbound_queue_bytes = 16 * 1024).await;
    let owner = server.signup(&email("owner")).await;
    let editor = server.signup(&email("editor")).await;
    let (list, a) = big_list(&server, &owner, 64 * 1024).await;
    server.share(&owner, list.get(), &editor.email, "EDITOR").await;
    let mut e = SyncClient::connect(&server, &editor).await;
    e.hold(list, ListDoc::empty());
    e.settle().await;
    assert_eq!(e.doc(list).items().unwrap(), a.doc(list).items().unwrap());
    assert_eq!(metric(&server, "tandem_slow_readers_closed_total").await, 0);
}
