//! CI runs every workload briefly against the real server binary: the load generator works,
//! prints one JSON line, and nothing sent is lost. No timing is asserted; figures belong in
//! BENCHMARKS.md.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

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

/// Runs the load generator with `args` and returns its one JSON line, with the fields every
/// run of a server it started has.
fn run(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem-loadgen"))
        .arg("--server-bin")
        .arg(server_bin())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?} failed: {stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {stdout}");
    println!("{}", lines[0]);
    let report: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(report["workload"], args[0]);
    assert_eq!(report["server_started"], true);
    for field in ["server_start_ms", "server_peak_rss_mib", "server_cpu_s"] {
        assert!(report[field].is_number(), "{field}: {report}");
    }
    report
}

#[test]
fn fanout_delivers_every_edit_to_every_subscriber() {
    let report = run(&["fanout", "--subscribers", "3", "--edits", "10", "--rate", "20"]);
    assert_eq!(report["expected"], 30, "{report}");
    assert_eq!(report["delivered"], report["expected"], "{report}");
    assert!(report["p99_ms"].is_number(), "{report}");
}

#[test]
fn throughput_readers_see_every_edit_made() {
    let report = run(&["throughput", "--lists", "2", "--seconds", "1"]);
    assert!(report["expected"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["delivered"], report["expected"], "{report}");
    assert!(report["server_cpu_s_during_load"].is_number(), "{report}");
}

#[test]
fn connections_open_and_report_memory() {
    let report = run(&["connections", "--count", "20", "--settle-secs", "1"]);
    assert_eq!(report["server_restarted_before_connecting"], true, "{report}");
    assert!(report["rss_per_connection_kib"].is_number(), "{report}");
}

#[test]
fn reconnect_brings_every_list_in_step() {
    let report = run(&["reconnect", "--clients", "3", "--edits", "5", "--lists-per-account", "2"]);
    assert_eq!(report["in_step"], 3, "{report}");
    assert!(report["all_in_step_ms"].is_number(), "{report}");
    assert_eq!(report["sample_checked"], 3, "{report}");
    assert_eq!(report["sample_complete"], 3, "{report}");
    assert!(report["edit_bytes"].as_u64().unwrap() > 0, "{report}");
    assert!(report["bytes_sent"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn big_list_loads_every_item_after_a_restart() {
    let report = run(&["big-list", "--items", "300", "--batch", "100", "--settle-secs", "0"]);
    assert_eq!(report["items_loaded"], 300, "{report}");
    assert_eq!(report["cold"], true, "{report}");
    assert!(report["restart_ms"].is_number(), "{report}");
    assert!(report["saved_bytes"].as_u64().unwrap() > 0, "{report}");
}
