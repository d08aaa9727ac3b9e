//! `tandem sync` and `tandem watch`: the two commands that talk to the sync socket, through
//! [`tandem_client::SyncEngine`]. Kept apart from `command.rs` because they are the only
//! long-running ones (watch runs until killed and prints as things happen). When the server
//! closes the socket, its close code and reason are printed (`sync` fails with them; `watch`
//! shows them and retries, or exits non-zero when the app must be updated).

use std::io::Write;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde_json::json;
use tandem_client::events::{ChangeEvent, ChangeKind};
use tandem_client::sync::ListSyncStatus;
use tandem_client::{Client, ListId, SyncEngine, SyncStatus};

use crate::command::runtime;
use crate::output::emit;

/// One round of sync; fails (non-zero exit, one line) unless every list ends in step.
pub(crate) fn sync(
    client: Client,
    timeout: Duration,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let engine = SyncEngine::new(Arc::new(client));
    let report = runtime()?.block_on(engine.sync_once(timeout))?;
    emit(out, json, &report, || {
        let mut lines = Vec::new();
        for (old, new) in &report.remapped {
            lines.push(format!("List {old} is now list {new}."));
        }
        for list in &report.deleted {
            lines.push(format!("Deleted list {list} on the server."));
        }
        for failure in &report.failures {
            lines.push(format!("List {}: {}: {}", failure.list, failure.code, failure.message));
        }
        let in_step = report.lists.iter().filter(|l| l.status == ListSyncStatus::InStep).count();
        if report.in_step {
            lines.push(match in_step {
                1 => "The list is in step with the server.".to_owned(),
                n => format!("All {n} lists are in step with the server."),
            });
        }
        lines.join("\n")
    })?;
    out.flush()?;
    if let Some(reason) = &report.reason {
        anyhow::bail!("sync incomplete: {reason}");
    }
    Ok(())
}

/// Whether `event` concerns the watched list.
fn concerns(event: &ChangeEvent, filter: Option<ListId>) -> bool {
    match filter {
        None => true,
        Some(list) => {
            event.list_id == list
                || matches!(event.kind, ChangeKind::IdRemapped { old } if old == list)
        }
    }
}

/// One event as a line of text.
fn event_text(client: &Client, event: &ChangeEvent) -> String {
    let id = event.list_id;
    let shown = client.list(id).ok();
    let title = shown.as_ref().map(|l| format!(" {:?}", l.title)).unwrap_or_default();
    let items = shown
        .as_ref()
        .map(|l| {
            let items: Vec<String> = l
                .items
                .iter()
                .map(|i| format!("[{}] {}", if i.done { "x" } else { " " }, i.content))
                .collect();
            format!(": {}", items.join(", "))
        })
        .unwrap_or_default();
    match &event.kind {
        ChangeKind::Created => format!("list {id}{title} appeared{items}"),
        ChangeKind::Renamed => format!("list {id}{title} renamed here"),
        ChangeKind::Deleted => format!("list {id} deleted"),
        ChangeKind::ItemsChanged => format!("list {id}{title} changed here{items}"),
        ChangeKind::RemoteChanged => format!("list {id}{title} changed remotely{items}"),
        ChangeKind::IdRemapped { old } => format!("list {old} is now list {id}"),
        ChangeKind::RoleChanged => format!(
            "list {id}{title}: your role is now {}",
            shown.as_ref().map(|l| l.role.to_string()).unwrap_or_default()
        ),
        ChangeKind::SyncError { code, message } => {
            format!("list {id}{title}: refused by the server ({code}): {message}")
        }
    }
}

/// One connection-state line for stderr, when it changed. A close by the server shows its
/// close code and reason (they are part of the error's text).
fn status_text(status: &SyncStatus) -> String {
    match (&status.connected, &status.last_error) {
        (true, _) => "tandem: connected".into(),
        (false, Some(e)) if status.update_required => format!("tandem: sync stopped ({e})"),
        (false, Some(e)) => format!("tandem: disconnected ({e}); retrying"),
        (false, None) => "tandem: connecting".into(),
    }
}

/// Stays connected and prints each change until the process is killed.
pub(crate) fn watch(
    client: Client,
    filter: Option<ListId>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    client.token()?; // signed out: say so now rather than retry forever
    if let Some(list) = filter {
        client.list(list)?;
    }
    let client = Arc::new(client);
    let (tx, rx) = mpsc::channel::<ChangeEvent>();
    client.subscribe(move |event| {
        let _ = tx.send(event.clone());
    });
    let handle = SyncEngine::new(Arc::clone(&client)).start()?;
    let mut last_status = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(event) if concerns(&event, filter) => {
                if json {
                    let list = client.list(event.list_id).ok();
                    let mut value = serde_json::to_value(&event)?;
                    value["list"] = json!(list);
                    serde_json::to_writer(&mut *out, &value)?;
                    writeln!(out)?;
                } else {
                    writeln!(out, "{}", event_text(&client, &event))?;
                }
                out.flush()?;
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let status = handle.status();
        let text = status_text(&status);
        if text != last_status {
            eprintln!("{text}");
            last_status = text;
        }
        if status.update_required {
            handle.stop();
            anyhow::bail!("{}", status.last_error.unwrap_or_else(|| "update required".into()));
        }
    }
    handle.stop();
    Ok(())
}
