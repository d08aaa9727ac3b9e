//! `GET /api/todolist/history`: a list's verified history over REST. Until the rooms record
//! the changes they accept, the rows are written the way a room writes them, through the
//! store's save, by a second store opened on the server's own database files.

use serde_json::{Value, json};
use tandem_protocol::history::ChangeAction::{self, *};
use tandem_protocol::{ItemId, ListDoc, ListId, UserId};
use tandem_server::store::documents::Save;
use tandem_server::store::lists::ItemRecord;
use tandem_server::store::{AcceptedChange, ActorBinding, Store};

use crate::support::{TestServer, TestUser, email};

/// The server's store, opened beside it on the same SQLite file (the embedded default).
async fn beside(server: &TestServer) -> Store {
    Store::open(&[tandem_server::config::single_sqlite_shard()], server.dir.path()).await.unwrap()
}

/// One change to make: what the history will say it did, and the edit.
type Edit<'a> = (ChangeAction, &'a dyn Fn(&mut ListDoc));

/// Saves, as a room would, one change per entry of `edits` made by `user` with `actor`:
/// returns each change's hash, in order.
async fn record(
    store: &Store,
    list: u64,
    user: &TestUser,
    actor: &[u8],
    edits: &[Edit<'_>],
) -> Vec<String> {
    let list = ListId(list);
    let mut doc = ListDoc::empty();
    for part in store.load_document(list).await.unwrap().parts {
        doc.load_incremental(&part).unwrap();
    }
    doc.automerge_mut().set_actor(tandem_protocol::automerge::ActorId::from(actor));
    let before = doc.heads();
    let mut accepted = Vec::new();
    for (action, edit) in edits {
        edit(&mut doc);
        let hash = doc.heads()[0].0;
        accepted.push(AcceptedChange { hash, user: UserId(user.id), actions: vec![*action] });
    }
    let upserts = doc.items().unwrap().into_iter().map(ItemRecord::from).collect();
    let save = Save {
        list,
        chunk: doc.save_after(&before),
        title: doc.title().unwrap(),
        upserts,
        removed: Vec::new(),
        replace_all: false,
        new_actors: vec![ActorBinding { actor: actor.to_vec(), user: UserId(user.id) }],
        accepted: accepted.clone(),
    };
    store.save_changes(save).await.unwrap();
    accepted.iter().map(|c| c.hash.iter().map(|b| format!("{b:02x}")).collect()).collect()
}

/// `history` as `user` with `query` appended: (status, body).
async fn history(server: &TestServer, user: Option<&TestUser>, query: &str) -> (u16, Value) {
    server.get(&format!("/api/todolist/history?{query}"), user.map(|u| u.token.as_str())).await
}

/// (email, actions) of each entry of a page.
fn who_did(body: &Value) -> Vec<(String, Value)> {
    body["data"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["email"].as_str().unwrap().to_owned(), c["actions"].clone()))
        .collect()
}

