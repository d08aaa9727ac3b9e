//! Protocol version 2 over real sockets (issue 12): in-step version 2 subscribers get each
//! saved batch as one `Changes` frame numbered by the list's version, version 2 editors send
//! raw changes, a missed frame falls back to sync messages, and version 1 clients on the same
//! list go on as before (the compatibility rule of a rollout).

use tandem_protocol::automerge::ChangeHash;
use tandem_protocol::wire::{ClientMessage, ErrorCode, ListErrorCode, ServerMessage};
use tandem_protocol::{ItemId, ListDoc, ListId, streaming};

use crate::support::{TestServer, TestUser, email};
use crate::sync_client::{SyncClient, contents, rest_items};

/// A list of Alice's with Bob as an editor and Carol as a viewer.
struct Members {
    server: TestServer,
    alice: TestUser,
    list: ListId,
    bob: TestUser,
    carol: TestUser,
}

async fn members() -> Members {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let carol = server.signup(&email("carol")).await;
    let id = server.create_list(&alice, "Streamed").await;
    server.share(&alice, id, &bob.email, "EDITOR").await;
    server.share(&alice, id, &carol.email, "VIEWER").await;
    Members { server, alice, list: ListId(id), bob, carol }
}

/// Connects and brings the list in step.
async fn joined(server: &TestServer, user: &TestUser, list: ListId, v2: bool) -> SyncClient {
    let mut client = if v2 {
        SyncClient::connect_v2(server, user).await
    } else {
        SyncClient::connect(server, user).await
    };
    client.hold(list, ListDoc::empty());
    client.settle().await;
    assert!(client.doc(list).title().is_ok(), "the list arrived");
    client
}

/// What `client` holds that the server has not advertised, as one raw `Changes` message.
fn raw_changes(client: &mut SyncClient, list: ListId) -> ClientMessage {
    let (doc, state) = client.docs.get_mut(&list).unwrap();
    let theirs: Vec<ChangeHash> = state.their_heads.clone().unwrap();
    let changes = streaming::changes_since(doc.automerge_mut(), &theirs).unwrap();
    assert!(!changes.is_empty());
    let data = changes.iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    ClientMessage::Changes { list, data }
}

fn heads(client: &mut SyncClient, list: ListId) -> Vec<ChangeHash> {
    let mut heads = client.docs.get_mut(&list).unwrap().0.heads();
    heads.sort();
    heads
}

