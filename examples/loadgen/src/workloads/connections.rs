//! `connections`: idle authenticated sockets, each subscribed to its own list (loaded), and
//! what they cost the server in memory.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{SETUP_CONCURRENCY, make_lists};
use crate::client::{Rest, SyncSocket};
use crate::server::Server;
use crate::stats::{mib, round, secs};

/// How long the sockets stay open before the server's memory is read.
const SETTLE: Duration = Duration::from_secs(1);

/// What to run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Sockets (the target is 10,000; each needs a file descriptor here and on the server).
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
}

impl Params {
    /// The parameters as report fields.
    pub fn json(&self) -> Value {
        json!({ "count": self.count })
    }
}

/// Runs the workload: time to connect all (and the server's CPU seconds meanwhile), server
/// RSS before and after, RSS per connection.
pub async fn run(server: &Server, p: Params) -> anyhow::Result<Value> {
    let rest = Rest::new(&server.base);
    let owner = rest.signup("idle").await?;
    let ids = make_lists(&rest, &owner, None, p.count).await?;
    eprintln!("connections: {} lists made; connecting", p.count);
    let before = server.usage();
    let began = Instant::now();
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for list in ids {
        let (base, owner, permits) = (server.base.clone(), owner.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            SyncSocket::open_list(&base, &owner, list).await
        });
    }
    let mut sockets = Vec::with_capacity(p.count);
    while let Some(socket) = tasks.join_next().await {
        sockets.push(socket??);
    }
    let connect_time = began.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = server.usage();
    drop(sockets);
    let cpu = before.zip(after).map(|(b, a)| round(a.cpu_secs - b.cpu_secs, 2));
    let per_connection = match (before, after) {
        (Some(before), Some(after)) => Some(round(
            after.rss_kib.saturating_sub(before.rss_kib) as f64 / p.count.max(1) as f64,
            1,
        )),
        _ => None,
    };
    Ok(json!({
        "connect_s": secs(connect_time),
        "server_cpu_s_connecting": cpu,
        "server_rss_before_mib": before.map(|u| mib(u.rss_kib)),
        "server_rss_after_mib": after.map(|u| mib(u.rss_kib)),
        "rss_per_connection_kib": per_connection,
    }))
}