fn hashes_of(body: &Value) -> Vec<String> {
    body["data"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hash"].as_str().unwrap().to_owned())
        .collect()
}

/// A list shared with an editor and a viewer, whose editor added an item and checked it off,
/// and whose owner renamed it.
struct Scene {
    server: TestServer,
    owner: TestUser,
    editor: TestUser,
    viewer: TestUser,
    stranger: TestUser,
    list: u64,
    /// Hashes of: added, checked (editor), renamed (owner).
    hashes: Vec<String>,
}

async fn scene() -> Scene {
    let server = TestServer::start().await;
    let owner = server.signup(&email("owner")).await;
    let editor = server.signup(&email("editor")).await;
    let viewer = server.signup(&email("viewer")).await;
    let stranger = server.signup(&email("stranger")).await;
    let list = server.create_list(&owner, "Groceries").await;
    server.share(&owner, list, &editor.email, "EDITOR").await;
    server.share(&owner, list, &viewer.email, "VIEWER").await;
    let store = beside(&server).await;
    let mut hashes = record(
        &store,
        list,
        &editor,
        &[0xed; 16],
        &[
            (Added { item: ItemId(7) }, &|d| drop(d.add_item(ItemId(7), "milk").unwrap())),
            (Checked { item: ItemId(7) }, &|d| d.set_done(ItemId(7), true).unwrap()),
        ],
    )
    .await;
    hashes.extend(
        record(
            &store,
            list,
            &owner,
            &[0x0a; 16],
            &[(Renamed, &|d| d.set_title("Weekly groceries").unwrap())],
        )
        .await,
    );
    store.close().await;
    Scene { server, owner, editor, viewer, stranger, list, hashes }
}

#[tokio::test]
async fn every_member_reads_who_made_each_change_and_no_one_else_does() {
    let Scene { server, owner, editor, viewer, stranger, list, hashes } = scene().await;
    for member in [&owner, &editor, &viewer] {
        let (status, body) = history(&server, Some(member), &format!("id={list}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            who_did(&body),
            [
                (owner.email.clone(), json!([{"action": "renamed"}])),
                (editor.email.clone(), json!([{"action": "checked", "item": 7}])),
                (editor.email.clone(), json!([{"action": "added", "item": 7}])),
            ]
        );
        assert_eq!(hashes_of(&body), [hashes[2].clone(), hashes[1].clone(), hashes[0].clone()]);
        let newest = &body["data"]["changes"][0];
        assert_eq!(newest["user_id"], owner.id);
        let at = newest["accepted_at"].as_str().unwrap();
        assert!(at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T', "{at}");
        assert_eq!(body["data"]["next_before"], Value::Null);
    }

    // Anyone else: exactly what `read` answers.
    for query in [format!("id={list}"), format!("id={list}&item=7")] {
        let (status, body) = history(&server, Some(&stranger), &query).await;
        assert_eq!((status, body["message"].as_str()), (404, Some("List not found.")));
        let (read_status, _) =
            server.get(&format!("/api/todolist/read?id={list}"), Some(&stranger.token)).await;
        assert_eq!(read_status, 404);
        assert_eq!(history(&server, None, &query).await.0, 401);
        let forged = TestUser { token: "not.a.token".into(), ..owner.clone() };
        assert_eq!(history(&server, Some(&forged), &query).await.0, 401);
    }
    assert_eq!(history(&server, Some(&owner), "id=123456789").await.0, 404);

    // A member who leaves stops seeing it; their changes keep their name.
    let (status, _) = server
        .post(
            "unshare",
            Some(&editor.token),
            json!({"list_id": list, "target_email": editor.email}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(history(&server, Some(&editor), &format!("id={list}")).await.0, 404);
    let (_, body) = history(&server, Some(&viewer), &format!("id={list}")).await;
    assert_eq!(who_did(&body)[1].0, editor.email);

    // A deleted list has no history for anyone.
    let (status, _) = server.post("delete", Some(&owner.token), json!({"id": list})).await;
    assert_eq!(status, 200);
    assert_eq!(history(&server, Some(&owner), &format!("id={list}")).await.0, 404);
}

#[tokio::test]
async fn history_comes_in_pages_and_by_item() {
    let Scene { server, owner, editor, viewer, list, hashes, .. } = scene().await;
    let store = beside(&server).await;
    let more = record(
        &store,
        list,
        &owner,
        &[0x0a; 16],
        &[
            (Added { item: ItemId(8) }, &|d| drop(d.add_item(ItemId(8), "eggs").unwrap())),
            (Unchecked { item: ItemId(7) }, &|d| d.set_done(ItemId(7), false).unwrap()),
        ],
    )
    .await;
    store.close().await;
    let all: Vec<&String> = [&more[1], &more[0], &hashes[2], &hashes[1], &hashes[0]].into();

    // Pages of two, following `next_before`, give every change once, newest first.
    let mut seen = Vec::new();
    let mut query = format!("id={list}&limit=2");
    loop {
        let (status, body) = history(&server, Some(&viewer), &query).await;
        assert_eq!(status, 200, "{body}");
        let page = hashes_of(&body);
        assert!(page.len() <= 2);
        seen.extend(page);
        match body["data"]["next_before"].as_i64() {
            Some(cursor) => query = format!("id={list}&limit=2&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.iter().collect::<Vec<_>>(), all);

    // Who checked item 7 off, and who unchecked it since.
    let (_, body) = history(&server, Some(&viewer), &format!("id={list}&item=7")).await;
    assert_eq!(
        who_did(&body),
        [
            (owner.email.clone(), json!([{"action": "unchecked", "item": 7}])),
            (editor.email.clone(), json!([{"action": "checked", "item": 7}])),
            (editor.email.clone(), json!([{"action": "added", "item": 7}])),
        ]
    );
    let (_, body) = history(&server, Some(&viewer), &format!("id={list}&item=7&limit=1")).await;
    let cursor = body["data"]["next_before"].as_i64().unwrap();
    let (_, body) =
        history(&server, Some(&viewer), &format!("id={list}&item=7&before={cursor}")).await;
    assert_eq!(hashes_of(&body), [hashes[1].clone(), hashes[0].clone()]);
    let (_, body) = history(&server, Some(&viewer), &format!("id={list}&item=999")).await;
    assert_eq!(body["data"], json!({"changes": [], "next_before": null}));
}

#[tokio::test]
async fn malformed_or_out_of_range_history_queries_are_refused() {
    let server = TestServer::start().await;
    let owner = server.signup(&email("owner")).await;
    let list = server.create_list(&owner, "L").await;
    for (query, status) in [
        (String::new(), 400),
        ("id=abc".to_owned(), 400),
        (format!("id={list}&limit=x"), 400),
        (format!("id={list}&limit=0"), 422),
        (format!("id={list}&limit=101"), 422),
        (format!("id={list}&item=0"), 422),
        (format!("id={list}&item=9007199254740992"), 422),
        (format!("id={list}&before=0"), 422),
        (format!("id={list}&before=18446744073709551615"), 422),
        ("id=0".to_owned(), 404),
    ] {
        let (got, body) = history(&server, Some(&owner), &query).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    let (status, body) = history(&server, Some(&owner), &format!("id={list}&limit=100")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!({"changes": [], "next_before": null}));

    let (_, doc) = server.get("/api/openapi.json", None).await;
    let path = &doc["paths"]["/api/todolist/history"]["get"];
    let params: Vec<&str> = path["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["id", "item", "before", "limit"]);
    assert!(doc["components"]["schemas"]["ChangeData"].is_object());
}
