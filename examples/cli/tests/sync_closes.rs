//! What the real `tandem` binary prints when the server closes the sync socket: against a
//! server that no longer accepts this app's protocol version, `tandem sync` fails with one
//! line saying an update is required, with the close code and the server's reason, and
//! `tandem watch` stops with the same line instead of retrying for ever.

use std::process::{Command, Output};

use serde_json::Value;
use tandem_protocol::wire::PROTOCOL_VERSION;
use tandem_server::{Config, Server};

const PASSWORD: &str = "correct horse battery";

fn tandem(data: &std::path::Path, server: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--data", data.to_str().unwrap(), "--server", server])
        .args(args)
        .env_remove("TANDEM_DATA")
        .env_remove("TANDEM_SERVER")
        .output()
        .unwrap()
}

fn ok(data: &std::path::Path, server: &str, args: &[&str]) -> String {
    let out = tandem(data, server, args);
    assert!(out.status.success(), "tandem {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sync_and_watch_say_an_update_is_required_with_the_close_code() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server_dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded(server_dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.sync.min_client_version = PROTOCOL_VERSION + 1;
    let server = runtime.block_on(Server::start(config)).expect("server starts");
    let base = format!("http://{}", server.addr());
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let email = "old-app@example.com";
    let registered: Value =
        serde_json::from_str(&ok(data, &base, &["register", email, PASSWORD, "--json"])).unwrap();
    ok(data, &base, &["verify", email, registered["demo_code"].as_str().unwrap()]);
    ok(data, &base, &["login", email, PASSWORD]);

    for command in [&["sync"][..], &["watch"][..]] {
        let out = tandem(data, &base, command);
        assert!(!out.status.success(), "{command:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("tandem: update required"), "{command:?}: {stderr}");
        assert!(last.contains("4001 unsupported_version"), "{command:?}: {stderr}");
        assert!(last.contains("update the app"), "the server's reason: {stderr}");
    }
    runtime.block_on(server.shutdown()).unwrap();
}
