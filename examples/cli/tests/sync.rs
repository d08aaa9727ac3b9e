//! `tandem sync` and `tandem watch` through the real binary, two data folders and one
//! in-process server on a random port: offline edits on both merge after `tandem sync`,
//! `tandem watch` prints the other device's edits as they happen, and a viewer's edit is
//! refused with a clear message and appears nowhere.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tandem_server::{Config, Server};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";

struct Device {
    dir: TempDir,
    server: String,
    email: String,
}

impl Device {
    fn new(server: &str, name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self {
            dir: tempfile::tempdir().unwrap(),
            server: server.to_owned(),
            email: format!("{name}-{nanos}@example.com"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        command
            .args(["--data", self.dir.path().to_str().unwrap(), "--server", &self.server])
            .args(args)
            .env_remove("TANDEM_DATA")
            .env_remove("TANDEM_SERVER");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tandem {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    fn sign_up(&self) {
        let registered = self.json(&["register", &self.email, PASSWORD]);
        let code = registered["demo_code"].as_str().expect("demo server").to_owned();
        self.ok(&["verify", &self.email, &code]);
        self.ok(&["login", &self.email, PASSWORD]);
    }
}

fn start_server(runtime: &tokio::runtime::Runtime, dir: &Path) -> (Server, String) {
    let mut config = Config::embedded(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.throttle.per_address_per_minute = 100_000;
    config.throttle.per_account_per_minute = 1000;
    let server = runtime.block_on(Server::start(config)).expect("server starts");
    let base = format!("http://{}", server.addr());
    (server, base)
}

#[test]
fn two_devices_sync_watch_and_a_refused_viewer_through_the_cli() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server_dir = tempfile::tempdir().unwrap();
    let (server, base) = start_server(&runtime, server_dir.path());
    let alice = Device::new(&base, "alice");
    let bob = Device::new(&base, "bob");
    let vic = Device::new(&base, "vic");
    for d in [&alice, &bob, &vic] {
        d.sign_up();
    }

    let list = alice.ok(&["create", "Groceries"]);
    let milk = alice.ok(&["add", &list, "milk"]);
    let synced = alice.json(&["sync"]);
    assert_eq!(synced["in_step"], true, "{synced}");
    alice.ok(&["share", &list, &bob.email, "editor"]);
    alice.ok(&["share", &list, &vic.email, "viewer"]);
    bob.ok(&["sync"]);

    // Offline edits on both, then sync both: one merged list.
    alice.ok(&["edit", &list, &milk, "oat milk"]);
    let bread = alice.ok(&["add", &list, "bread"]);
    bob.ok(&["done", &list, &milk]);
    let jam = bob.ok(&["add", &list, "jam"]);
    alice.ok(&["sync", "--timeout", "20"]);
    bob.ok(&["sync", "--timeout", "20"]);
    alice.ok(&["sync", "--timeout", "20"]);
    let a = alice.json(&["show", &list]);
    let b = bob.json(&["show", &list]);
    assert_eq!(a["items"], b["items"]);
    let ids: Vec<String> =
        a["items"].as_array().unwrap().iter().map(|i| i["id"].to_string()).collect();
    assert!(ids.contains(&bread) && ids.contains(&jam), "{a}");
    let milk_item =
        a["items"].as_array().unwrap().iter().find(|i| i["id"].as_u64() == milk.parse().ok());
    assert_eq!(milk_item.unwrap()["content"], "oat milk");
    assert_eq!(milk_item.unwrap()["done"], true);

    // `watch` on bob prints alice's edit as it happens.
    let mut watch =
        bob.command(&["watch", &list, "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let eggs = alice.ok(&["add", &list, "eggs"]);
    alice.ok(&["sync"]);
    let mut seen = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        let event: Value = serde_json::from_str(&line).expect("one JSON object per line");
        assert_eq!(event["list_id"].to_string(), list);
        let items = event["list"]["items"].as_array().cloned().unwrap_or_default();
        if event["kind"] == "remote_changed"
            && items.iter().any(|i| i["id"].as_u64() == eggs.parse().ok())
        {
            seen = true;
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(seen, "watch printed alice's new item");

    // The viewer's edit is refused with a clear message and appears nowhere.
    vic.ok(&["sync"]);
    let refused = vic.run(&["add", &list, "sneaky"]);
    assert!(!refused.status.success());
    let reason = String::from_utf8(refused.stderr).unwrap();
    assert!(reason.contains("forbidden") && reason.contains("VIEWER"), "{reason}");
    vic.ok(&["sync"]);
    alice.ok(&["sync"]);
    for d in [&alice, &bob, &vic] {
        let shown = d.json(&["show", &list]);
        assert!(!shown.to_string().contains("sneaky"), "{shown}");
    }
    runtime.block_on(server.shutdown()).unwrap();
}

#[test]
fn history_through_the_cli() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server_dir = tempfile::tempdir().unwrap();
    let (server, base) = start_server(&runtime, server_dir.path());
    let alice = Device::new(&base, "alice");
    let stranger = Device::new(&base, "stranger");
    alice.sign_up();
    stranger.sign_up();
    let list = alice.ok(&["create", "Groceries"]);
    let milk = alice.ok(&["add", &list, "milk"]);
    let eggs = alice.ok(&["add", &list, "eggs"]);
    alice.ok(&["sync"]);
    let user = alice.json(&["login", &alice.email, PASSWORD])["id"].as_u64().unwrap();
    // Each change synced on its own, so that the history has one entry per change.
    for (command, item) in [("done", &milk), ("done", &eggs), ("undone", &milk)] {
        alice.ok(&[command, &list, item]);
        alice.ok(&["sync"]);
    }

    // Text: newest first, one line per change, then how to get older changes.
    let text = alice.ok(&["history", &list, "--limit", "2"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].ends_with(&format!("  {}  unchecked item {milk}", alice.email)), "{text}");
    assert!(lines[1].ends_with(&format!("checked item {eggs}")), "{text}");
    assert!(lines[0].starts_with("20") && lines[0].contains("Z  "), "{text}");
    let cursor = lines[2].rsplit(' ').next().unwrap();
    assert_eq!(lines[2], format!("Older changes: tandem history {list} --before {cursor}"));
    let older = alice.ok(&["history", &list, "--limit", "2", "--before", cursor]);
    assert!(older.lines().next().unwrap().ends_with(&format!("checked item {milk}")), "{older}");

    // JSON, by item: who checked the milk off.
    let page = alice.json(&["history", &list, "--item", &milk]);
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{page}");
    let milk_id: u64 = milk.parse().unwrap();
    for (change, action) in changes.iter().zip(["unchecked", "checked", "added"]) {
        assert_eq!(change["email"], alice.email.as_str());
        assert_eq!(change["user_id"], user);
        assert_eq!(change["actions"], serde_json::json!([{"action": action, "item": milk_id}]));
        assert_eq!(change["hash"].as_str().unwrap().len(), 64);
    }
    assert_eq!(page["next_before"], Value::Null);

    // Not a member: the server's answer, one line, non-zero exit.
    let refused = stranger.run(&["history", &list]);
    assert!(!refused.status.success());
    let reason = String::from_utf8(refused.stderr).unwrap();
    assert!(reason.contains("not found"), "{reason}");
    runtime.block_on(server.shutdown()).unwrap();
}
