//! Test harness: a real server on a random port with a temporary data folder, a small JSON
//! client, and per-test PostgreSQL databases.

use std::path::Path;

use serde_json::{Value, json};
use tandem_server::auth::throttle::ThrottleConfig;
use tandem_server::store::ShardSpec;
use tandem_server::{Config, Server};
use tempfile::TempDir;

/// A running server and a client for it.
pub struct TestServer {
    server: Option<Server>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
    /// The data folder, removed at the end.
    pub dir: TempDir,
}

/// A signed-up, verified, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: u64,
    pub email: String,
    pub token: String,
}

/// A config for tests: a temporary data folder, a random port, generous throttles.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::embedded(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.throttle =
        ThrottleConfig { per_account_per_minute: 1000, per_address_per_minute: 100_000 };
    config
}

impl TestServer {
    /// A server on the embedded default (one SQLite file).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose config `adjust` may change.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let server = Server::start(config).await.expect("server starts");
        let base = format!("http://{}", server.addr());
        Self { server: Some(server), base, http: reqwest::Client::new(), dir }
    }

    /// A client of a server running elsewhere (another process, or restarted); it does not
    /// own that server.
    pub fn at(base: String) -> TestServer {
        TestServer {
            server: None,
            base,
            http: reqwest::Client::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The token that marks this (in-process) server as draining.
    pub fn draining_token(&self) -> tokio_util::sync::CancellationToken {
        self.server.as_ref().expect("a server of this process").draining_token()
    }

    /// Stops the server, keeping the data folder.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
    }

    /// `POST /api/todolist/{call}` with a JSON body: (status, body).
    pub async fn post(&self, call: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}/api/todolist/{call}", self.base)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        into_pair(req.send().await.unwrap()).await
    }

    /// `GET {path}` (path from the root, with query): (status, body).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        into_pair(req.send().await.unwrap()).await
    }

    /// Sends raw bytes to a call: (status, body).
    pub async fn post_raw(&self, call: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}/api/todolist/{call}", self.base)).body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        into_pair(req.send().await.unwrap()).await
    }

    /// Registers, verifies and logs in `email` with a fixed password.
    pub async fn signup(&self, email: &str) -> TestUser {
        let code = self.register(email, PASSWORD).await;
        let (status, body) = self.post("verify", None, json!({"email": email, "code": code})).await;
        assert_eq!(status, 200, "{body}");
        self.login(email, PASSWORD).await
    }

    /// Registers and returns the demo code.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let (status, body) =
            self.post("register", None, json!({"email": email, "password": password})).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["demo_code"].as_str().expect("demo code").to_owned()
    }

    /// Logs in, expecting success.
    pub async fn login(&self, email: &str, password: &str) -> TestUser {
        let (status, body) =
            self.post("login", None, json!({"email": email, "password": password})).await;
        assert_eq!(status, 200, "{body}");
        TestUser {
            id: body["data"]["user"]["id"].as_u64().unwrap(),
            email: body["data"]["user"]["email"].as_str().unwrap().to_owned(),
            token: body["data"]["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a list, returning its id.
    pub async fn create_list(&self, user: &TestUser, title: &str) -> u64 {
        let (status, body) = self.post("create", Some(&user.token), json!({"title": title})).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["id"].as_u64().unwrap()
    }

    /// Shares a list, expecting success.
    pub async fn share(&self, owner: &TestUser, list: u64, email: &str, permission: &str) {
        let (status, body) = self
            .post(
                "sharelist",
                Some(&owner.token),
                json!({"list_id": list, "target_email": email, "permission": permission}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// `read` without id: (id, title, role) of every list.
    pub async fn lists(&self, user: &TestUser) -> Vec<(u64, String, String)> {
        let (status, body) = self.get("/api/todolist/read", Some(&user.token)).await;
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["id"].as_u64().unwrap(),
                    l["title"].as_str().unwrap().into(),
                    l["role"].as_str().unwrap().into(),
                )
            })
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown_token().cancel();
        }
    }
}

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery";

async fn into_pair(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    if let Some(code) = body.get("code") {
        assert_eq!(
            code.as_u64(),
            Some(u64::from(status)),
            "envelope code must equal the HTTP status: {body}"
        );
    }
    (status, body)
}

/// A unique email for a test.
pub fn email(name: &str) -> String {
    format!("{name}-{}@example.com", rand_suffix())
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}-{}", NEXT.fetch_add(1, Ordering::Relaxed), nanos)
}

/// Fresh PostgreSQL databases on 127.0.0.1:5432, dropped when this goes out of scope.
pub struct PgDatabases {
    pub urls: Vec<String>,
}

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl PgDatabases {
    /// `n` new databases, or `None` (with a notice) when no PostgreSQL answers, unless
    /// `CI=true`, where that is a failure.
    pub async fn create(n: usize) -> Option<Self> {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut admin = match sqlx::AnyConnection::connect(PG_ADMIN_URL).await {
            Ok(conn) => conn,
            Err(err) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("CI=true but PostgreSQL at 127.0.0.1:5432 does not answer: {err}");
                }
                eprintln!(
                    "NOTICE: skipping a PostgreSQL test: no PostgreSQL at 127.0.0.1:5432 ({err})"
                );
                return None;
            }
        };
        let mut urls = Vec::new();
        for i in 0..n {
            let name = format!("tandem_test_{}_{i}", rand_suffix().replace('-', "_"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
            urls.push(format!("postgres://postgres@127.0.0.1:5432/{name}"));
        }
        Some(Self { urls })
    }

    /// A shard map splitting users and lists in two halves over the first two databases.
    pub fn split_map(&self) -> Vec<ShardSpec> {
        split_map(&self.urls[0], &self.urls[1])
    }
}

/// Users 0..512 and lists 0..2048 on `a`, the rest on `b`.
pub fn split_map(a: &str, b: &str) -> Vec<ShardSpec> {
    vec![
        ShardSpec { url: a.into(), users: Some([0, 512]), lists: Some([0, 2048]) },
        ShardSpec { url: b.into(), users: Some([512, 1024]), lists: Some([2048, 4096]) },
    ]
}

impl Drop for PgDatabases {
    fn drop(&mut self) {
        let names: Vec<String> =
            self.urls.iter().map(|u| u.rsplit('/').next().unwrap().to_owned()).collect();
        // Drop runs outside any runtime; a small one of our own does the async work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                use sqlx::Connection as _;
                if let Ok(mut admin) = sqlx::AnyConnection::connect(PG_ADMIN_URL).await {
                    for name in names {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    }
                }
            });
        })
        .join();
    }
}
