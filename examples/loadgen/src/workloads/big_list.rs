//! `big-list`: one list of many items, each added as its own change (so the list has
//! history), uploaded over the sync socket in messages of many changes each. Then, when the
//! load generator started the server, the server restarts on the same data and a reader loads
//! the list cold: the time that takes, and the server memory the loaded list holds against
//! its saved size.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_protocol::{ItemId, ListId};
use tokio::time::Instant;

use super::{ACK_PATIENCE, make_lists};
use crate::client::{Rest, SyncSocket};
use crate::server::Server;
use crate::stats::{mib, ms, round, secs};

/// Longest wait for the reader's document to hold every item.
const LOAD_PATIENCE: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Items, each added as its own change.
    #[arg(long, default_value_t = 10_000)]
    pub items: usize,
    /// Items added between two sync messages while uploading. The server refuses a message
    /// over its `max_message_bytes` (1 MiB by default; the load generator leaves it so).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Seconds after the load before the server's memory is read again, once the load's
    /// passing allocations (the whole-document message, folding stored chunks into one
    /// snapshot) are given back.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
}

impl Params {
    /// The parameters as report fields.
    pub fn json(&self) -> Value {
        json!({ "items": self.items, "batch": self.batch, "settle_secs": self.settle_secs })
    }
}

/// Runs the workload: upload time, cold restart and load times, server memory for the loaded
/// list, and the list's saved size.
pub async fn run(server: &mut Server, p: Params) -> anyhow::Result<Value> {
    anyhow::ensure!(p.batch > 0, "--batch must be positive");
    let rest = Rest::new(&server.base);
    let owner = rest.signup("big").await?;
    let reader = rest.signup("big-reader").await?;
    let list = make_lists(&rest, &owner, Some(&reader), 1).await?[0];
    let mut writer = SyncSocket::open_list(&server.base, &owner, list).await?;
    eprintln!("big-list: uploading {} items", p.items);
    let began = Instant::now();
    for i in 1..=p.items {
        writer.doc_mut(list)?.add_item(ItemId(i as u64), &format!("item {i} of the big list"))?;
        if i % p.batch == 0 || i == p.items {
            writer.push(list).await?;
            writer.wait_acknowledged(list, ACK_PATIENCE).await?;
        }
    }
    let upload = began.elapsed();
    let largest_message = writer.largest_sent;
    writer.close().await;
    let upload_peak_rss = server.usage().map(|u| mib(u.peak_rss_kib));

    let restart = if server.is_local() {
        eprintln!("big-list: restarting the server");
        Some(server.restart().await?)
    } else {
        None
    };
    let before = server.usage();
    let mut socket = SyncSocket::connect(&server.base, &reader).await?;
    let asked = Instant::now();
    socket.subscribe(list).await?;
    let loaded = socket.wait_items(list, p.items, LOAD_PATIENCE).await?;
    let load = asked.elapsed();
    let right_after = server.usage();
    tokio::time::sleep(Duration::from_secs(p.settle_secs)).await;
    let after = server.usage();
    let doc_save_bytes = socket.doc_mut(list)?.save().len();
    let saved_bytes = server.database_file().map(|db| stored_bytes(&db, list)).transpose()?;
    let memory_kib = before.zip(after).map(|(b, a)| a.rss_kib.saturating_sub(b.rss_kib));
    let per_saved_byte = memory_kib
        .zip(saved_bytes.filter(|&s| s > 0))
        .map(|(kib, saved)| round(kib as f64 * 1024.0 / saved as f64, 2));
    Ok(json!({
        "upload_s": secs(upload),
        "largest_message_bytes": largest_message,
        "upload_server_peak_rss_mib": upload_peak_rss,
        "cold": restart.is_some(),
        "restart_ms": restart.map(|s| ms(s.answering)),
        "load_ms": ms(load),
        "items_loaded": loaded,
        "server_rss_before_load_mib": before.map(|u| mib(u.rss_kib)),
        "server_rss_right_after_load_mib": right_after.map(|u| mib(u.rss_kib)),
        "server_rss_after_load_mib": after.map(|u| mib(u.rss_kib)),
        "list_memory_mib": memory_kib.map(mib),
        "saved_bytes": saved_bytes,
        "doc_save_bytes": doc_save_bytes,
        "memory_per_saved_byte": per_saved_byte,
    }))
}

/// The list's stored document (snapshot plus change chunks), read from the server's SQLite
/// file (read-only; the server keeps running).
fn stored_bytes(db: &Path, list: ListId) -> anyhow::Result<u64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let bytes: i64 = conn.query_row(
        "SELECT (SELECT coalesce(sum(length(snapshot)), 0) FROM list_documents WHERE list_id = ?1)
              + (SELECT coalesce(sum(length(data)), 0) FROM list_changes WHERE list_id = ?1)",
        [list.as_i64()],
        |row| row.get(0),
    )?;
    Ok(bytes as u64)
}
