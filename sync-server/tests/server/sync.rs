//! The sync socket end to end, driven by the raw client of [`crate::sync_client`] against a
//! real server.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tandem_protocol::automerge::sync::{State, SyncDoc as _};
use tandem_protocol::wire::{
    ClientMessage, ErrorCode, ListErrorCode, RemovalReason, ServerMessage,
};
use tandem_protocol::{ItemId, ListDoc, ListId, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::support::{TestServer, email};
use crate::sync_client::{PATIENCE, QUIET, SyncClient, contents, rest_items};

#[tokio::test]
async fn sockets_without_a_valid_token_are_refused_before_any_data() {
    let server = TestServer::start().await;
    let url = format!("{}/api/todolist/sync", server.base.replace("http://", "ws://"));
    for auth in [None, Some("Bearer nonsense")] {
        let mut request = url.clone().into_client_request().unwrap();
        if let Some(auth) = auth {
            request.headers_mut().insert("authorization", auth.parse().unwrap());
        }
        let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), 401)
            }
            other => panic!("expected an HTTP 401, got {other}"),
        }
    }
    // Browsers pass the token in the query.
    let user = server.signup(&email("browser")).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{url}?access_token={}", user.token))
            .await
            .unwrap();
    ws.send(Message::Binary(ClientMessage::hello().encode().into())).await.unwrap();
    let Some(Ok(Message::Binary(frame))) = ws.next().await else { panic!("no welcome") };
    assert!(matches!(ServerMessage::decode(&frame).unwrap(), ServerMessage::Welcome { .. }));
}

#[tokio::test]
async fn an_edit_is_saved_and_reaches_the_other_member_at_once() {
    edits_merge_and_reach_members(TestServer::start().await).await;
}

#[tokio::test]
async fn sync_works_on_postgres_shards() {
    let Some(pg) = crate::support::PgDatabases::create(2).await else { return };
    let specs = pg.split_map();
    edits_merge_and_reach_members(TestServer::start_with(|c| c.shards = specs).await).await;
}

async fn edits_merge_and_reach_members(server: TestServer) {
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let list = server.create_list(&alice, "Groceries").await;
    server.share(&alice, list, &bob.email, "EDITOR").await;
    let id = ListId(list);

    let mut a = SyncClient::connect(&server, &alice).await;
    let mut b = SyncClient::connect(&server, &bob).await;
    assert_eq!(b.welcome, vec![(id, Role::Editor)]);
    for client in [&mut a, &mut b] {
        client.hold(id, ListDoc::empty());
        client.settle().await;
        assert_eq!(client.doc(id).title().unwrap(), "Groceries");
    }

    a.edit(id, |d| {
        d.add_item(ItemId(1), "milk").unwrap();
    });
    a.settle().await;
    // Bob sends nothing: the change arrives by itself.
    b.wait_for(|c| contents(c.doc(id)) == ["milk"]).await;
    assert_eq!(rest_items(&server, &alice, list).await, ["milk"], "REST reads what sync merged");

    // Concurrent offline edits of the same item's text merge character by character.
    b.edit(id, |d| d.edit_content(ItemId(1), "oat milk").unwrap());
    a.edit(id, |d| d.edit_content(ItemId(1), "milk today").unwrap());
    a.settle().await;
    b.settle().await;
    a.settle().await;
    assert_eq!(contents(a.doc(id)), ["oat milk today"]);
    assert_eq!(contents(b.doc(id)), ["oat milk today"]);
    assert_eq!(rest_items(&server, &bob, list).await, ["oat milk today"]);
}

#[tokio::test]
async fn a_viewer_change_is_refused_stored_nowhere_and_forwarded_to_no_one() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let val = server.signup(&email("val")).await;
    let list = server.create_list(&alice, "Read me").await;
    server.share(&alice, list, &val.email, "VIEWER").await;
    let id = ListId(list);
    let mut a = SyncClient::connect(&server, &alice).await;
    a.hold(id, ListDoc::empty());
    a.settle().await;
    let mut v = SyncClient::connect(&server, &val).await;
    v.hold(id, ListDoc::empty());
    v.settle().await;

    // A modified client ignores the read-only flag: obtain a message that carries a change
    // by syncing with an ordinary peer, then send it to the server.
    v.edit(id, |d| {
        d.add_item(ItemId(66), "sneaky").unwrap();
    });
    let mut peer_doc =
        ListDoc::from_automerge(a.docs.get_mut(&id).unwrap().0.automerge_mut().fork());
    let mut peer_state = State::new();
    let mut forged = None;
    let mut state = State::new();
    for _ in 0..6 {
        let m = v
            .docs
            .get_mut(&id)
            .unwrap()
            .0
            .automerge_mut()
            .sync()
            .generate_sync_message(&mut state)
            .unwrap();
        if !m.changes.is_empty() {
            forged = Some(m.encode());
            break;
        }
        peer_doc.automerge_mut().sync().receive_sync_message(&mut peer_state, m).unwrap();
        let reply = peer_doc.automerge_mut().sync().generate_sync_message(&mut peer_state).unwrap();
        v.docs
            .get_mut(&id)
            .unwrap()
            .0
            .automerge_mut()
            .sync()
            .receive_sync_message(&mut state, reply)
            .unwrap();
    }
    v.send(ClientMessage::Sync { list: id, data: forged.expect("a change-bearing message") }).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !v.list_errors(id).contains(&ListErrorCode::Forbidden) {
        assert!(tokio::time::Instant::now() < deadline, "no forbidden error: {:?}", v.events);
        if let Some(Some(m)) = v.next_within(QUIET).await {
            v.apply(m);
        }
    }
    a.settle().await;
    assert!(contents(a.doc(id)).is_empty(), "the owner never sees it");
    assert!(rest_items(&server, &alice, list).await.is_empty(), "nothing stored");
    let metrics =
        reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tandem_viewer_changes_refused_total 1"), "{metrics}");
}

