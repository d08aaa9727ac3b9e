//! The workloads. Each returns a report to print; none asserts anything about time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tandem_protocol::{ItemId, ListId};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::client::{Account, Rest, SyncSocket};
use crate::server::Server;
use crate::stats::Percentiles;

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
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (rest, owner, reader, permits) =
            (rest.clone(), owner.clone(), reader.cloned(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire().await?;
            let list = rest.create(&owner, &format!("load {i}")).await?;
            if let Some(reader) = reader {
                rest.share(&owner, list, &reader.email, "VIEWER").await?;
            }
            anyhow::Ok(list)
        });
    }
    let mut lists = Vec::with_capacity(n);
    while let Some(list) = tasks.join_next().await {
        lists.push(list??);
    }
    Ok(lists)
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

/// Waits for `n` clients to be ready, or for one of the tasks to fail, then opens the gate.
async fn start_when_ready<T: 'static>(
    n: usize,
    mut readies: mpsc::UnboundedReceiver<()>,
    open: watch::Sender<bool>,
    tasks: &mut JoinSet<anyhow::Result<T>>,
) -> anyhow::Result<()> {
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
    open.send(true)?;
    Ok(())
}

/// Microseconds since `start`, written into an item so that readers can time its delivery.
fn stamp(start: Instant) -> String {
    format!("t{}", start.elapsed().as_micros())
}

/// The latencies (µs) of items in `list` that `seen` did not hold yet.
fn new_latencies(
    socket: &SyncSocket,
    list: ListId,
    seen: &mut HashSet<ItemId>,
    start: Instant,
) -> Vec<u64> {
    let now = start.elapsed().as_micros() as u64;
    let Ok(items) = socket.docs[&list].0.items() else { return Vec::new() };
    items
        .into_iter()
        .filter(|item| seen.insert(item.id))
        .filter_map(|item| item.content.strip_prefix('t')?.parse::<u64>().ok())
        .map(|sent| now.saturating_sub(sent))
        .collect()
}

