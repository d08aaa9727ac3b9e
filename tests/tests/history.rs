//! Actors and history from the client's side, against a real in-process server over real
//! sockets: the client makes its changes with one Automerge actor per signed-in user per
//! device (stable across reloads and processes, new at each sign-in), and reads a list's
//! verified history over REST.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tandem_client::history::HistoryQuery;
use tandem_client::{Client, ClientConfig, Error, ListId, SyncEngine};
use tandem_protocol::automerge::ActorId;
use tandem_protocol::history::ChangeAction::{self, *};
use tandem_protocol::{ItemId, ListDoc, UserId};
use tandem_server::store::documents::Save;
use tandem_server::store::lists::ItemRecord;
use tandem_server::store::{AcceptedChange, ActorBinding, Store};
use tandem_server::{Config, Server};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";

struct TestServer {
    server: Option<Server>,
    base: String,
    dir: TempDir,
}

impl TestServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::embedded(dir.path());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.throttle.per_address_per_minute = 100_000;
        config.throttle.per_account_per_minute = 1000;
        let server = Server::start(config).await.expect("server starts");
        let base = format!("http://{}", server.addr());
        Self { server: Some(server), base, dir }
    }

    /// The server's store, opened beside it on its own SQLite file.
    async fn store(&self) -> Store {
        Store::open(&[tandem_server::config::single_sqlite_shard()], self.dir.path()).await.unwrap()
    }

    /// `POST /api/todolist/{call}` as `token`: the envelope's `data`.
    async fn post(&self, call: &str, token: &str, body: serde_json::Value) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(format!("{}/api/todolist/{call}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<serde_json::Value>().await.unwrap()["data"].clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown_token().cancel();
        }
    }
}

fn unique_email(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{name}-{}-{nanos}@example.com", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn open(dir: &TempDir, server: &TestServer) -> Client {
    Client::open(ClientConfig::new(dir.path()).with_server_url(&server.base)).unwrap()
}

/// Registers, verifies and signs in `email` on `client`.
async fn sign_up(client: &Client, email: &str) -> UserId {
    let code = client.register(email, PASSWORD).await.unwrap().demo_code.unwrap();
    client.verify(email, &code).await.unwrap();
    client.login(email, PASSWORD).await.unwrap().id
}

/// The actor of every change of `list`'s document on this device, oldest first.
fn actors(client: &Client, list: ListId) -> Vec<ActorId> {
    let mut doc = ListDoc::load(&client.document_bytes(list).unwrap()).unwrap();
    doc.automerge_mut().get_changes(&[]).iter().map(|c| c.actor_id().clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_keeps_one_actor_per_sign_in_across_reloads_and_processes() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();

    // Before any sign-in: as before, every load of a document draws a fresh actor.
    let offline = open(&dir, &server);
    let early = offline.create_list("Before signing in").unwrap().id;
    offline.add_item(early, "a").unwrap();
    drop(offline);
    open(&dir, &server).add_item(early, "b").unwrap();
    let before = actors(&open(&dir, &server), early);
    assert_eq!(before.len(), 3);
    assert_ne!(before[1], before[2], "no device actor before the first sign-in");

    // Signed in: every change after the creating one carries the device's actor, whichever
    // load or process made it.
    let client = open(&dir, &server);
    sign_up(&client, &unique_email("device")).await;
    let list = client.create_list("Groceries").unwrap().id;
    let milk = client.add_item(list, "milk").unwrap();
    client.add_item(early, "c").unwrap();
    let reloaded = open(&dir, &server);
    reloaded.set_done(list, milk, true).unwrap();
    let second_process = open(&dir, &server);
    second_process.edit_item(list, milk, "oat milk").unwrap();
    client.add_item(list, "eggs").unwrap(); // the first process again, after the second wrote
    reloaded.remove_item(list, milk).unwrap();
    let signed_in = actors(&client, list);
    assert_eq!(signed_in.len(), 6);
    let device = signed_in[1].clone();
    assert!(signed_in[1..].iter().all(|a| *a == device), "{signed_in:?}");
    assert_ne!(signed_in[0], device, "the creating change keeps ListDoc::new's actor");
    assert_eq!(actors(&client, early).last(), Some(&device), "older lists too");

    // The server takes every one of those changes: one actor, sequence numbers in order.
    let report = SyncEngine::new(Arc::new(open(&dir, &server)))
        .sync_once(Duration::from_secs(20))
        .await
        .unwrap();
    assert!(report.in_step, "{report:?}");

    // A new sign-in draws a new actor, for documents loaded before it and after.
    client.logout().unwrap();
    client.login(&client.account().unwrap().unwrap().user.unwrap().email, PASSWORD).await.unwrap();
    client.add_item(list, "bread").unwrap();
    open(&dir, &server).add_item(list, "butter").unwrap();
    let after = actors(&client, list);
    let (bread, butter) = (&after[after.len() - 2], &after[after.len() - 1]);
    assert_ne!(*bread, device);
    assert_eq!(bread, butter);
}

/// One change to make: what the history will say it did, and the edit.
type Edit<'a> = (ChangeAction, &'a dyn Fn(&mut ListDoc));

