//! `fanout`: one writer adds items to a list at a steady rate while subscribers watch it.
//! Latency is from the edit being made to it being visible in a subscriber's document, over
//! every (subscriber, edit) pair.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_protocol::{ItemId, ListId};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{ACK_PATIENCE, Gate, make_lists, start_when_ready};
use crate::client::{Rest, SyncSocket};
use crate::server::Server;
use crate::stats::{Percentiles, merge};

/// How long after the writer's last edit is due a subscriber keeps waiting for it.
const DELIVERY_PATIENCE: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Subscriber sockets per list (of one reader account the list is shared with).
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Edits the writer makes, each adding an item.
    #[arg(long, default_value_t = 300)]
    pub edits: u64,
    /// Edits per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Lists, each with its own writer and subscribers.
    #[arg(long, default_value_t = 1)]
    pub lists: usize,
}

impl Params {
    /// The parameters as report fields.
    pub fn json(&self) -> Value {
        json!({
            "lists": self.lists,
            "subscribers": self.subscribers,
            "edits": self.edits,
            "rate_per_s": self.rate,
        })
    }
}

/// Runs the workload: `delivered`, `expected` and the latency percentiles.
pub async fn run(server: &Server, p: Params) -> anyhow::Result<Value> {
    anyhow::ensure!(p.rate > 0.0, "--rate must be positive");
    let rest = Rest::new(&server.base);
    let owner = rest.signup("writer").await?;
    let reader = rest.signup("reader").await?;
    let ids = make_lists(&rest, &owner, Some(&reader), p.lists).await?;
    eprintln!(
        "fanout: {} lists made; connecting {} sockets",
        p.lists,
        p.lists * (p.subscribers + 1)
    );
    let start = Instant::now();
    let (gate, readies, open) = Gate::new();
    let load = Duration::from_secs_f64(p.edits as f64 / p.rate);
    let (latencies, mut received) = mpsc::unbounded_channel::<u64>();
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

    for &list in &ids {
        for _ in 0..p.subscribers {
            let (base, account, go, latencies) =
                (server.base.clone(), reader.clone(), gate.clone(), latencies.clone());
            tasks.spawn(async move {
                let mut socket = SyncSocket::open_list(&base, &account, list).await?;
                go.wait().await?;
                let deadline = Instant::now() + load + DELIVERY_PATIENCE;
                // The writer adds items 1, 2, ... in order, so they arrive in that order too.
                let mut next = 1;
                while next <= p.edits {
                    let Some(message) = socket.recv_until(deadline).await? else { break };
                    if socket.apply(message).await? == Some(list) {
                        while let Some(sent) = stamp_of(&socket, list, next) {
                            let _ = latencies.send(micros_since(start).saturating_sub(sent));
                            next += 1;
                        }
                    }
                }
                Ok(())
            });
        }
        let (base, account, go) = (server.base.clone(), owner.clone(), gate.clone());
        tasks.spawn(async move {
            let mut socket = SyncSocket::open_list(&base, &account, list).await?;
            go.wait().await?;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / p.rate));
            let mut edits = 0;
            while edits < p.edits {
                tokio::select! {
                    _ = tick.tick() => {
                        edits += 1;
                        let content = format!("t{}", micros_since(start));
                        socket.doc_mut(list)?.add_item(ItemId(edits), &content)?;
                        socket.push(list).await?;
                    }
                    message = socket.recv() => {
                        let Some(message) = message? else { anyhow::bail!("writer's socket closed") };
                        socket.apply(message).await?;
                    }
                }
            }
            socket.wait_acknowledged(list, ACK_PATIENCE).await
        });
    }
    drop(latencies);
    let clients = ids.len() * (p.subscribers + 1);
    start_when_ready(clients, readies, open, &mut tasks).await?;
    eprintln!("fanout: all connected; writing for {:.1} s", load.as_secs_f64());
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let mut samples = Vec::new();
    while let Ok(latency) = received.try_recv() {
        samples.push(latency);
    }
    let mut figures = json!({
        "delivered": samples.len(),
        "expected": p.edits * (p.subscribers * p.lists) as u64,
    });
    merge(&mut figures, Percentiles::json(samples));
    Ok(figures)
}

fn micros_since(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// When item `id` was made (µs since the start), if the subscriber's document has it.
fn stamp_of(socket: &SyncSocket, list: ListId, id: u64) -> Option<u64> {
    let item = socket.docs[&list].0.item(ItemId(id)).ok()??;
    item.content.strip_prefix('t')?.parse().ok()
}
