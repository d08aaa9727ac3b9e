//! How the client's `SyncEngine` takes the server closing its socket, against a real server
//! over real sockets: an app too old for the server stops and says an update is required
//! (no reconnect loop); a server going down is reported with its close code and reason and
//! reconnected to; a user at the server's socket cap keeps retrying with backoff until a slot
//! frees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tandem_client::{Client, ClientConfig, Error, SyncConfig, SyncEngine, SyncHandle};
use tandem_protocol::wire::{ErrorCode, PROTOCOL_VERSION};
use tandem_server::{Config, Server};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";

fn server_config(dir: &std::path::Path, listen: SocketAddr) -> Config {
    let mut config = Config::embedded(dir);
    config.listen = listen;
    config.throttle.per_address_per_minute = 100_000;
    config.throttle.per_account_per_minute = 1000;
    config
}

async fn start_server(dir: &TempDir, adjust: impl FnOnce(&mut Config)) -> Server {
    let mut config = server_config(dir.path(), "127.0.0.1:0".parse().unwrap());
    adjust(&mut config);
    Server::start(config).await.expect("server starts")
}

/// One device: its own data folder and client.
struct Device {
    _dir: TempDir,
    client: Arc<Client>,
}

fn unique_email(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{name}-{}-{nanos}@example.com", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Device {
    fn new(server: &Server) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://{}", server.addr());
        let client = Client::open(ClientConfig::new(dir.path()).with_server_url(url)).unwrap();
        Self { _dir: dir, client: Arc::new(client) }
    }

    /// A device of a new account.
    async fn signed_up(server: &Server, name: &str) -> (Self, String) {
        let device = Self::new(server);
        let email = unique_email(name);
        let outcome = device.client.register(&email, PASSWORD).await.unwrap();
        device.client.verify(&email, &outcome.demo_code.unwrap()).await.unwrap();
        device.client.login(&email, PASSWORD).await.unwrap();
        (device, email)
    }

    /// Another device of an existing account.
    async fn signed_in(server: &Server, email: &str) -> Self {
        let device = Self::new(server);
        device.client.login(email, PASSWORD).await.unwrap();
        device
    }

    /// Background sync that retries quickly.
    fn start(&self) -> SyncHandle {
        let config = SyncConfig {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..SyncConfig::default()
        };
        SyncEngine::with_config(Arc::clone(&self.client), config).start().unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_too_old_for_the_server_stops_and_says_an_update_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir, |c| c.sync.min_client_version = PROTOCOL_VERSION + 1).await;
    let (device, _) = Device::signed_up(&server, "old-app").await;
    device.client.create_list("Kept locally").unwrap();

    let err = SyncEngine::new(Arc::clone(&device.client))
        .sync_once(Duration::from_secs(20))
        .await
        .unwrap_err();
    let Error::UpdateRequired(message) = &err else { panic!("expected UpdateRequired: {err:?}") };
    assert!(message.contains("4001") && message.contains("unsupported_version"), "{message}");
    assert!(err.to_string().starts_with("update required"), "{err}");

    // In the background it stops instead of reconnecting in a loop, and says why.
    let handle = device.start();
    eventually("background sync stops", || !handle.is_running()).await;
    let status = handle.status();
    assert!(status.update_required, "{status:?}");
    assert_eq!(status.connections, 1, "no reconnect after unsupported_version: {status:?}");
    let close = status.last_close.as_ref().expect("the close is reported");
    assert_eq!(close.code, Some(ErrorCode::UnsupportedVersion.close_code()));
    assert_eq!(close.kind.as_deref(), Some("unsupported_version"));
    assert!(!close.reason.is_empty());
    assert!(status.last_error.as_deref().unwrap().starts_with("update required"), "{status:?}");
    // The data stays, for the updated app.
    assert_eq!(device.client.lists().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_going_down_is_reported_with_its_close_code_and_reconnected_to() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir, |_| {}).await;
    let addr = server.addr();
    let (device, _) = Device::signed_up(&server, "alice").await;
    let handle = device.start();
    eventually("connected", || handle.status().connected).await;

    server.shutdown().await.unwrap();
    eventually("the close is reported", || handle.status().last_close.is_some()).await;
    let status = handle.status();
    let close = status.last_close.clone().unwrap();
    assert_eq!(close.code, Some(ErrorCode::ShuttingDown.close_code()), "{status:?}");
    assert_eq!(close.kind.as_deref(), Some("shutting_down"));
    assert!(!status.update_required);
    assert!(handle.is_running(), "it keeps trying");

    // Back on the same address: the engine finds it again by itself.
    let restarted = Server::start(server_config(dir.path(), addr)).await.expect("server restarts");
    eventually("reconnected", || handle.status().connected).await;
    assert!(handle.status().connections >= 2, "{:?}", handle.status());
    handle.stop();
    restarted.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_the_socket_cap_retries_until_a_slot_frees() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir, |c| c.sync.max_sockets_per_user = 1).await;
    let (phone, email) = Device::signed_up(&server, "two-devices").await;
    let laptop = Device::signed_in(&server, &email).await;
    let phone_sync = phone.start();
    eventually("the phone is connected", || phone_sync.status().connected).await;

    let laptop_sync = laptop.start();
    eventually("the laptop is refused", || {
        laptop_sync.status().last_error.as_deref().is_some_and(|e| e.contains("429"))
    })
    .await;
    let status = laptop_sync.status();
    assert!(status.last_error.as_deref().unwrap().contains("sockets"), "{status:?}");
    assert_eq!(status.connections, 0);
    assert!(laptop_sync.is_running() && !status.update_required, "it keeps trying");

    phone_sync.stop();
    eventually("the laptop connects once the phone's slot is free", || {
        laptop_sync.status().connected
    })
    .await;
    laptop_sync.stop();
}
