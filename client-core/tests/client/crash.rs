//! A process killed with SIGKILL in the middle of a stream of edits leaves a store that
//! opens, passes `PRAGMA integrity_check`, and holds every edit that had returned.
//!
//! The child is this very test binary, re-run with only [`stream_edits_child`] selected and
//! `TANDEM_CRASH_DIR` set; it prints one `EDIT ...` line after each edit returned.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use tandem_client::{Client, ClientConfig, ItemId, ListId};

const CHILD_ENV: &str = "TANDEM_CRASH_DIR";
/// Edits the parent waits for before killing the child.
const KILL_AFTER: usize = 120;

/// The child side: streams edits forever (until killed). A no-op in a normal test run.
#[test]
fn stream_edits_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let client = Client::open(ClientConfig::new(dir)).unwrap();
    let list = client.create_list("crash").unwrap().id;
    let mut out = std::io::stdout().lock();
    writeln!(out, "LIST {list}").unwrap();
    let mut items: Vec<ItemId> = Vec::new();
    for n in 0u64.. {
        let line = match n % 4 {
            1 if !items.is_empty() => {
                let item = items[(n as usize / 4) % items.len()];
                client.set_done(list, item, true).unwrap();
                format!("EDIT done {item}")
            }
            2 if !items.is_empty() => {
                let item = items[(n as usize / 3) % items.len()];
                client.edit_item(list, item, &format!("edited {n}")).unwrap();
                format!("EDIT text {item} {n}")
            }
            3 if items.len() > 1 => {
                client.move_item(list, items[n as usize % items.len()], None).unwrap();
                "EDIT move".to_owned()
            }
            _ => {
                let item = client.add_item(list, &format!("added {n}")).unwrap();
                items.push(item);
                format!("EDIT add {item} {n}")
            }
        };
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_mid_stream_keeps_every_returned_edit() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::stream_edits_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.iter().filter(|l: &&String| l.starts_with("EDIT ")).count() < KILL_AFTER {
        let line = lines.next().expect("the child stopped early").unwrap();
        printed.push(line);
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // Lines the child printed before it died are edits that had returned too.
    printed.extend(lines.map_while(Result::ok));

    let conn = rusqlite::Connection::open(dir.path().join("tandem.db")).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    let client = Client::open(ClientConfig::new(dir.path())).unwrap();
    let list: u64 = printed
        .iter()
        .find_map(|l| l.split("LIST ").nth(1))
        .expect("the child named its list")
        .parse()
        .unwrap();
    let shown = client.list(ListId(list)).unwrap();
    let stored: HashMap<u64, (String, bool)> =
        shown.items.iter().map(|i| (i.id.get(), (i.content.clone(), i.done))).collect();
    // The document (not only the derived rows) must agree.
    let doc =
        tandem_protocol::ListDoc::load(&client.document_bytes(ListId(list)).unwrap()).unwrap();
    assert_eq!(doc.items().unwrap(), shown.items);

    let mut checked = 0;
    for line in printed.iter().filter_map(|l| l.strip_prefix("EDIT ")) {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[..] {
            ["add", item, _] => {
                assert!(stored.contains_key(&item.parse().unwrap()), "lost add: {line}");
            }
            ["done", item] => assert!(stored[&item.parse().unwrap()].1, "lost done: {line}"),
            ["text", item, n] => {
                // A later edit of the same item may have returned without being printed.
                let (text, _) = &stored[&item.parse().unwrap()];
                let stored_n: u64 = text.rsplit(' ').next().unwrap().parse().unwrap();
                assert!(
                    text.starts_with("edited ") && stored_n >= n.parse().unwrap(),
                    "lost text edit: {line}, stored {text:?}"
                );
            }
            ["move"] => {}
            _ => panic!("unexpected line {line:?}"),
        }
        checked += 1;
    }
    assert!(checked >= KILL_AFTER);
    // And the store takes new edits.
    client.add_item(ListId(list), "after the crash").unwrap();
}
