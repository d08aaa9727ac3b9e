//! What an operator relies on: the liveness and readiness probes, `/metrics` counting what
//! was done (per server, with many servers in this one process), request ids, and the JSON
//! log of the real binary never holding a secret.

use std::process::Stdio;

use serde_json::{Value, json};
use tandem_protocol::{ItemId, ListDoc, ListId};

use crate::support::{PASSWORD, PgDatabases, TestServer, TestUser, email};
use crate::sync_client::SyncClient;

/// The scraped `/metrics` text.
async fn scrape(server: &TestServer) -> String {
    let response = reqwest::get(format!("{}/metrics", server.base)).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of one series (name and labels exactly as exposed), or `None` if absent.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The value of one series, which must be exposed.
fn value(text: &str, name: &str) -> f64 {
    series(text, name).unwrap_or_else(|| panic!("no series {name} in:\n{text}"))
}

/// The sum of every series of a family whose line starts with `prefix` (any labels).
fn sum_of(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn livez_answers_and_readyz_names_what_is_not_ready() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/livez", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["ready"], true);
    assert_eq!(body["data"]["databases"][0]["answers"], true);
    assert_eq!(body["data"]["databases"][0]["missing_migrations"], json!([]));

    // A database that lacks a migration this build expects is not ready.
    let db = server.dir.path().join("tandem.db");
    let url = format!("sqlite://{}?mode=rw", db.display());
    {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 4")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let (status, body) = server.get("/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["data"]["ready"], false);
    assert_eq!(body["data"]["databases"][0]["missing_migrations"], json!([4]));
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("lacks migrations 4"), "{message}");
    // Liveness does not depend on it.
    assert_eq!(server.get("/livez", None).await.0, 200);
    // The health check of old stays as it was: the database answers.
    assert_eq!(server.get("/healthz", None).await.0, 200);

    // Draining is named too.
    server.draining_token().cancel();
    let (status, body) = server.get("/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["data"]["draining"], true);
    assert!(body["message"].as_str().unwrap().contains("draining"), "{body}");
}

#[tokio::test]
async fn readyz_names_a_database_that_does_not_answer() {
    let Some(pg) = PgDatabases::create(2).await else { return };
    let server = TestServer::start_with(|c| c.shards = pg.split_map()).await;
    let (status, body) = server.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["databases"].as_array().unwrap().len(), 2);

    let gone = pg.urls[1].rsplit('/').next().unwrap().to_owned();
    {
        use sqlx::Connection as _;
        let mut admin = sqlx::AnyConnection::connect(crate::support::PG_ADMIN_URL).await.unwrap();
        let sql = format!("DROP DATABASE {gone} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.unwrap();
    }
    let (status, body) = server.get("/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&format!("{gone} does not answer")), "{message}");
    let databases = body["data"]["databases"].as_array().unwrap();
    assert_eq!(databases[0]["ready"], true, "the other database is fine: {body}");
    assert_eq!(databases[1]["answers"], false, "{body}");
}

#[tokio::test]
async fn metrics_count_what_a_session_did() {
    let server = TestServer::start().await;
    let other = TestServer::start().await;

    // Two sign-ups, one with a wrong code first; a failed login; a list shared and synced.
    let alice_email = email("alice");
    let code = server.register(&alice_email, PASSWORD).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, _) =
        server.post("verify", None, json!({"email": alice_email, "code": wrong})).await;
    assert_eq!(status, 422);
    let (status, _) =
        server.post("verify", None, json!({"email": alice_email, "code": code})).await;
    assert_eq!(status, 200);
    let (status, _) = server
        .post("login", None, json!({"email": alice_email, "password": "not the password"}))
        .await;
    assert_eq!(status, 401);
    let alice = server.login(&alice_email, PASSWORD).await;
    let bob = server.signup(&email("bob")).await;
    let list = server.create_list(&alice, "Groceries").await;
    server.share(&alice, list, &bob.email, "EDITOR").await;
    let (status, _) =
        server.get(&format!("/api/todolist/read?id={list}"), Some(&alice.token)).await;
    assert_eq!(status, 200);
    assert_eq!(server.get("/no/such/route", None).await.0, 404);

    let id = ListId(list);
    let mut a = SyncClient::connect(&server, &alice).await;
    a.hold(id, ListDoc::empty());
    a.settle().await;
    a.edit(id, |d| {
        d.add_item(ItemId(1), "milk").unwrap();
    });
    a.settle().await;
    let mut b = SyncClient::connect(&server, &bob).await;
    b.hold(id, ListDoc::empty());
    b.wait_for(|c| c.doc(id).item_count().unwrap_or(0) == 1).await;

    let text = scrape(&server).await;
    // Business.
    assert_eq!(value(&text, "tandem_registrations_total"), 2.0);
    assert_eq!(value(&text, "tandem_verifications_total{outcome=\"ok\"}"), 2.0);
    assert_eq!(value(&text, "tandem_verifications_total{outcome=\"wrong_code\"}"), 1.0);
    assert_eq!(value(&text, "tandem_verifications_total{outcome=\"expired\"}"), 0.0);
    assert_eq!(value(&text, "tandem_logins_total{outcome=\"ok\"}"), 2.0);
    assert_eq!(value(&text, "tandem_logins_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(value(&text, "tandem_logins_total{outcome=\"throttled\"}"), 0.0);
    assert_eq!(value(&text, "tandem_lists_created_total"), 1.0);
    assert_eq!(value(&text, "tandem_lists_deleted_total"), 0.0);
    assert_eq!(value(&text, "tandem_shares_total"), 1.0);

    // Service: by matched route and status class, never by raw URI.
    let requests = |route: &str, class: &str| {
        value(&text, &format!("tandem_http_requests_total{{route=\"{route}\",status=\"{class}\"}}"))
    };
    assert_eq!(requests("/api/todolist/register", "2xx"), 2.0);
    assert_eq!(requests("/api/todolist/verify", "2xx"), 2.0);
    assert_eq!(requests("/api/todolist/verify", "4xx"), 1.0);
    assert_eq!(requests("/api/todolist/login", "4xx"), 1.0);
    assert_eq!(requests("/api/todolist/login", "2xx"), 2.0);
    assert_eq!(requests("/api/todolist/read", "2xx"), 1.0);
    assert_eq!(requests("/api/todolist/sync", "1xx"), 2.0, "the two upgrades");
    assert_eq!(requests("unmatched", "4xx"), 1.0);
    assert!(!text.contains(&list.to_string()), "a list id became a label:\n{text}");
    assert!(!text.contains("/no/such/route"), "a raw path became a label");
    let latency = "tandem_http_request_duration_seconds_count{route=\"/api/todolist/create\"}";
    assert_eq!(value(&text, latency), 1.0);

    // Sync.
    assert!(value(&text, "tandem_sync_messages_total{direction=\"in\"}") >= 3.0);
    assert!(value(&text, "tandem_sync_messages_total{direction=\"out\"}") >= 3.0);
    assert!(value(&text, "tandem_sync_bytes_total{direction=\"in\"}") > 100.0);
    assert!(value(&text, "tandem_sync_bytes_total{direction=\"out\"}") > 100.0);
    assert!(value(&text, "tandem_changes_merged_total") >= 1.0);
    assert!(sum_of(&text, "tandem_save_duration_seconds_count{database=") >= 1.0, "{text}");
    assert!(value(&text, "tandem_sync_ack_duration_seconds_count") >= 1.0);
    assert_eq!(value(&text, "tandem_open_sockets"), 2.0);
    assert_eq!(value(&text, "tandem_active_users"), 2.0);
    assert_eq!(value(&text, "tandem_rooms_loaded"), 1.0);
    assert!(sum_of(&text, "tandem_db_connections{") >= 1.0, "{text}");

    // Process and build.
    assert!(text.lines().any(|l| l.starts_with("tandem_build_info{version=\"")
        && l.contains("git_sha=\"")
        && l.ends_with(" 1")));
    assert!(value(&text, "tandem_uptime_seconds") > 0.0);
    if cfg!(target_os = "linux") {
        assert!(value(&text, "process_resident_memory_bytes") > 1e6);
        assert!(value(&text, "process_open_fds") >= 4.0);
    }

    // The other server in this process counted only its own.
    let theirs = scrape(&other).await;
    assert_eq!(value(&theirs, "tandem_registrations_total"), 0.0);
    assert_eq!(value(&theirs, "tandem_logins_total{outcome=\"ok\"}"), 0.0);
    assert_eq!(value(&theirs, "tandem_sync_messages_total{direction=\"in\"}"), 0.0);
    assert_eq!(value(&theirs, "tandem_open_sockets"), 0.0);
}

#[tokio::test]
async fn requests_carry_an_id_taken_or_made_and_echoed() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/livez", server.base);
    let echoed = |r: &reqwest::Response| {
        r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let sent = http.get(&url).header("x-request-id", "trace-42.a_b:c").send().await.unwrap();
    assert_eq!(echoed(&sent).as_deref(), Some("trace-42.a_b:c"));
    let made = http.get(&url).send().await.unwrap();
    let id = echoed(&made).expect("an id is made");
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    // Not a token: replaced, never copied into logs or headers.
    let odd = http.get(&url).header("x-request-id", "two words").send().await.unwrap();
    assert_ne!(echoed(&odd).as_deref(), Some("two words"));
    // Errors carry one too.
    let missing = http.get(format!("{}/nope", server.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(echoed(&missing).is_some());
}

/// Whether `secret` occurs in `line` as a whole: not inside a longer run of digits, nor as
/// the fraction of a timestamp (`…:56.123456Z`), when it is all digits.
fn holds(line: &str, secret: &str) -> bool {
    if !secret.bytes().all(|b| b.is_ascii_digit()) {
        return line.contains(secret);
    }
    line.match_indices(secret).any(|(at, _)| {
        let before = line[..at].bytes().last();
        let after = line[at + secret.len()..].bytes().next();
        !before.is_some_and(|b| b.is_ascii_digit() || b == b'.')
            && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

#[tokio::test]
async fn the_json_log_of_a_session_parses_and_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (mut child, base) = crate::binary::start_with(
        &dir.path().join("data"),
        &["--log-format", "json"],
        &[("RUST_LOG", "debug")],
        Stdio::from(log),
    );
    let server = TestServer::at(base.clone());
    let address = email("logged");
    let password = format!("{PASSWORD} {}", rand::random::<u32>());
    let wrong_password = format!("wrong {}", rand::random::<u32>());
    let code = server.register(&address, &password).await;
    let (status, _) = server.post("verify", None, json!({"email": address, "code": code})).await;
    assert_eq!(status, 200);
    let (status, _) =
        server.post("login", None, json!({"email": address, "password": wrong_password})).await;
    assert_eq!(status, 401);
    let user: TestUser = server.login(&address, &password).await;
    let list = server.create_list(&user, "Logged").await;
    let id = ListId(list);
    let mut a = SyncClient::connect_to(&base, &user).await;
    a.hold(id, ListDoc::empty());
    a.settle().await;
    a.edit(id, |d| {
        d.add_item(ItemId(1), "tea").unwrap();
    });
    a.settle().await;
    // A browser's socket, with the token in the query string.
    let url = format!("{}?access_token={}", crate::sync_client::sync_url(&base), user.token);
    let (browser, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    drop(browser);
    drop(a);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 10, "a debug log of a session has lines:\n{text}");
    let mut create_seen = false;
    for line in &lines {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(parsed["timestamp"].is_string() && parsed["level"].is_string(), "{line}");
        for (what, secret) in [
            ("password", password.as_str()),
            ("wrong password", wrong_password.as_str()),
            ("token", user.token.as_str()),
            ("verification code", code.as_str()),
        ] {
            assert!(!holds(line, secret), "the log holds the {what}: {line}");
        }
        let spans = parsed["spans"].as_array().cloned().unwrap_or_default();
        if spans.iter().any(|s| {
            s["name"] == "request"
                && s["route"] == "/api/todolist/create"
                && s["user_id"].as_u64() == Some(user.id)
                && s["request_id"].as_str().is_some_and(|id| !id.is_empty())
        }) {
            create_seen = true;
        }
    }
    assert!(create_seen, "a line of the create request names its route, user and id:\n{text}");
}

#[test]
fn a_code_is_found_whole_and_not_in_a_timestamp() {
    assert!(holds("{\"code\":\"123456\"}", "123456"));
    assert!(holds("code=123456 sent", "123456"));
    assert!(!holds("\"timestamp\":\"2026-01-01T10:00:00.123456Z\"", "123456"));
    assert!(!holds("id 91234567", "123456"));
    assert!(holds("token abc.def", "abc.def"));
}

/// Sends SIGTERM to a child process.
fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_drains_then_exits_with_every_acknowledged_edit_saved() {
    use futures_util::SinkExt as _;
    use tandem_protocol::automerge::sync::SyncDoc as _;
    use tandem_protocol::wire::{ClientMessage, ErrorCode, ServerMessage};
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, "shutdown_grace_secs = 10\ndrain_delay_secs = 3\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let args = ["--config", config.as_str()];
    let (mut child, base) =
        crate::binary::start_with(&data, &args, &[("RUST_LOG", "warn")], Stdio::inherit());
    let server = TestServer::at(base.clone());
    let alice = server.signup(&email("alice")).await;
    let list = server.create_list(&alice, "Drained").await;
    let id = ListId(list);
    // A second socket of hers, subscribed and idle: it must be told too.
    let mut idle = SyncClient::connect_to(&base, &alice).await;
    idle.hold(id, ListDoc::empty());
    idle.settle().await;
    let mut a = SyncClient::connect_to(&base, &alice).await;
    a.hold(id, ListDoc::empty());
    a.settle().await;

    // Stream edits without waiting for each; note the newest acknowledged one (the server's
    // sync message advertises heads that include it); SIGTERM mid-stream, and go on sending
    // until the server closes the socket.
    let mut acknowledged = 0u64;
    let mut heads_of = std::collections::HashMap::new();
    let mut termed_at = None;
    let mut closed = false;
    for i in 1..=2000u64 {
        a.edit(id, |d| {
            d.add_item(ItemId(i), &format!("edit {i}")).unwrap();
        });
        let (doc, state) = a.docs.get_mut(&id).unwrap();
        heads_of.insert(doc.heads()[0], i);
        if let Some(m) = doc.automerge_mut().sync().generate_sync_message(state) {
            let frame = ClientMessage::Sync { list: id, data: m.encode() }.encode();
            if a.ws.send(Message::Binary(frame.into())).await.is_err() {
                closed = true;
            }
        }
        loop {
            match a.next_within(std::time::Duration::from_millis(2)).await {
                Some(Some(ServerMessage::Error { code, .. })) => {
                    assert_eq!(code, ErrorCode::ShuttingDown)
                }
                Some(Some(message)) => a.apply(message),
                Some(None) => {
                    closed = true;
                    break;
                }
                None => break,
            }
        }
        for head in a.docs[&id].1.their_heads.clone().unwrap_or_default() {
            if let Some(&n) = heads_of.get(&head) {
                acknowledged = acknowledged.max(n);
            }
        }
        if termed_at.is_none() && acknowledged >= 30 {
            sigterm(&child);
            termed_at = Some(std::time::Instant::now());
            // Readiness turns as soon as the signal is handled, while REST still answers.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let body = loop {
                let (status, body) = server.get("/readyz", None).await;
                if status == 503 {
                    break body;
                }
                assert!(std::time::Instant::now() < deadline, "readyz stayed {status}: {body}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            };
            assert_eq!(body["data"]["draining"], true, "{body}");
            assert_eq!(server.get("/livez", None).await.0, 200);
            // New sockets are refused, with a status clients back off from.
            let refused = crate::sync_client::open_socket(&base, &alice, None).await;
            match refused {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status(), 503)
                }
                Err(other) => panic!("expected a 503, got {other}"),
                Ok(_) => panic!("a socket was opened while draining"),
            }
        }
        if closed {
            break;
        }
    }
    assert!(termed_at.is_some(), "the server acknowledged edits while they streamed");
    assert!(closed, "the draining server closed the socket");
    assert_eq!(a.close.as_ref().map(|c| c.0), Some(4005), "shutting_down: {:?}", a.close);
    let (code, close, _) = idle.expect_fatal().await;
    assert_eq!((code, close), (ErrorCode::ShuttingDown, 4005));

    // It exits by itself, cleanly, within the grace period.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let waited = termed_at.unwrap().elapsed();
        assert!(waited < std::time::Duration::from_secs(10), "still running after the grace");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");

    let (mut child, base) = crate::binary::start(&data);
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
        assert!(stored.contains(&n), "acknowledged edit {n} of {acknowledged} was lost");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