#[tokio::test]
async fn non_members_get_not_found_and_no_bytes_of_the_list() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let eve = server.signup(&email("eve")).await;
    let list = ListId(server.create_list(&alice, "Private").await);
    let mut e = SyncClient::connect(&server, &eve).await;
    assert!(e.welcome.is_empty());
    e.hold(list, ListDoc::empty());
    e.settle().await;
    assert_eq!(e.list_errors(list), [ListErrorCode::NotFound]);
    assert!(e.doc(list).title().is_err(), "nothing of the list arrived");
}

#[tokio::test]
async fn bad_bytes_affect_only_their_list_and_bad_frames_close_the_socket() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let good = ListId(server.create_list(&alice, "Good").await);
    let other = ListId(server.create_list(&alice, "Other").await);
    let mut a = SyncClient::connect(&server, &alice).await;
    a.hold(good, ListDoc::empty());
    a.settle().await;
    a.send(ClientMessage::Sync { list: other, data: vec![0x42, 0xFF, 0x00, 0x13] }).await;
    a.settle().await;
    assert_eq!(a.list_errors(other), [ListErrorCode::InvalidDocument]);
    a.edit(good, |d| {
        d.add_item(ItemId(3), "still fine").unwrap();
    });
    a.settle().await;
    assert_eq!(rest_items(&server, &alice, good.get()).await, ["still fine"]);

    a.ws.send(Message::Binary(vec![0xFF, 0x00].into())).await.unwrap();
    match a.next().await {
        Some(ServerMessage::Error { code, .. }) => assert_eq!(code, ErrorCode::BadMessage),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(a.next().await.is_none(), "then the socket closes");
}

#[tokio::test]
async fn membership_and_rest_changes_reach_open_sockets() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let list = server.create_list(&alice, "Live").await;
    let id = ListId(list);
    let mut b = SyncClient::connect(&server, &bob).await;
    let mut a = SyncClient::connect(&server, &alice).await;
    a.hold(id, ListDoc::empty());
    a.settle().await;

    // Shared while bob is connected: he hears of it.
    server.share(&alice, list, &bob.email, "EDITOR").await;
    let access = b.next().await.unwrap();
    assert!(
        matches!(access, ServerMessage::Access(ref x) if x.list == id && x.role == Role::Editor),
        "{access:?}"
    );
    b.hold(id, ListDoc::empty());
    b.settle().await;

    // A REST rename reaches both documents.
    let (status, _) = server
        .post("update", Some(&alice.token), json!({"id": list, "title": "Renamed live"}))
        .await;
    assert_eq!(status, 200);
    b.wait_for(|c| c.doc(id).title().unwrap() == "Renamed live").await;
    a.wait_for(|c| c.doc(id).title().unwrap() == "Renamed live").await;

    // Downgraded to viewer: his next change goes nowhere.
    server.share(&alice, list, &bob.email, "VIEWER").await;
    b.settle().await;
    assert!(
        b.events.iter().any(|e| matches!(e, ServerMessage::Access(x) if x.role == Role::Viewer))
    );
    b.edit(id, |d| {
        d.add_item(ItemId(7), "as a viewer").unwrap();
    });
    b.settle().await;
    a.settle().await;
    assert!(rest_items(&server, &alice, list).await.is_empty());
    assert!(contents(a.doc(id)).is_empty());

    // Removed: told to drop the list; a further sync is not_found.
    let (status, _) = server
        .post("unshare", Some(&alice.token), json!({"list_id": list, "target_email": bob.email}))
        .await;
    assert_eq!(status, 200);
    b.settle().await;
    assert!(b.events.iter().any(|e| matches!(e, ServerMessage::Removed { list: l, reason: RemovalReason::Unshared } if *l == id)));
    b.edit(id, |d| {
        d.add_item(ItemId(8), "after removal").unwrap();
    });
    b.settle().await;
    assert!(b.list_errors(id).contains(&ListErrorCode::NotFound));
    assert!(rest_items(&server, &alice, list).await.is_empty());

    // Deleted: the owner's socket is told.
    let (status, _) = server.post("delete", Some(&alice.token), json!({"id": list})).await;
    assert_eq!(status, 200);
    a.settle().await;
    assert!(
        a.events
            .iter()
            .any(|e| matches!(e, ServerMessage::Removed { reason: RemovalReason::Deleted, .. }))
    );
}