/// Saves, as a room would, one change per entry of `edits` to `list`, made by `user` with
/// `actor`: returns each change's hash in hexadecimal.
async fn record(
    store: &Store,
    list: ListId,
    user: UserId,
    actor: &[u8],
    edits: &[Edit<'_>],
) -> Vec<String> {
    let mut doc = ListDoc::empty();
    for part in store.load_document(list).await.unwrap().parts {
        doc.load_incremental(&part).unwrap();
    }
    doc.automerge_mut().set_actor(ActorId::from(actor));
    let before = doc.heads();
    let mut accepted = Vec::new();
    for (action, edit) in edits {
        edit(&mut doc);
        accepted.push(AcceptedChange { hash: doc.heads()[0].0, user, actions: vec![*action] });
    }
    store
        .save_changes(Save {
            list,
            chunk: doc.save_after(&before),
            title: doc.title().unwrap(),
            upserts: doc.items().unwrap().into_iter().map(ItemRecord::from).collect(),
            removed: Vec::new(),
            replace_all: false,
            new_actors: vec![ActorBinding { actor: actor.to_vec(), user }],
            accepted: accepted.clone(),
        })
        .await
        .unwrap();
    accepted.iter().map(|c| c.hash.iter().map(|b| format!("{b:02x}")).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_who_made_each_change_from_the_server() {
    let server = TestServer::start().await;
    let dirs: Vec<TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let [owner, editor, viewer, stranger] = [0, 1, 2, 3].map(|i| open(&dirs[i], &server));
    let mut ids = Vec::new();
    let mut emails = Vec::new();
    for (client, name) in [(&owner, "owner"), (&editor, "editor"), (&viewer, "viewer")] {
        let email = unique_email(name);
        ids.push(sign_up(client, &email).await);
        emails.push(email);
    }
    sign_up(&stranger, &unique_email("stranger")).await;

    // A list made on the server, shared, and changed by the owner and the editor.
    let token = owner.token().unwrap();
    let list = ListId(
        server.post("create", &token, json!({"title": "Groceries"})).await["id"].as_u64().unwrap(),
    );
    owner.share_list(list, &emails[1], tandem_client::Role::Editor).await.unwrap();
    owner.share_list(list, &emails[2], tandem_client::Role::Viewer).await.unwrap();
    let store = server.store().await;
    let mut hashes = record(
        &store,
        list,
        ids[0],
        &[0x0a; 16],
        &[(Added { item: ItemId(1) }, &|d| drop(d.add_item(ItemId(1), "milk").unwrap()))],
    )
    .await;
    hashes.extend(
        record(
            &store,
            list,
            ids[1],
            &[0xed; 16],
            &[
                (Added { item: ItemId(2) }, &|d| drop(d.add_item(ItemId(2), "eggs").unwrap())),
                (Checked { item: ItemId(1) }, &|d| d.set_done(ItemId(1), true).unwrap()),
            ],
        )
        .await,
    );
    store.close().await;

    // Every member reads the same history, newest first, with who and when.
    for member in [&owner, &editor, &viewer] {
        let page = member.history(list, HistoryQuery::default()).await.unwrap();
        let got: Vec<_> = page
            .changes
            .iter()
            .map(|c| (c.hash.as_str(), c.user_id, c.email.as_deref(), c.actions.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    hashes[2].as_str(),
                    ids[1],
                    Some(emails[1].as_str()),
                    vec![Checked { item: ItemId(1) }]
                ),
                (
                    hashes[1].as_str(),
                    ids[1],
                    Some(emails[1].as_str()),
                    vec![Added { item: ItemId(2) }]
                ),
                (
                    hashes[0].as_str(),
                    ids[0],
                    Some(emails[0].as_str()),
                    vec![Added { item: ItemId(1) }]
                ),
            ]
        );
        assert!(page.changes.iter().all(|c| c.accepted_at.ends_with('Z')));
        assert_eq!(page.next_before, None);
    }

    // Who checked item 1 off, a page of one at a time.
    let first =
        viewer.history(list, HistoryQuery { limit: Some(1), ..HistoryQuery::item(ItemId(1)) });
    let first = first.await.unwrap();
    assert_eq!(first.changes[0].email.as_deref(), Some(emails[1].as_str()));
    assert_eq!(first.changes[0].actions, [Checked { item: ItemId(1) }]);
    let cursor = first.next_before.expect("an older page");
    let older = viewer.history(list, HistoryQuery::item(ItemId(1)).before(cursor)).await.unwrap();
    assert_eq!(older.changes.iter().map(|c| &c.hash).collect::<Vec<_>>(), [&hashes[0]]);
    assert_eq!(older.next_before, None);

    // Not a member, not signed in, or not on the server yet: clear errors.
    let refused = stranger.history(list, HistoryQuery::default()).await;
    assert!(matches!(refused, Err(Error::NotFound(_))), "{refused:?}");
    let bad = viewer.history(list, HistoryQuery { limit: Some(0), ..HistoryQuery::default() });
    assert!(matches!(bad.await, Err(Error::InvalidInput(_))));
    let offline_dir = tempfile::tempdir().unwrap();
    let signed_out = open(&offline_dir, &server);
    let local = signed_out.create_list("Only here").unwrap().id;
    let refused = signed_out.history(local, HistoryQuery::default()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let refused = signed_out.history(list, HistoryQuery::default()).await;
    assert!(matches!(refused, Err(Error::Unauthorized(_))), "{refused:?}");
}
