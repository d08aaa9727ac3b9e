//! The demo mailer shows every code to the caller, so whoever can reach the server can claim
//! any address (and the lists waiting for it). It says so when the server starts, and a server
//! on a network address refuses it unless the operator accepts that explicitly.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::json;
use tandem_server::Server;
use tandem_server::mailer::MailerConfig;

use crate::support::{PASSWORD, TestServer, test_config};

/// The binary, started with `args`: the child, its base URL (`None` if it exited without
/// listening) and a thread collecting its log (stderr) until it exits.
struct Spawned {
    child: Child,
    base: Option<String>,
    log: std::thread::JoinHandle<String>,
}

fn spawn(dir: &Path, args: &[&str], config: Option<&str>) -> Spawned {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem-server"));
    command.args(args).arg("--data-dir").arg(dir.join("data"));
    if let Some(text) = config {
        let path = dir.join("tandem.toml");
        std::fs::write(&path, text).unwrap();
        command.arg("--config").arg(path);
    }
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let base = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break None;
        }
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break Some(url.to_owned());
        }
    };
    Spawned { child, base, log }
}

impl Spawned {
    /// Stops the server (if it still runs) and returns what it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        self.child.wait().unwrap();
        self.log.join().unwrap()
    }
}

#[test]
fn the_demo_mailer_warns_at_start_that_codes_are_shown_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &["--listen", "127.0.0.1:0"], None);
    assert!(server.base.is_some(), "the default config serves on loopback");
    let log = server.stop();
    let warning = log.lines().find(|l| l.contains("demo mailer")).unwrap_or_else(|| {
        panic!("no demo mailer warning in {log}");
    });
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("shown to the caller"), "{warning}");
    assert!(warning.contains("anyone can register any email address"), "{warning}");

    // Other mailers do not warn.
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &["--listen", "127.0.0.1:0"], Some("mailer = \"log\"\n"));
    assert!(server.base.is_some());
    let log = server.stop();
    assert!(!log.contains("demo mailer"), "{log}");
}

#[test]
fn the_demo_mailer_is_refused_on_a_network_address_unless_allowed() {
    // The attack it prevents: on a reachable server, a stranger registers an invited email,
    // reads the code from the answer and owns the invitation.
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn(dir.path(), &["--listen", "0.0.0.0:0"], None);
    assert!(server.base.is_none(), "must not serve");
    assert!(!server.child.wait().unwrap().success());
    let log = server.stop();
    assert!(log.contains("refusing to serve on 0.0.0.0:0 with mailer = \"demo\""), "{log}");
    assert!(log.contains("kind = \"smtp\""), "tells the operator what to set: {log}");
    assert!(log.contains("allow_demo_on_network"), "{log}");

    // The same with an explicit "demo" in the file, and on the IPv6 wildcard.
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn(dir.path(), &["--listen", "[::]:0"], Some("mailer = \"demo\"\n"));
    assert!(server.base.is_none());
    assert!(!server.child.wait().unwrap().success());
    assert!(server.stop().contains("with mailer = \"demo\""));

    // The operator accepts it explicitly: the server starts, and still warns.
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(
        dir.path(),
        &["--listen", "0.0.0.0:0"],
        Some("[mailer]\nkind = \"demo\"\nallow_demo_on_network = true\n"),
    );
    assert!(server.base.is_some(), "allowed explicitly");
    assert!(server.stop().contains("demo mailer"));

    // Another mailer on a network address is fine.
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &["--listen", "0.0.0.0:0"], Some("mailer = \"log\"\n"));
    assert!(server.base.is_some());
    server.stop();
}

#[tokio::test]
async fn an_embedded_server_applies_the_same_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = Server::start(config).await.unwrap_err();
    assert!(format!("{err:#}").contains("with mailer = \"demo\""), "{err:#}");

    let server = TestServer::start_with(|config| {
        config.listen = "0.0.0.0:0".parse().unwrap();
        config.mailer = MailerConfig::Demo { allow_on_network: true };
    })
    .await;
    // Reached over loopback, the allowed demo server answers with the code as before.
    let base = server.base.replace("0.0.0.0", "127.0.0.1");
    let client = TestServer::at(base);
    let (status, body) = client
        .post("register", None, json!({"email": "e@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["demo_code"].is_string());
}