#[tokio::test]
async fn a_list_made_offline_under_a_reserved_id_appears_on_the_server() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let (_, body) = server.post("reserve_ids", Some(&alice.token), json!({"count": 2})).await;
    let reserved = ListId(body["data"]["ids"][0].as_u64().unwrap());
    let mut a = SyncClient::connect(&server, &alice).await;
    let mut doc = ListDoc::new("Made on a plane").unwrap();
    doc.add_item(ItemId(1), "passport").unwrap();
    a.hold(reserved, doc);
    a.settle().await;
    assert!(a.list_errors(reserved).is_empty(), "{:?}", a.events);
    assert_eq!(
        server.lists(&alice).await,
        vec![(reserved.get(), "Made on a plane".into(), "OWNER".into())]
    );
    assert_eq!(rest_items(&server, &alice, reserved.get()).await, ["passport"]);

    // An id nobody reserved is not a way to create lists.
    let mut doc = ListDoc::new("Squatter").unwrap();
    doc.add_item(ItemId(1), "x").unwrap();
    let unreserved = ListId(reserved.get() + 1_000_000);
    a.hold(unreserved, doc);
    a.settle().await;
    assert_eq!(a.list_errors(unreserved), [ListErrorCode::NotFound]);
    assert_eq!(server.lists(&alice).await.len(), 1);
}

