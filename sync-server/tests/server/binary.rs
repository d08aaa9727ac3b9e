//! The real `tandem-server` binary, started as a user would start it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::json;

/// Starts the binary on a free port and returns it with its base URL.
pub fn start(data_dir: &std::path::Path) -> (Child, String) {
    start_with(data_dir, &[], &[("RUST_LOG", "warn")], Stdio::inherit())
}

/// Starts the binary with more arguments and environment, its log going to `stderr`.
pub fn start_with(
    data_dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stderr: Stdio,
) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("prints where it listens")
        .to_owned();
    (child, base)
}

#[tokio::test]
async fn the_binary_serves_the_walkthrough_and_keeps_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start(dir.path());
    let http = reqwest::Client::new();
    let call = |path: &str, body: serde_json::Value, token: Option<String>| {
        let mut req = http.post(format!("{base}/api/todolist/{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let reg =
        call("register", json!({"email": "walk@example.com", "password": "walkthrough"}), None)
            .await;
    let code = reg["data"]["demo_code"].as_str().unwrap().to_owned();
    call("verify", json!({"email": "walk@example.com", "code": code}), None).await;
    let login =
        call("login", json!({"email": "walk@example.com", "password": "walkthrough"}), None).await;
    let token = login["data"]["token"].as_str().unwrap().to_owned();
    let created = call("create", json!({"title": "Walk"}), Some(token.clone())).await;
    assert_eq!(created["code"], 200);
    child.kill().unwrap();
    child.wait().unwrap();

    // The embedded default: one SQLite file and a private secret in the data folder.
    assert!(dir.path().join("tandem.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("jwt-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the secret is readable by its owner only");
    }

    let (mut child, base) = start(dir.path());
    let lists: serde_json::Value = http
        .get(format!("{base}/api/todolist/read"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lists["data"][0]["title"], "Walk");
    child.kill().unwrap();
    child.wait().unwrap();
}
