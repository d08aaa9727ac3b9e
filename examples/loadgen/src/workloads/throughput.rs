//! `throughput`: two writers per list add items as fast as acknowledgements allow (each waits
//! for the server to acknowledge its edit before making the next), one reader per list counts
//! what it sees.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_protocol::ItemId;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{ACK_PATIENCE, GRACE, Gate, make_lists, start_when_ready};
use crate::client::{Rest, SyncSocket};
use crate::server::Server;
use crate::stats::round;

/// Writers per list.
const WRITERS: u64 = 2;

/// What to run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Lists, each with two writers and one reader.
    #[arg(long, default_value_t = 50)]
    pub lists: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

impl Params {
    /// The parameters as report fields.
    pub fn json(&self) -> Value {
        json!({ "lists": self.lists, "seconds": self.seconds, "writers_per_list": WRITERS })
    }
}

/// Runs the workload: edits made (`expected`) and seen by readers (`delivered`), edits per
/// second seen, and the server's CPU seconds during the load.
pub async fn run(server: &Server, p: Params) -> anyhow::Result<Value> {
    let rest = Rest::new(&server.base);
    let owner = rest.signup("writer").await?;
    let reader = rest.signup("reader").await?;
    let ids = make_lists(&rest, &owner, Some(&reader), p.lists).await?;
    eprintln!("throughput: {} lists made; connecting", p.lists);
    let (gate, readies, open) = Gate::new();
    let load = Duration::from_secs(p.seconds);
    // (edits made, edits seen) per client.
    let mut tasks: JoinSet<anyhow::Result<(u64, u64)>> = JoinSet::new();
    for &list in &ids {
        let (base, account, go) = (server.base.clone(), reader.clone(), gate.clone());
        tasks.spawn(async move {
            let mut socket = SyncSocket::open_list(&base, &account, list).await?;
            go.wait().await?;
            let deadline = Instant::now() + load + GRACE;
            while let Some(message) = socket.recv_until(deadline).await? {
                socket.apply(message).await?;
            }
            Ok((0, socket.item_count(list) as u64))
        });
        for w in 0..WRITERS {
            let (base, account, go) = (server.base.clone(), owner.clone(), gate.clone());
            tasks.spawn(async move {
                let mut socket = SyncSocket::open_list(&base, &account, list).await?;
                // Each writer merges the other's adds before its own next one.
                socket.track_changes(list)?;
                go.wait().await?;
                let began = Instant::now();
                let mut edits = 0u64;
                while began.elapsed() < load {
                    edits += 1;
                    socket.doc_mut(list)?.add_item(ItemId(edits * WRITERS + w), "x")?;
                    socket.push(list).await?;
                    socket.wait_acknowledged(list, ACK_PATIENCE).await?;
                }
                Ok((edits, 0))
            });
        }
    }
    start_when_ready(ids.len() * (1 + WRITERS as usize), readies, open, &mut tasks).await?;
    let cpu_before = server.usage().map(|u| u.cpu_secs);
    eprintln!("throughput: all connected; writing for {} s", p.seconds);
    let (mut made, mut seen) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let (m, s) = result??;
        made += m;
        seen += s;
    }
    let cpu = match (cpu_before, server.usage()) {
        (Some(before), Some(after)) => Some(round(after.cpu_secs - before, 2)),
        _ => None,
    };
    Ok(json!({
        "expected": made,
        "delivered": seen,
        "edits_per_s_seen": round(seen as f64 / p.seconds as f64, 1),
        "server_cpu_s_during_load": cpu,
    }))
}
