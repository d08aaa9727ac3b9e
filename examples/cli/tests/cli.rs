//! The `tandem` binary driven as a user or a script would, with no server running: every
//! command is a new process on a temporary data directory.

use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

struct Tandem {
    dir: TempDir,
}

impl Tandem {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["--data", self.dir.path().to_str().unwrap()])
            // A server that is surely not there.
            .args(["--server", "http://127.0.0.1:9"])
            .args(args)
            .env_remove("TANDEM_DATA")
            .env_remove("TANDEM_SERVER")
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tandem {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Runs a command that must fail; returns its one-line stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "tandem {args:?} should have failed");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr: {err:?}");
        assert!(out.stdout.is_empty());
        err
    }
}

fn item_ids(shown: &Value) -> Vec<u64> {
    shown["items"].as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()).collect()
}

#[test]
fn a_new_user_edits_a_list_offline_and_it_persists() {
    let t = Tandem::new();
    let list = t.ok(&["create", "Groceries"]).trim().to_owned();
    let milk = t.ok(&["add", &list, "milk"]).trim().to_owned();
    let eggs = t.ok(&["add", &list, "eggs"]).trim().to_owned();
    let bread: u64 = t.json(&["add", &list, "bread"])["id"].as_u64().unwrap();
    t.ok(&["edit", &list, &milk, "oat milk"]);
    t.ok(&["done", &list, &eggs]);
    t.ok(&["move", &list, &bread.to_string(), "--first"]);
    t.ok(&["move", &list, &milk, "--after", &eggs]);

    let shown = t.json(&["show", &list]);
    assert_eq!(shown["id"].as_u64().unwrap().to_string(), list);
    assert_eq!(shown["title"], "Groceries");
    assert_eq!(shown["role"], "OWNER");
    let ids = item_ids(&shown);
    assert_eq!(ids, [bread, eggs.parse().unwrap(), milk.parse().unwrap()]);
    let items = shown["items"].as_array().unwrap();
    assert_eq!(items[1]["done"], true);
    assert_eq!(items[2]["content"], "oat milk");
    for item in items {
        let keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4);
        for key in ["id", "content", "done", "sort_rank"] {
            assert!(keys.contains(&key));
        }
    }

    t.ok(&["undone", &list, &eggs]);
    t.ok(&["remove", &list, &milk]);
    t.ok(&["rename", &list, "Shop"]);
    let shown = t.json(&["show", &list]);
    assert_eq!(shown["title"], "Shop");
    assert_eq!(item_ids(&shown), [bread, eggs.parse().unwrap()]);
    assert_eq!(shown["items"][1]["done"], false);

    let lists = t.json(&["lists"]);
    assert_eq!(
        lists,
        serde_json::json!([{ "id": list.parse::<u64>().unwrap(), "title": "Shop", "role": "OWNER" }])
    );
    assert!(t.ok(&["show", &list]).contains("bread"));

    t.ok(&["delete", &list]);
    assert_eq!(t.json(&["lists"]), serde_json::json!([]));
    assert!(t.fails(&["show", &list]).contains("not found"));
}

#[test]
fn failures_exit_non_zero_with_one_line() {
    let t = Tandem::new();
    let list = t.ok(&["create", "L"]).trim().to_owned();
    assert!(t.fails(&["show", "999"]).starts_with("tandem: not found"));
    assert!(t.fails(&["done", &list, "12345"]).contains("not found"));
    assert!(t.fails(&["show", "abc"]).starts_with("tandem: "));
    assert!(t.fails(&["show", "0"]).contains("not a valid list id"));
    assert!(t.fails(&["create", " "]).contains("invalid input"));
    t.fails(&["move", &list, "1"]);
    t.fails(&["frobnicate"]);
    assert!(t.fails(&["sync"]).contains("not signed in"));
    assert!(t.fails(&["watch"]).contains("not signed in"));
    assert!(t.fails(&["login", "a@b.c", "pw"]).contains("offline"));
    assert!(t.fails(&["register", "a@b.c", "pw", "--json"]).contains("offline"));
    assert!(t.fails(&["share", &list, "x@y.z", "viewer"]).starts_with("tandem: "));
    assert!(t.fails(&["share", &list, "x@y.z", "admin"]).starts_with("tandem: "));
}

#[test]
fn the_data_directory_comes_from_the_environment_too() {
    let t = Tandem::new();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["create", "From env", "--json"])
        .env("TANDEM_DATA", t.dir.path())
        .env("TANDEM_SERVER", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(out.status.success());
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["title"], "From env");
    assert_eq!(t.json(&["lists"])[0]["id"], created["id"]);
    let help = t.ok(&["--help"]);
    assert!(help.contains("$HOME/.tandem") && help.contains("TANDEM_DATA"));
}
