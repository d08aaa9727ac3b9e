//! The client's `SyncEngine` against a real in-process server on a random port, over real
//! sockets: offline edits on two devices merge and the server's REST `read` agrees; a list
//! created before ever signing in gets a server id; background sync delivers edits without a
//! manual sync; a viewer's edit is refused and reaches no one; deletions and unshares reach
//! the other devices.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tandem_client::events::ChangeKind;
use tandem_client::sync::ListSyncStatus;
use tandem_client::{
    Client, ClientConfig, Error, Item, ListId, Role, SyncConfig, SyncEngine, SyncReport,
};
use tandem_server::{Config, Server};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";
const ROUND: Duration = Duration::from_secs(20);

struct TestServer {
    server: Option<Server>,
    base: String,
    _dir: TempDir,
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
        Self { server: Some(server), base, _dir: dir }
    }

    /// `GET /api/todolist/read?id=` as `token`: the list's `data`.
    async fn read(&self, token: &str, list: ListId) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/api/todolist/read?id={list}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown_token().cancel();
        }
    }
}

/// One device: its own data folder and client.
struct Device {
    _dir: TempDir,
    client: Arc<Client>,
    email: String,
}

fn unique_email(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{name}-{}-{nanos}@example.com", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Device {
    /// A device on `server` with no account yet.
    fn new(server: &TestServer, name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::open(ClientConfig::new(dir.path()).with_server_url(&server.base))
            .expect("store opens");
        Self { _dir: dir, client: Arc::new(client), email: unique_email(name) }
    }

    /// Registers, verifies and signs in through the client's own REST calls.
    async fn sign_up(&self) {
        let outcome = self.client.register(&self.email, PASSWORD).await.unwrap();
        let code = outcome.demo_code.expect("the embedded server runs in demo mode");
        self.client.verify(&self.email, &code).await.unwrap();
        self.client.login(&self.email, PASSWORD).await.unwrap();
    }

    async fn signed_up(server: &TestServer, name: &str) -> Self {
        let device = Self::new(server, name);
        device.sign_up().await;
        device
    }

    async fn sync(&self) -> SyncReport {
        SyncEngine::new(Arc::clone(&self.client)).sync_once(ROUND).await.unwrap()
    }

    async fn sync_in_step(&self) -> SyncReport {
        let report = self.sync().await;
        assert!(report.in_step, "not in step: {report:?}");
        report
    }

    fn items(&self, list: ListId) -> Vec<Item> {
        self.client.list(list).unwrap().items
    }

    fn token(&self) -> String {
        self.client.token().unwrap()
    }
}

/// Waits (without any timing claim: up to a generous limit) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

