//! CI runs every workload briefly against the real server binary: the load generator works
//! and nothing sent is lost. No timing is asserted; figures belong in BENCHMARKS.md.

use std::path::PathBuf;
use std::process::Command;

/// The `tandem-server` binary built beside this test (`cargo test --workspace` builds it).
fn server_bin() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let dir = deps.parent().unwrap().parent().unwrap();
    let bin = dir.join("tandem-server");
    assert!(
        bin.exists(),
        "{} is missing: run cargo test --workspace (or cargo build -p tandem-server)",
        bin.display()
    );
    bin
}

fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem-loadgen"))
        .arg("--server-bin")
        .arg(server_bin())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{stdout}");
    stdout
}

fn numbers_after(text: &str, prefix: &str) -> Vec<u64> {
    let line = text
        .lines()
        .find(|l| l.contains(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn fanout_delivers_every_edit_to_every_reader() {
    let out = run(&["fanout", "--lists", "3", "--readers", "3", "--rate", "5", "--seconds", "1"]);
    let counts = numbers_after(&out, "delivered");
    assert_eq!(counts[0], counts[1], "delivered vs expected: {out}");
    assert!(counts[0] > 0);
}

#[test]
fn throughput_readers_see_every_edit_made() {
    let out = run(&["throughput", "--lists", "2", "--seconds", "1"]);
    let counts = numbers_after(&out, "edits made");
    assert_eq!(counts[0], counts[1], "made vs seen: {out}");
    assert!(counts[0] > 0);
}

#[test]
fn connections_open_and_report_memory() {
    let out = run(&["connections", "--count", "20"]);
    assert!(out.contains("per connection"), "{out}");
}
