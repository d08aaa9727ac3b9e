//! The workloads, one module each. Each takes its parameters and returns its figures as a
//! JSON object for the report line; none asserts anything about time.
//!
//! What they share: lists made over REST, a start gate that holds every simulated client until
//! all are connected and loaded, and the patience of waits.

pub mod big_list;
pub mod connections;
pub mod fanout;
pub mod reconnect;
pub mod throughput;

use std::sync::Arc;
use std::time::Duration;

use tandem_protocol::ListId;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Account, Rest};

/// Time after the load stops for the last deliveries to arrive.
const GRACE: Duration = Duration::from_secs(2);
/// Longest wait for an acknowledgement before the run fails.
const ACK_PATIENCE: Duration = Duration::from_secs(10);
/// Most REST calls or socket setups in flight at once.
const SETUP_CONCURRENCY: usize = 32;

/// Makes `n` lists owned by `owner`, each shared with `reader` as VIEWER if given.
async fn make_lists(
    rest: &Rest,
    owner: &Account,
    reader: Option<&Account>,
    n: usize,
) -> anyhow::Result<Vec<ListId>> {
    let lists = make_owned_lists(rest, std::slice::from_ref(owner), reader, n).await?;
    Ok(lists.into_iter().map(|(_, list)| list).collect())
}

/// Makes `n` lists, the i-th owned by `owners[i % owners.len()]` and shared with `reader` as
/// VIEWER if given; returns each with its owner, in order.
async fn make_owned_lists(
    rest: &Rest,
    owners: &[Account],
    reader: Option<&Account>,
    n: usize,
) -> anyhow::Result<Vec<(Account, ListId)>> {
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let owner = owners[i % owners.len()].clone();
        let (rest, reader, permits) = (rest.clone(), reader.cloned(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire().await?;
            let list = rest.create(&owner, &format!("load {i}")).await?;
            if let Some(reader) = reader {
                rest.share(&owner, list, &reader.email, "VIEWER").await?;
            }
            anyhow::Ok((i, owner, list))
        });
    }
    let mut lists = Vec::with_capacity(n);
    while let Some(list) = tasks.join_next().await {
        lists.push(list??);
    }
    lists.sort_by_key(|(i, _, _)| *i);
    Ok(lists.into_iter().map(|(_, owner, list)| (owner, list)).collect())
}

/// Signs up `n` accounts named `{name}{i}`, a few at a time (each costs the server two
/// password hashes).
async fn signup_many(rest: &Rest, name: &str, n: usize) -> anyhow::Result<Vec<Account>> {
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (rest, permits, name) = (rest.clone(), permits.clone(), format!("{name}{i}"));
        tasks.spawn(async move {
            let _permit = permits.acquire().await?;
            rest.signup(&name).await
        });
    }
    let mut accounts = Vec::with_capacity(n);
    while let Some(account) = tasks.join_next().await {
        accounts.push(account??);
    }
    Ok(accounts)
}

/// Holds every simulated client at the starting line until all are connected and loaded,
/// and lets a failed setup end the run instead of leaving the others waiting.
#[derive(Clone)]
struct Gate {
    ready: mpsc::UnboundedSender<()>,
    go: watch::Receiver<bool>,
}

impl Gate {
    /// A gate for some clients, and the handle that opens it.
    fn new() -> (Self, mpsc::UnboundedReceiver<()>, watch::Sender<bool>) {
        let (ready, readies) = mpsc::unbounded_channel();
        let (open, go) = watch::channel(false);
        (Self { ready, go }, readies, open)
    }

    /// Says this client is ready and waits for the start.
    async fn wait(mut self) -> anyhow::Result<()> {
        let _ = self.ready.send(());
        self.go.wait_for(|open| *open).await?;
        Ok(())
    }
}

/// Waits for `n` clients to be ready, or for one of the tasks to fail, then opens the gate;
/// returns when it opened.
async fn start_when_ready<T: 'static>(
    n: usize,
    mut readies: mpsc::UnboundedReceiver<()>,
    open: watch::Sender<bool>,
    tasks: &mut JoinSet<anyhow::Result<T>>,
) -> anyhow::Result<Instant> {
    let mut ready = 0;
    while ready < n {
        tokio::select! {
            Some(()) = readies.recv() => ready += 1,
            Some(done) = tasks.join_next() => {
                done??;
                anyhow::bail!("a client finished before the start");
            }
        }
    }
    let opened = Instant::now();
    open.send(true)?;
    Ok(opened)
}