fn server_heads(client: &SyncClient, list: ListId) -> Vec<ChangeHash> {
    let mut heads = client.docs[&list].1.their_heads.clone().unwrap_or_default();
    heads.sort();
    heads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_2_streams_saved_batches_and_version_1_clients_keep_working() {
    let Members { server, alice, list, bob, carol } = members().await;
    let mut a = joined(&server, &alice, list, true).await;
    let mut b = joined(&server, &bob, list, false).await;
    let mut c = joined(&server, &carol, list, true).await;

    // Alice (version 2, in step) sends her change raw; it is acknowledged by a frame whose
    // heads are hers, and Carol (a version 2 viewer) gets the same frame.
    a.edit(list, |d| drop(d.add_item(ItemId(1), "milk").unwrap()));
    let message = raw_changes(&mut a, list);
    a.send(message).await;
    a.wait_for(|a| a.frames.len() == 1).await;
    assert_eq!(server_heads(&a, list), heads(&mut a, list), "the frame acknowledges the change");
    c.wait_for(|c| contents(c.doc(list)) == ["milk"]).await;
    assert_eq!(c.frames.len(), 1, "Carol got the batch as one frame, no sync message");
    assert_eq!(c.frames[0], a.frames[0], "the same frame, numbered by the list's version");
    let (_, first_seq, complete) = a.frames[0];
    assert!(complete);

    // Bob (version 1) sees it through sync messages and never a frame.
    b.wait_for(|b| contents(b.doc(list)) == ["milk"]).await;
    assert!(b.frames.is_empty());

    // Bob's sync-message edit reaches both version 2 sockets as the next numbered frame.
    b.edit(list, |d| drop(d.add_item(ItemId(2), "eggs").unwrap()));
    b.settle().await;
    for client in [&mut a, &mut c] {
        client.wait_for(|x| contents(x.doc(list)).len() == 2).await;
        assert_eq!(client.frames.last().unwrap().1, first_seq + 1, "{:?}", client.frames);
    }

    // A REST rename is a batch too.
    let (status, body) = server
        .post(
            "update",
            Some(&alice.token),
            serde_json::json!({"id": list.get(), "title": "Renamed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    c.wait_for(|c| c.doc(list).title().unwrap() == "Renamed").await;
    assert_eq!(c.frames.last().unwrap().1, first_seq + 2);
    b.wait_for(|b| b.doc(list).title().unwrap() == "Renamed").await;

    // Everyone ends with the same document, and REST serves what was acknowledged.
    a.wait_for(|a| a.doc(list).title().unwrap() == "Renamed").await;
    assert_eq!(heads(&mut a, list), heads(&mut b, list));
    assert_eq!(heads(&mut a, list), heads(&mut c, list));
    let mut items = rest_items(&server, &alice, list.get()).await;
    items.sort();
    assert_eq!(items, ["eggs", "milk"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_missed_a_frame_catches_up_through_sync_messages() {
    let Members { server, alice, list, carol, .. } = members().await;
    let mut a = joined(&server, &alice, list, true).await;
    let mut c = joined(&server, &carol, list, true).await;

    a.edit(list, |d| drop(d.add_item(ItemId(1), "first").unwrap()));
    let message = raw_changes(&mut a, list);
    a.send(message).await;
    a.wait_for(|a| a.frames.len() == 1).await;
    // Carol's frame for that batch is lost on the way.
    let lost = loop {
        match c.next().await.expect("a frame") {
            frame @ ServerMessage::Changes { .. } => break frame,
            other => c.apply(other),
        }
    };
    drop(lost);

    a.edit(list, |d| drop(d.add_item(ItemId(2), "second").unwrap()));
    let message = raw_changes(&mut a, list);
    a.send(message).await;
    c.wait_for(|c| !c.frames.is_empty()).await;
    assert!(!c.frames[0].2, "the next frame cannot be placed: a dependency is missing");
    // Back on sync messages: Carol asks for what she lacks and ends with both items.
    c.wait_for(|c| contents(c.doc(list)).len() == 2).await;
    let mut items = contents(c.doc(list));
    items.sort();
    assert_eq!(items, ["first", "second"]);
    assert_eq!(heads(&mut c, list), heads(&mut a, list));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_changes_are_refused_where_they_do_not_belong() {
    let Members { server, alice, list, bob, carol } = members().await;
    let mut a = joined(&server, &alice, list, true).await;

    // From a viewer: refused as forbidden, nothing stored.
    let mut c = joined(&server, &carol, list, true).await;
    c.edit(list, |d| drop(d.add_item(ItemId(9), "not allowed").unwrap()));
    let message = raw_changes(&mut c, list);
    c.send(message).await;
    c.wait_for(|c| c.list_errors(list).contains(&ListErrorCode::Forbidden)).await;
    assert!(rest_items(&server, &alice, list.get()).await.is_empty());

    // Bytes that are not changes: a per-list error, and the socket carries on.
    a.send(ClientMessage::Changes { list, data: b"not a change".to_vec() }).await;
    a.wait_for(|a| a.list_errors(list).contains(&ListErrorCode::InvalidDocument)).await;
    a.edit(list, |d| drop(d.add_item(ItemId(1), "still works").unwrap()));
    a.settle().await;
    assert_eq!(rest_items(&server, &alice, list.get()).await, ["still works"]);

    // A list the socket is not subscribed to: not found.
    let other = ListId(server.create_list(&alice, "Other").await);
    a.send(ClientMessage::Changes { list: other, data: Vec::new() }).await;
    a.wait_for(|a| a.list_errors(other).contains(&ListErrorCode::NotFound)).await;

    // On a version 1 socket the message does not exist: the connection ends.
    let mut b = joined(&server, &bob, list, false).await;
    b.edit(list, |d| drop(d.add_item(ItemId(3), "raw from v1").unwrap()));
    let message = raw_changes(&mut b, list);
    b.send(message).await;
    let (code, close, _) = b.expect_fatal().await;
    assert_eq!(code, ErrorCode::BadMessage);
    assert_eq!(close, ErrorCode::BadMessage.close_code());
}
