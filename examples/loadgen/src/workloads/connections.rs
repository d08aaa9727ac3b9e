//! `connections`: idle authenticated sockets, each subscribed to its own list (loaded), and
//! what they cost the server in memory. The lists belong to accounts of a few lists each, as
//! real users' do: the server's Welcome names every list of the account, so one account
//! owning thousands of lists would cost every socket in proportion. A server the load
//! generator started is restarted after the sign-ups, before the sockets connect: password
//! hashing leaves hundreds of MiB in the allocator, which would hide what the sockets cost.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{SETUP_CONCURRENCY, make_owned_lists, signup_many};
use crate::client::{Rest, SyncSocket};
use crate::server::Server;
use crate::stats::{mib, round, secs};

/// What to run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Sockets (the target is 10,000; each needs a file descriptor here and on the server).
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    /// Lists (and so sockets) per account.
    #[arg(long, default_value_t = 10)]
    pub lists_per_account: usize,
    /// Sockets only say Hello and subscribe to nothing: what a socket costs without a
    /// loaded list.
    #[arg(long)]
    pub without_lists: bool,
    /// Seconds the sockets stay open, idle, before the server's memory is read: longer than
    /// the server's `room_sleep_secs` (5 by default), so that idle lists are held as an idle
    /// server holds them.
    #[arg(long, default_value_t = 7)]
    pub settle_secs: u64,
}

impl Params {
    /// The parameters as report fields.
    pub fn json(&self) -> Value {
        json!({
            "count": self.count,
            "lists_per_account": self.lists_per_account,
            "without_lists": self.without_lists,
            "settle_secs": self.settle_secs,
        })
    }
}

/// Runs the workload: time to connect all (and the server's CPU seconds meanwhile), server
/// RSS before and after, RSS per connection.
pub async fn run(server: &mut Server, p: Params) -> anyhow::Result<Value> {
    anyhow::ensure!(p.lists_per_account > 0, "--lists-per-account must be positive");
    let rest = Rest::new(&server.base);
    let owners = signup_many(&rest, "idle", p.count.div_ceil(p.lists_per_account)).await?;
    let lists = make_owned_lists(&rest, &owners, None, p.count).await?;
    eprintln!("connections: {} accounts, {} lists made", owners.len(), p.count);
    let restarted = server.is_local();
    if restarted {
        server.restart().await?;
    }
    let before = server.usage();
    let began = Instant::now();
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for (owner, list) in lists {
        let (base, permits) = (server.base.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            if p.without_lists {
                SyncSocket::connect(&base, &owner).await
            } else {
                SyncSocket::open_list(&base, &owner, list).await
            }
        });
    }
    let mut sockets = Vec::with_capacity(p.count);
    while let Some(socket) = tasks.join_next().await {
        sockets.push(socket??);
    }
    let connect_time = began.elapsed();
    tokio::time::sleep(Duration::from_secs(p.settle_secs)).await;
    let after = server.usage();
    let rooms_loaded = server.gauge("tandem_rooms_loaded").await;
    let rooms_asleep = server.gauge("tandem_rooms_asleep").await;
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
        "server_restarted_before_connecting": restarted,
        "connect_s": secs(connect_time),
        "server_cpu_s_connecting": cpu,
        "server_rss_before_mib": before.map(|u| mib(u.rss_kib)),
        "server_rss_after_mib": after.map(|u| mib(u.rss_kib)),
        "rss_per_connection_kib": per_connection,
        "rooms_loaded": rooms_loaded,
        "rooms_asleep": rooms_asleep,
    }))
}
