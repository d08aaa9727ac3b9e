//! `reconnect`: clients that edited offline all come back at once.
//!
//! Each client owns its own list (its account owns a few, as a real user's does): it subscribes and loads it, its socket closes, and it keeps
//! the document and the sync state the way a real client persists them (only the shared heads
//! survive `State::encode`). It adds items offline, then every client reconnects when the gate
//! opens and syncs until the server has acknowledged all of its changes. A fresh socket then
//! checks a sample of the lists.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use tandem_protocol::automerge::sync::State;
use tandem_protocol::{ItemId, ListId};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Gate, SETUP_CONCURRENCY, make_owned_lists, signup_many, start_when_ready};
use crate::client::{Account, Rest, SyncSocket};
use crate::server::Server;
use crate::stats::{ms, round};

/// Longest a reconnected client waits for the server to acknowledge its edits; a client that
/// waited that long counts as not in step.
const SYNC_PATIENCE: Duration = Duration::from_secs(60);
/// Lists that a fresh socket checks after the run.
const SAMPLE: usize = 10;

/// What to run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Clients, each with its own list and socket.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Edits each client makes offline, each adding an item.
    #[arg(long, default_value_t = 10)]
    pub edits: u64,
    /// Clients (and so lists) per account.
    #[arg(long, default_value_t = 10)]
    pub lists_per_account: usize,
}

impl Params {
    /// The parameters as report fields.
    pub fn json(&self) -> Value {
        json!({
            "clients": self.clients,
            "edits": self.edits,
            "lists_per_account": self.lists_per_account,
        })
    }
}

/// What one client did after the gate opened.
struct Outcome {
    /// When the server had acknowledged all its edits (None: not within the patience).
    in_step: Option<Instant>,
    /// Bytes it sent on its new socket (message payloads, not WebSocket framing).
    bytes_sent: u64,
    /// Bytes it received on its new socket.
    bytes_received: u64,
    /// Size of its offline edits as saved changes (`save_after` the heads before them).
    edit_bytes: usize,
}

/// Runs the workload: clients in step and the time until all were, bytes sent against the
/// size of the edits, and the sample check.
pub async fn run(server: &Server, p: Params) -> anyhow::Result<Value> {
    anyhow::ensure!(p.lists_per_account > 0, "--lists-per-account must be positive");
    let rest = Rest::new(&server.base);
    let owners = signup_many(&rest, "offline", p.clients.div_ceil(p.lists_per_account)).await?;
    let lists = make_owned_lists(&rest, &owners, None, p.clients).await?;
    eprintln!("reconnect: {} lists made; loading them and editing offline", p.clients);
    let (gate, readies, open) = Gate::new();
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks: JoinSet<anyhow::Result<Outcome>> = JoinSet::new();
    for (owner, list) in lists.iter().cloned() {
        let (base, go, permits) = (server.base.clone(), gate.clone(), permits.clone());
        tasks.spawn(async move {
            let socket = {
                let _permit = permits.acquire().await?;
                SyncSocket::open_list(&base, &owner, list).await?
            };
            let (mut doc, state) = socket.close().await.remove(&list).context("held")?;
            let state = State::decode(&state.encode())?;
            let before = doc.heads();
            for i in 1..=p.edits {
                doc.add_item(ItemId(i), &format!("offline edit {i}"))?;
            }
            let edit_bytes = doc.save_after(&before).len();
            go.wait().await?;
            let mut socket = SyncSocket::connect(&base, &owner).await?;
            socket.resume(list, doc, state).await?;
            let in_step = match socket.wait_acknowledged(list, SYNC_PATIENCE).await {
                Ok(()) => Some(Instant::now()),
                Err(e) => {
                    eprintln!("reconnect: {e:#}");
                    None
                }
            };
            Ok(Outcome {
                in_step,
                bytes_sent: socket.bytes_out,
                bytes_received: socket.bytes_in,
                edit_bytes,
            })
        });
    }
    let opened = start_when_ready(p.clients, readies, open, &mut tasks).await?;
    eprintln!("reconnect: {} clients reconnecting", p.clients);
    let mut outcomes = Vec::with_capacity(p.clients);
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome??);
    }
    let in_step: Vec<Instant> = outcomes.iter().filter_map(|o| o.in_step).collect();
    let all_in_step = (in_step.len() == p.clients)
        .then(|| in_step.iter().max().map_or(Duration::ZERO, |last| *last - opened));
    let bytes_sent: u64 = outcomes.iter().map(|o| o.bytes_sent).sum();
    let bytes_received: u64 = outcomes.iter().map(|o| o.bytes_received).sum();
    let edit_bytes: usize = outcomes.iter().map(|o| o.edit_bytes).sum();
    let (checked, complete) = check_sample(&server.base, &lists, p.edits).await?;
    Ok(json!({
        "in_step": in_step.len(),
        "expected": p.clients,
        "all_in_step_ms": all_in_step.map(ms),
        "bytes_sent": bytes_sent,
        "bytes_received": bytes_received,
        "edit_bytes": edit_bytes,
        "bytes_sent_per_edit_byte": (edit_bytes > 0).then(|| round(bytes_sent as f64 / edit_bytes as f64, 2)),
        "sample_checked": checked,
        "sample_complete": complete,
    }))
}

/// Opens each of a sample of the lists on a fresh socket with an empty document: (lists
/// checked, lists holding all `edits` items).
async fn check_sample(
    base: &str,
    lists: &[(Account, ListId)],
    edits: u64,
) -> anyhow::Result<(usize, usize)> {
    let step = lists.len().div_ceil(SAMPLE).max(1);
    let (mut checked, mut complete) = (0, 0);
    for (owner, list) in lists.iter().step_by(step) {
        let list = *list;
        checked += 1;
        let mut socket = SyncSocket::open_list(base, owner, list).await?;
        let items = socket.wait_items(list, edits as usize, Duration::from_secs(5)).await?;
        if items == edits as usize {
            complete += 1;
        } else {
            eprintln!("reconnect: list {list} has {items} of {edits} items on a fresh socket");
        }
    }
    Ok((checked, complete))
}