fn rest_items(body: &Value) -> Vec<(u64, String, bool)> {
    body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["id"].as_u64().unwrap(),
                i["content"].as_str().unwrap().to_owned(),
                i["done"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn local_items(items: &[Item]) -> Vec<(u64, String, bool)> {
    items.iter().map(|i| (i.id.0, i.content.clone(), i.done)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_on_two_devices_merge_and_rest_agrees() {
    let server = TestServer::start().await;
    let alice = Device::signed_up(&server, "alice").await;
    let bob = Device::signed_up(&server, "bob").await;

    // Made offline under a reserved id: the first sync creates it on the server.
    let list = alice.client.create_list("Groceries").unwrap().id;
    let milk = alice.client.add_item(list, "milk").unwrap();
    let eggs = alice.client.add_item(list, "eggs").unwrap();
    let flour = alice.client.add_item(list, "flour").unwrap();
    let report = alice.sync_in_step().await;
    assert!(report.remapped.is_empty(), "a reserved id stays the list's id");
    alice.client.share_list(list, &bob.email, Role::Editor).await.unwrap();
    bob.sync_in_step().await;
    assert_eq!(bob.items(list), alice.items(list));
    assert_eq!(bob.client.list(list).unwrap().title, "Groceries");
    assert_eq!(bob.client.list(list).unwrap().role, Role::Editor);

    // Both offline: adds, the same item's text, done, moves, removes, a rename.
    alice.client.edit_item(list, milk, "oat milk").unwrap();
    alice.client.set_done(list, eggs, true).unwrap();
    let bread = alice.client.add_item(list, "bread").unwrap();
    alice.client.move_item(list, flour, None).unwrap();
    bob.client.edit_item(list, milk, "milk x2").unwrap();
    let jam = bob.client.add_item(list, "jam").unwrap();
    bob.client.move_item(list, milk, Some(jam)).unwrap();
    bob.client.remove_item(list, eggs).unwrap();
    bob.client.rename_list(list, "Weekly groceries").unwrap();

    alice.sync_in_step().await;
    bob.sync_in_step().await;
    alice.sync_in_step().await;

    let merged = alice.items(list);
    assert_eq!(merged, bob.items(list), "both devices show one list");
    assert_eq!(alice.client.list(list).unwrap().title, "Weekly groceries");
    let ids: Vec<u64> = merged.iter().map(|i| i.id.0).collect();
    assert!(ids.contains(&bread.0) && ids.contains(&jam.0), "every add is there: {ids:?}");
    assert!(!ids.contains(&eggs.0), "the removal holds: {ids:?}");
    let milk_text = &merged.iter().find(|i| i.id == milk).unwrap().content;
    assert!(milk_text.contains("oat") && milk_text.contains("x2"), "text merged: {milk_text}");

    let (status, body) = server.read(&alice.token(), list).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["title"], "Weekly groceries");
    assert_eq!(rest_items(&body), local_items(&merged), "REST read agrees, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_made_before_signing_in_gets_a_server_id_at_first_sync() {
    let server = TestServer::start().await;
    let device = Device::new(&server, "early");
    let provisional = device.client.create_list("Made offline").unwrap().id;
    device.client.add_item(provisional, "first").unwrap();
    device.sign_up().await;
    let report = device.sync_in_step().await;
    assert_eq!(report.remapped.len(), 1, "{report:?}");
    let (old, list) = report.remapped[0];
    assert_eq!(old, provisional);
    assert_eq!(device.items(list)[0].content, "first");
    let (status, body) = server.read(&device.token(), list).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"], "OWNER");
    assert_eq!(rest_items(&body), local_items(&device.items(list)));
    // And a second round has nothing to do.
    let again = device.sync_in_step().await;
    assert!(again.lists.iter().all(|l| l.status == ListSyncStatus::InStep));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sync_delivers_edits_both_ways_without_a_manual_sync() {
    let server = TestServer::start().await;
    let alice = Device::signed_up(&server, "alice").await;
    let bob = Device::signed_up(&server, "bob").await;
    let list = alice.client.create_list("Live").unwrap().id;
    alice.sync_in_step().await;
    alice.client.share_list(list, &bob.email, Role::Editor).await.unwrap();

    let remote = Arc::new(Mutex::new(0usize));
    let seen = Arc::clone(&remote);
    bob.client.subscribe(move |e| {
        if e.kind == ChangeKind::RemoteChanged {
            *seen.lock().unwrap() += 1;
        }
    });
    let alice_sync = SyncEngine::new(Arc::clone(&alice.client)).start().unwrap();
    let bob_sync = SyncEngine::new(Arc::clone(&bob.client)).start().unwrap();

    // Bob learns of the shared list while connected (Access), and gets its content.
    eventually("bob sees the shared list", || bob.client.list(list).is_ok()).await;
    let milk = alice.client.add_item(list, "milk").unwrap();
    eventually("alice's item reaches bob", || {
        bob.client.list(list).is_ok_and(|l| l.items.iter().any(|i| i.id == milk))
    })
    .await;
    assert!(*remote.lock().unwrap() > 0, "bob's app was told");
    bob.client.set_done(list, milk, true).unwrap();
    eventually("bob's check reaches alice", || {
        alice.items(list).iter().any(|i| i.id == milk && i.done)
    })
    .await;
    assert!(alice_sync.status().connected && bob_sync.status().connected);
    alice_sync.stop();
    bob_sync.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_edit_is_refused_and_reaches_no_one() {
    let server = TestServer::start().await;
    let alice = Device::signed_up(&server, "alice").await;
    let vic = Device::signed_up(&server, "vic").await;
    let list = alice.client.create_list("Look, don't touch").unwrap().id;
    alice.client.add_item(list, "original").unwrap();
    alice.sync_in_step().await;
    alice.client.share_list(list, &vic.email, Role::Viewer).await.unwrap();
    vic.sync_in_step().await;
    assert_eq!(vic.client.list(list).unwrap().role, Role::Viewer);
    assert_eq!(vic.items(list), alice.items(list));

    let refused = vic.client.add_item(list, "sneaky");
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    vic.sync_in_step().await;
    alice.sync_in_step().await;
    assert_eq!(alice.items(list).len(), 1);
    let (_, body) = server.read(&alice.token(), list).await;
    assert_eq!(rest_items(&body).len(), 1, "{body}");

    // The viewer still receives the owner's edits.
    alice.client.add_item(list, "second").unwrap();
    alice.sync_in_step().await;
    vic.sync_in_step().await;
    assert_eq!(vic.items(list), alice.items(list));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_and_unsharing_reach_the_other_devices() {
    let server = TestServer::start().await;
    let alice = Device::signed_up(&server, "alice").await;
    let bob = Device::signed_up(&server, "bob").await;
    let doomed = alice.client.create_list("Doomed").unwrap().id;
    let private = alice.client.create_list("No longer shared").unwrap().id;
    alice.sync_in_step().await;
    alice.client.share_list(doomed, &bob.email, Role::Editor).await.unwrap();
    alice.client.share_list(private, &bob.email, Role::Editor).await.unwrap();
    bob.sync_in_step().await;
    assert_eq!(bob.client.lists().unwrap().len(), 2);

    alice.client.delete_list(doomed).unwrap();
    let report = alice.sync_in_step().await;
    assert_eq!(report.deleted, vec![doomed]);
    let (status, _) = server.read(&alice.token(), doomed).await;
    assert_eq!(status, 404, "the server deleted it");
    alice.client.unshare_list(private, &bob.email).await.unwrap();

    bob.sync_in_step().await;
    assert!(bob.client.lists().unwrap().is_empty(), "{:?}", bob.client.lists());
}

/// A TCP relay in front of the server that the test can cut (dropping every connection and
/// refusing new ones) and restore, possibly towards a restarted server.
struct Relay {
    addr: std::net::SocketAddr,
    target: Arc<Mutex<Option<std::net::SocketAddr>>>,
    cuts: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(Some(target)));
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let (to, cut) = (Arc::clone(&target), cuts.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let Some(target) = *to.lock().unwrap() else { continue };
                let mut cut = cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, target, cuts }
    }

    /// Drops every relayed connection; new ones are closed at once.
    fn cut(&self) {
        *self.target.lock().unwrap() = None;
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Relays to `target` again.
    fn restore(&self, target: std::net::SocketAddr) {
        *self.target.lock().unwrap() = Some(target);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sync_reconnects_after_a_server_restart_and_pushes_what_was_missed() {
    let mut server = TestServer::start().await;
    let relay = Relay::start(server.server.as_ref().unwrap().addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(
        ClientConfig::new(dir.path()).with_server_url(format!("http://{}", relay.addr)),
    )
    .unwrap();
    let alice = Device { _dir: dir, client: Arc::new(client), email: unique_email("alice") };
    alice.sign_up().await;
    let list = alice.client.create_list("Survives restarts").unwrap().id;
    alice.client.add_item(list, "before").unwrap();
    alice.sync_in_step().await;
    let config = SyncConfig {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..SyncConfig::default()
    };
    let handle = SyncEngine::with_config(Arc::clone(&alice.client), config).start().unwrap();
    eventually("connected", || handle.status().connected).await;

    // The server goes away (the relay drops the socket, as a dying process would).
    relay.cut();
    let running = server.server.take().unwrap();
    running.shutdown_token().cancel();
    eventually("the engine notices", || !handle.status().connected).await;
    let missed = alice.client.add_item(list, "while the server was down").unwrap();

    let mut config = Config::embedded(server._dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.throttle.per_address_per_minute = 100_000;
    config.throttle.per_account_per_minute = 1000;
    let restarted = Server::start(config).await.expect("server restarts");
    relay.restore(restarted.addr());
    server.base = format!("http://{}", restarted.addr());
    server.server = Some(restarted);
    let token = alice.token();
    let mut on_server = false;
    for _ in 0..400 {
        let (status, body) = server.read(&token, list).await;
        if status == 200 && rest_items(&body).iter().any(|(id, _, _)| *id == missed.0) {
            on_server = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(on_server, "the edit made while the server was down reached it after the restart");
    assert!(handle.status().connections >= 2, "{:?}", handle.status());
    handle.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_made_offline_before_a_downgrade_to_viewer_are_refused_reported_and_undone() {
    let server = TestServer::start().await;
    let alice = Device::signed_up(&server, "alice").await;
    let bob = Device::signed_up(&server, "bob").await;
    let list = alice.client.create_list("Downgraded").unwrap().id;
    alice.client.add_item(list, "kept").unwrap();
    alice.sync_in_step().await;
    alice.client.share_list(list, &bob.email, Role::Editor).await.unwrap();
    bob.sync_in_step().await;

    // Bob edits offline while alice makes him a viewer.
    bob.client.add_item(list, "made as an editor, offline").unwrap();
    alice.client.share_list(list, &bob.email, Role::Viewer).await.unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    bob.client.subscribe(move |e| {
        if let ChangeKind::SyncError { code, .. } = &e.kind {
            seen.lock().unwrap().push((e.list_id, code.clone()));
        }
    });
    let report = bob.sync().await;
    assert!(!report.in_step, "the refusal is reported: {report:?}");
    assert_eq!(report.failures[0].code, "forbidden", "{report:?}");
    assert_eq!(errors.lock().unwrap().as_slice(), &[(list, "forbidden".to_owned())]);
    assert_eq!(bob.client.list(list).unwrap().role, Role::Viewer);
    assert_eq!(bob.items(list), alice.items(list), "bob's refused item is undone");

    alice.sync_in_step().await;
    assert_eq!(alice.items(list).len(), 1);
    let (_, body) = server.read(&alice.token(), list).await;
    assert_eq!(rest_items(&body).len(), 1, "{body}");
    bob.sync_in_step().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_device_drops_lists_deleted_or_unshared_elsewhere() {
    let server = TestServer::start().await;
    let alice = Device::signed_up(&server, "alice").await;
    let bob = Device::signed_up(&server, "bob").await;
    let doomed = alice.client.create_list("Doomed").unwrap().id;
    let private = alice.client.create_list("Private again").unwrap().id;
    alice.sync_in_step().await;
    alice.client.share_list(doomed, &bob.email, Role::Editor).await.unwrap();
    alice.client.share_list(private, &bob.email, Role::Viewer).await.unwrap();
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&deleted);
    bob.client.subscribe(move |e| {
        if e.kind == ChangeKind::Deleted {
            seen.lock().unwrap().push(e.list_id);
        }
    });
    let bob_sync = SyncEngine::new(Arc::clone(&bob.client)).start().unwrap();
    eventually("bob has both lists", || bob.client.lists().is_ok_and(|l| l.len() == 2)).await;

    alice.client.delete_list(doomed).unwrap();
    alice.sync_in_step().await;
    alice.client.unshare_list(private, &bob.email).await.unwrap();
    eventually("both lists leave bob's device", || bob.client.lists().is_ok_and(|l| l.is_empty()))
        .await;
    // Listeners run just after the commit that removed the list, so give them that moment.
    eventually("bob's app is told", || deleted.lock().unwrap().len() >= 2).await;
    let mut told = deleted.lock().unwrap().clone();
    told.sort();
    let mut expected = vec![doomed, private];
    expected.sort();
    assert_eq!(told, expected, "bob's app was told about each");
    bob_sync.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_lists_sync_without_tripping_the_servers_message_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.throttle.per_address_per_minute = 100_000;
    config.throttle.per_account_per_minute = 1000;
    config.sync.messages_per_second = 8;
    let running = Server::start(config).await.expect("server starts");
    let base = format!("http://{}", running.addr());
    let server = TestServer { server: Some(running), base, _dir: dir };
    let alice = Device::signed_up(&server, "alice").await;
    let lists: Vec<ListId> =
        (0..6).map(|i| alice.client.create_list(&format!("List {i}")).unwrap().id).collect();
    let engine = SyncEngine::with_config(
        Arc::clone(&alice.client),
        SyncConfig { max_messages_per_second: 6, ..SyncConfig::default() },
    );
    let report = engine.sync_once(Duration::from_secs(60)).await.unwrap();
    assert!(report.in_step, "{report:?}");
    for list in lists {
        let (status, body) = server.read(&alice.token(), list).await;
        assert_eq!(status, 200, "{body}");
    }
}