#[tokio::test]
async fn documents_survive_a_restart_and_compaction() {
    // Compact every 5 chunks, so the 20 edits below are mostly in snapshots.
    let mut server = TestServer::start_with(|c| c.sync.compact_after_chunks = 5).await;
    let alice = server.signup(&email("alice")).await;
    let list = server.create_list(&alice, "Durable").await;
    let id = ListId(list);
    let mut a = SyncClient::connect(&server, &alice).await;
    a.hold(id, ListDoc::empty());
    a.settle().await;
    for i in 0..20u64 {
        a.edit(id, |d| {
            d.add_item(ItemId(i + 1), &format!("item {i}")).unwrap();
        });
        a.settle().await;
    }
    drop(a);
    let data_dir = server.dir.path().to_path_buf();
    server.stop().await;
    let db = tandem_server::store::database::Database::open(
        &tandem_server::store::database::sqlite_url(&data_dir.join("tandem.db")),
    )
    .await
    .unwrap();
    let chunks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM list_changes WHERE list_id = $1")
        .bind(id.as_i64())
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(chunks < 5, "{chunks} chunks left: compaction folds them into the snapshot");
    db.close().await;

    let again = tandem_server::Server::start(crate::support::test_config(&data_dir)).await.unwrap();
    let restarted = TestServer::at(format!("http://{}", again.addr()));
    let mut fresh = SyncClient::connect(&restarted, &alice).await;
    fresh.hold(id, ListDoc::empty());
    fresh.settle().await;
    assert_eq!(fresh.doc(id).item_count().unwrap(), 20);
    assert_eq!(rest_items(&restarted, &alice, list).await.len(), 20);
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn idle_rooms_are_unloaded() {
    let server = TestServer::start_with(|c| c.sync.room_idle_secs = 1).await;
    let alice = server.signup(&email("alice")).await;
    let id = ListId(server.create_list(&alice, "Idle").await);
    let mut a = SyncClient::connect(&server, &alice).await;
    a.hold(id, ListDoc::empty());
    a.settle().await;
    assert_eq!(metric(&server, "tandem_rooms_loaded").await.as_deref(), Some("1"));
    drop(a);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&server, "tandem_rooms_loaded").await.as_deref() != Some("0") {
        assert!(tokio::time::Instant::now() < deadline, "the room stayed loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of a gauge or counter in the server's `/metrics`.
async fn metric(server: &TestServer, name: &str) -> Option<String> {
    let text =
        reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap();
    let prefix = format!("{name} ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(str::to_owned)
}

#[tokio::test]
async fn quiet_rooms_let_go_of_their_document_and_wake_for_the_next_edit() {
    let server = TestServer::start_with(|c| c.sync.room_sleep_secs = 1).await;
    let alice = server.signup(&email("alice")).await;
    let id = ListId(server.create_list(&alice, "Quiet").await);
    let mut a = SyncClient::connect(&server, &alice).await;
    let mut b = SyncClient::connect(&server, &alice).await;
    a.hold(id, ListDoc::empty());
    b.hold(id, ListDoc::empty());
    a.settle().await;
    b.settle().await;
    a.edit(id, |d| {
        d.add_item(ItemId(1), "before the nap").unwrap();
    });
    a.settle().await;
    b.wait_for(|c| c.doc(id).item_count().unwrap_or(0) == 1).await;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&server, "tandem_rooms_asleep").await.as_deref() != Some("1") {
        assert!(tokio::time::Instant::now() < deadline, "the quiet room never slept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(metric(&server, "tandem_rooms_loaded").await.as_deref(), Some("1"));

    a.edit(id, |d| {
        d.add_item(ItemId(2), "after the nap").unwrap();
    });
    a.settle().await;
    b.wait_for(|c| c.doc(id).item_count().unwrap_or(0) == 2).await;
    assert_eq!(metric(&server, "tandem_rooms_asleep").await.as_deref(), Some("0"), "it woke");
    let items: Vec<String> = b.doc(id).items().unwrap().into_iter().map(|i| i.content).collect();
    assert_eq!(items, ["before the nap", "after the nap"]);
}

#[tokio::test]
async fn every_acknowledged_change_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = crate::binary::start(dir.path());
    let server = TestServer::at(base.clone());
    let alice = server.signup(&email("alice")).await;
    let list = server.create_list(&alice, "Stream").await;
    let id = ListId(list);
    let mut a = SyncClient::connect_to(&base, &alice).await;
    a.hold(id, ListDoc::empty());
    a.settle().await;

    // Push a stream of edits without waiting; note the newest one the server acknowledged
    // (its sync message advertises heads that include it), and kill the server mid-stream.
    let mut acknowledged: Option<u64> = None;
    let mut heads_of = std::collections::HashMap::new();
    let mut killed = false;
    for i in 1..=400u64 {
        a.edit(id, |d| {
            d.add_item(ItemId(i), &format!("edit {i}")).unwrap();
        });
        let (doc, state) = a.docs.get_mut(&id).unwrap();
        heads_of.insert(doc.heads()[0], i);
        let message = doc.automerge_mut().sync().generate_sync_message(state);
        if let Some(m) = message {
            let frame = ClientMessage::Sync { list: id, data: m.encode() }.encode();
            if a.ws.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        while let Some(Some(message)) = a.next_within(Duration::from_millis(2)).await {
            a.apply(message);
        }
        let theirs = a.docs[&id].1.their_heads.clone().unwrap_or_default();
        for head in theirs {
            if let Some(&n) = heads_of.get(&head) {
                acknowledged = Some(acknowledged.map_or(n, |m: u64| m.max(n)));
            }
        }
        if !killed && acknowledged.is_some_and(|n| n >= 30) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            killed = true;
        }
        if killed && i > acknowledged.unwrap() + 20 {
            break;
        }
    }
    assert!(killed, "the server acknowledged edits while they streamed");
    let acknowledged = acknowledged.unwrap();

    let (mut child, base) = crate::binary::start(dir.path());
    let server = TestServer::at(base);
    let (status, body) =
        server.get(&format!("/api/todolist/read?id={list}"), Some(&alice.token)).await;
    assert_eq!(status, 200, "{body}");
    let stored: std::collections::HashSet<u64> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    for n in 1..=acknowledged {
        assert!(
            stored.contains(&n),
            "acknowledged edit {n} was lost (acknowledged up to {acknowledged})"
        );
    }
    // The document itself holds them too.
    let mut again = SyncClient::connect_to(&server.base, &alice).await;
    again.hold(id, ListDoc::empty());
    again.settle().await;
    assert!(again.doc(id).item_count().unwrap() as u64 >= acknowledged);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn shutting_down_tells_open_sockets_and_closes_them() {
    let mut server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let mut a = SyncClient::connect(&server, &alice).await;
    server.stop().await;
    match a.next().await {
        Some(ServerMessage::Error { code, .. }) => assert_eq!(code, ErrorCode::ShuttingDown),
        other => panic!("expected ShuttingDown, got {other:?}"),
    }
    assert!(a.next().await.is_none(), "then the socket closes");
}

#[tokio::test]
async fn a_socket_over_its_message_rate_is_told_before_it_is_closed() {
    let server = TestServer::start_with(|c| c.sync.messages_per_second = 3).await;
    let alice = server.signup(&email("alice")).await;
    let mut a = SyncClient::connect(&server, &alice).await;
    for n in 0..20u64 {
        a.send(ClientMessage::Unsubscribe { list: ListId(n + 1) }).await;
    }
    match a.next().await {
        Some(ServerMessage::Error { code, .. }) => assert_eq!(code, ErrorCode::RateLimited),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}