/// One writer and `readers` reader sockets per list; edits at `rate` per second per list.
pub async fn fanout(
    server: &Server,
    lists: usize,
    readers: usize,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<String> {
    let rest = Rest::new(&server.base);
    let owner = rest.signup("writer").await?;
    let reader = rest.signup("reader").await?;
    let ids = make_lists(&rest, &owner, Some(&reader), lists).await?;
    let start = Instant::now();
    let (gate, readies, open) = Gate::new();
    let clients = ids.len() * (readers + 1);
    let load_ends = Duration::from_secs(seconds);
    let (latencies, mut received) = mpsc::unbounded_channel::<u64>();
    let mut tasks: JoinSet<anyhow::Result<u64>> = JoinSet::new();

    for &list in &ids {
        for _ in 0..readers {
            let (base, account, go, latencies) =
                (server.base.clone(), reader.clone(), gate.clone(), latencies.clone());
            tasks.spawn(async move {
                let mut socket = SyncSocket::open_list(&base, &account, list).await?;
                let mut seen = HashSet::new();
                go.wait().await?;
                let began = Instant::now();
                while began.elapsed() < load_ends + GRACE {
                    let wait = (load_ends + GRACE).saturating_sub(began.elapsed());
                    let Ok(message) = tokio::time::timeout(wait, socket.recv()).await else {
                        break;
                    };
                    let Some(message) = message? else { break };
                    if socket.apply(message).await? == Some(list) {
                        for latency in new_latencies(&socket, list, &mut seen, start) {
                            let _ = latencies.send(latency);
                        }
                    }
                }
                Ok(0)
            });
        }
        let (base, account, go) = (server.base.clone(), owner.clone(), gate.clone());
        tasks.spawn(async move {
            let mut socket = SyncSocket::open_list(&base, &account, list).await?;
            go.wait().await?;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let began = Instant::now();
            let mut edits = 0u64;
            while began.elapsed() < load_ends {
                tokio::select! {
                    _ = tick.tick() => {
                        edits += 1;
                        let content = stamp(start);
                        socket.docs.get_mut(&list).context("held")?.0.add_item(ItemId(edits), &content)?;
                        socket.push(list).await?;
                    }
                    message = socket.recv() => {
                        let Some(message) = message? else { break };
                        socket.apply(message).await?;
                    }
                }
            }
            Ok(edits)
        });
    }
    drop(latencies);
    start_when_ready(clients, readies, open, &mut tasks).await?;
    let mut edits = 0;
    while let Some(result) = tasks.join_next().await {
        edits += result??;
    }
    let mut samples = Vec::new();
    while let Ok(latency) = received.try_recv() {
        samples.push(latency);
    }
    let expected = edits * readers as u64;
    let delivered = samples.len();
    let latency =
        Percentiles::of(samples).map(|p| p.to_string()).unwrap_or_else(|| "no deliveries".into());
    Ok(format!(
        "fanout: {lists} lists x {readers} readers, {rate} edits/s per list for {seconds} s\n\
         edit made -> visible in a reader's document: {latency}\n\
         delivered {delivered} of {expected} expected"
    ))
}

/// Two writers per list as fast as acknowledgements allow, one reader per list.
pub async fn throughput(server: &Server, lists: usize, seconds: u64) -> anyhow::Result<String> {
    let rest = Rest::new(&server.base);
    let owner = rest.signup("writer").await?;
    let reader = rest.signup("reader").await?;
    let ids = make_lists(&rest, &owner, Some(&reader), lists).await?;
    let (gate, readies, open) = Gate::new();
    let clients = ids.len() * 3;
    let load_ends = Duration::from_secs(seconds);
    let cpu_before = server.usage().map(|u| u.cpu_secs);
    // (edits made, edits seen) per client.
    let mut tasks: JoinSet<anyhow::Result<(u64, u64)>> = JoinSet::new();
    for &list in &ids {
        let (base, account, go) = (server.base.clone(), reader.clone(), gate.clone());
        tasks.spawn(async move {
            let mut socket = SyncSocket::open_list(&base, &account, list).await?;
            go.wait().await?;
            let began = Instant::now();
            while began.elapsed() < load_ends + GRACE {
                let wait = (load_ends + GRACE).saturating_sub(began.elapsed());
                let Ok(message) = tokio::time::timeout(wait, socket.recv()).await else { break };
                let Some(message) = message? else { break };
                socket.apply(message).await?;
            }
            Ok((0, socket.docs[&list].0.item_count()? as u64))
        });
        for w in 0..2u64 {
            let (base, account, go) = (server.base.clone(), owner.clone(), gate.clone());
            tasks.spawn(async move {
                let mut socket = SyncSocket::open_list(&base, &account, list).await?;
                go.wait().await?;
                let began = Instant::now();
                let mut edits = 0u64;
                while began.elapsed() < load_ends {
                    edits += 1;
                    socket
                        .docs
                        .get_mut(&list)
                        .context("held")?
                        .0
                        .add_item(ItemId(edits * 2 + w), "x")?;
                    socket.push(list).await?;
                    while !socket.acknowledged(list) {
                        let wait = tokio::time::timeout(ACK_PATIENCE, socket.recv()).await;
                        let message = wait
                            .map_err(|_| anyhow::anyhow!("list {list}: edit {edits} not acknowledged within {ACK_PATIENCE:?}"))??
                            .context("closed")?;
                        socket.apply(message).await?;
                    }
                }
                Ok((edits, 0))
            });
        }
    }
    start_when_ready(clients, readies, open, &mut tasks).await?;
    let (mut made, mut seen) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let (m, s) = result??;
        made += m;
        seen += s;
    }
    let cpu = match (cpu_before, server.usage()) {
        (Some(before), Some(after)) => {
            format!("server CPU {:.2} s during the load", after.cpu_secs - before)
        }
        _ => "server CPU not measured".into(),
    };
    Ok(format!(
        "throughput: {lists} lists, 2 writers each, {seconds} s\n\
         edits made {made}, seen by readers {seen}: {:.0} edits/s seen\n{cpu}",
        seen as f64 / seconds as f64
    ))
}

/// `count` idle sockets, each subscribed to its own list.
pub async fn connections(server: &Server, count: usize) -> anyhow::Result<String> {
    let rest = Rest::new(&server.base);
    let owner = rest.signup("idle").await?;
    let ids = make_lists(&rest, &owner, None, count).await?;
    let before = server.usage();
    let began = Instant::now();
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for list in ids {
        let (base, owner, permits) = (server.base.clone(), owner.clone(), permits.clone());
        tasks.spawn(async move {
            let permit = permits.acquire_owned().await?;
            let socket = SyncSocket::open_list(&base, &owner, list).await?;
            drop(permit);
            anyhow::Ok(socket)
        });
    }
    let mut sockets = Vec::with_capacity(count);
    while let Some(socket) = tasks.join_next().await {
        sockets.push(socket??);
    }
    let connect_time = began.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.usage();
    let memory = match (before, after) {
        (Some(before), Some(after)) => format!(
            "server RSS {:.1} MiB before, {:.1} MiB with every socket open: {:.1} KiB per connection",
            before.rss_kib as f64 / 1024.0,
            after.rss_kib as f64 / 1024.0,
            (after.rss_kib.saturating_sub(before.rss_kib)) as f64 / count as f64
        ),
        _ => "server memory not measured".into(),
    };
    drop(sockets);
    Ok(format!(
        "connections: {count} idle sockets, each subscribed to its own list\n\
         time to connect and load all: {:.2} s\n{memory}",
        connect_time.as_secs_f64()
    ))
}
