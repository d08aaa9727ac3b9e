//! The sync engine: keeps the device's lists in step with the server over one WebSocket.
//!
//! [`SyncEngine::sync_once`] does one round (what `tandem sync` runs): housekeeping over REST
//! (reserve ids and give provisional lists one, tell the server about lists deleted here),
//! then connect, say Hello, push and pull every list, and return a [`SyncReport`] once every
//! list is in step, refused, or the time is up. [`SyncEngine::start`] runs the same in the
//! background on a thread of its own (with its own Tokio runtime, so it can be started from
//! any thread, an FFI caller's included): it stays connected, applies remote changes as they
//! arrive (`RemoteChanged` events), pushes local edits as they are made, and reconnects with
//! exponential backoff and jitter, except when the server says the app is too old
//! (`unsupported_version`): then it stops and reports [`SyncStatus::update_required`]. How
//! the server last closed the socket (close code and reason) is in [`SyncStatus::last_close`].
//!
//! The logic of one connection is the sans-IO [`Session`]; [`socket`] is only the pump.

pub mod close;
pub mod session;
pub mod socket;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::events::ChangeKind;
use crate::{Client, Error, ListId, Result};
pub use close::SyncClose;
pub use session::{ListFailure, ListSyncStatus, Refused, Session};
use socket::{Ended, Inputs, ListChange};

/// How the engine connects and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The first reconnect delay (before jitter).
    pub backoff_min: Duration,
    /// The longest reconnect delay.
    pub backoff_max: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How often a connected engine looks for changes made by other processes on the same
    /// store (its own process's edits are pushed at once).
    pub poll_every: Duration,
    /// How often to ping the server (the server pings too; this catches dead connections
    /// the server cannot tell us about).
    pub ping_every: Duration,
    /// Reconnect when nothing at all arrived for this long.
    pub idle_timeout: Duration,
    /// Most messages sent per second; keep it under the server's per-socket limit (200 by
    /// default), which closes sockets that go over.
    pub max_messages_per_second: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            poll_every: Duration::from_secs(1),
            ping_every: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(70),
            max_messages_per_second: 100,
        }
    }
}

impl SyncConfig {
    /// The delay before reconnect attempt `attempt` (0-based): exponential, capped, with
    /// jitter (uniform in the upper half) so that clients cut off together do not all come
    /// back in the same instant.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_min.saturating_mul(2u32.saturating_pow(attempt.min(20)));
        let cap = exp.min(self.backoff_max);
        let low = cap / 2;
        let spread = (cap - low).as_millis() as u64;
        low + Duration::from_millis(rand::thread_rng().gen_range(0..=spread))
    }
}

/// One list in a [`SyncReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListReport {
    /// The list.
    pub id: ListId,
    /// Where it stands.
    pub status: ListSyncStatus,
}

/// The outcome of [`SyncEngine::sync_once`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Every list is in step with the server and nothing was refused.
    pub in_step: bool,
    /// Each list and where it stands.
    pub lists: Vec<ListReport>,
    /// What the server refused.
    pub failures: Vec<ListFailure>,
    /// Lists whose provisional id was replaced by a server id: `(old, new)`.
    pub remapped: Vec<(ListId, ListId)>,
    /// Lists deleted here whose deletion the server confirmed.
    pub deleted: Vec<ListId>,
    /// Why the round is not in step, in one line (`None` when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SyncReport {
    fn build(
        session: &Session,
        remapped: Vec<(ListId, ListId)>,
        deleted: Vec<ListId>,
        timed_out: bool,
    ) -> Result<Self> {
        let lists: Vec<ListReport> =
            session.statuses()?.into_iter().map(|(id, status)| ListReport { id, status }).collect();
        let failures = session.failures().to_vec();
        let reason = if let Some(f) = failures.first() {
            Some(format!("list {}: {}: {}", f.list, f.code, f.message))
        } else if let Some(l) = lists.iter().find(|l| l.status == ListSyncStatus::NoId) {
            Some(format!("list {} has no server id yet (no reserved id left)", l.id))
        } else if let Some(l) = lists.iter().find(|l| l.status != ListSyncStatus::InStep) {
            Some(format!(
                "list {} is not in step{}",
                l.id,
                if timed_out { " (timed out)" } else { "" }
            ))
        } else if timed_out {
            Some("timed out".into())
        } else {
            None
        };
        Ok(Self { in_step: reason.is_none(), lists, failures, remapped, deleted, reason })
    }
}

/// The connection state of a background engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    /// Connected and welcomed by the server.
    pub connected: bool,
    /// The last connection-level problem, if any since the last successful connection.
    pub last_error: Option<String>,
    /// How many connections were opened so far.
    pub connections: u64,
    /// How the server closed the last connection (its close code and reason), if it did,
    /// since the last successful connection.
    pub last_close: Option<SyncClose>,
    /// The server no longer speaks this app's protocol: background sync has stopped, and
    /// the app should ask its user to update.
    pub update_required: bool,
}

/// Keeps a [`Client`]'s lists in step with its server.
#[derive(Clone)]
pub struct SyncEngine {
    client: Arc<Client>,
    config: SyncConfig,
    refused: Arc<Mutex<Refused>>,
}

/// Housekeeping's results.
#[derive(Default)]
struct Housekeeping {
    remapped: Vec<(ListId, ListId)>,
    deleted: Vec<ListId>,
}

impl SyncEngine {
    /// An engine for `client` with the default [`SyncConfig`].
    pub fn new(client: Arc<Client>) -> Self {
        Self::with_config(client, SyncConfig::default())
    }

    /// An engine with an explicit configuration.
    pub fn with_config(client: Arc<Client>, config: SyncConfig) -> Self {
        Self { client, config, refused: Arc::default() }
    }

    /// The client it syncs.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// REST work due before (and while) syncing: top up reserved ids, give provisional
    /// lists a server id, confirm deletions. Offline or unauthorized is an error; anything
    /// else is logged and left for the next time.
    async fn housekeeping(&self) -> Result<Housekeeping> {
        let mut done = Housekeeping::default();
        match self.client.refill_reserved_ids().await {
            Ok(_) => {}
            Err(e @ (Error::Offline(_) | Error::Unauthorized(_))) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "could not reserve list ids"),
        }
        done.remapped = self.client.adopt_provisional_lists()?;
        let pending = self.client.pending_deletions()?;
        let failed = self.client.confirm_deletions().await?;
        for (list, e) in &failed {
            self.client.report_sync_error(*list, "delete_failed", &e.to_string());
        }
        done.deleted =
            pending.into_iter().filter(|l| !failed.iter().any(|(f, _)| f == l)).collect();
        Ok(done)
    }

    fn session(&self) -> Session {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Session::new(Arc::clone(&self.client), refused)
    }

    fn keep_refused(&self, session: &Session) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = session.refused().clone();
    }

    /// One round: housekeeping, connect, push and pull every list, and return when all are
    /// in step or refused, or after `timeout` (then the report says which lists are not in
    /// step). Not being able to connect or sign in is an error. Runs on the caller's Tokio
    /// runtime; see [`SyncEngine::sync_once_blocking`] for callers without one.
    pub async fn sync_once(&self, timeout: Duration) -> Result<SyncReport> {
        let deadline = tokio::time::Instant::now() + timeout;
        let token = self.client.token()?;
        let done = tokio::time::timeout_at(deadline, self.housekeeping())
            .await
            .map_err(|_| Error::Offline("timed out before syncing".into()))??;
        let mut socket = tokio::time::timeout_at(
            deadline,
            socket::connect(self.client.server_url(), &token, self.config.connect_timeout),
        )
        .await
        .map_err(|_| Error::Offline("timed out connecting".into()))??;
        let mut session = self.session();
        let inputs = Inputs {
            local: None,
            stop: None,
            poll_every: self.config.poll_every,
            until_settled: true,
            ping_every: self.config.ping_every,
            idle_timeout: self.config.idle_timeout,
            max_messages_per_second: self.config.max_messages_per_second,
        };
        let pumped = tokio::time::timeout_at(
            deadline,
            socket::pump(&mut socket, &mut session, inputs, || async { Ok(()) }),
        )
        .await;
        self.keep_refused(&session);
        let timed_out = match pumped {
            Ok(Ok(_)) => false,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                if !session.welcomed() {
                    return Err(Error::Offline("timed out waiting for the server".into()));
                }
                true
            }
        };
        SyncReport::build(&session, done.remapped, done.deleted, timed_out)
    }

    /// [`SyncEngine::sync_once`] for callers outside any Tokio runtime (it makes its own).
    /// Must not be called from inside a runtime.
    pub fn sync_once_blocking(&self, timeout: Duration) -> Result<SyncReport> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the sync runtime: {e}")))?;
        runtime.block_on(self.sync_once(timeout))
    }

    /// Starts background sync on a thread of its own; it runs until [`SyncHandle::stop`] (or
    /// the handle is dropped).
    pub fn start(&self) -> Result<SyncHandle> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let status = Arc::new(Mutex::new(SyncStatus::default()));
        let engine = self.clone();
        let shared = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("tandem-sync".into())
            .spawn(move || {
                let runtime =
                    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt,
                        Err(e) => {
                            set_status(&shared, |s| s.last_error = Some(e.to_string()));
                            return;
                        }
                    };
                runtime.block_on(engine.run_background(stop_rx, shared));
            })
            .map_err(|e| Error::Internal(format!("cannot start the sync thread: {e}")))?;
        Ok(SyncHandle { stop: stop_tx, thread: Some(thread), status })
    }

    async fn run_background(self, mut stop: watch::Receiver<bool>, status: Arc<Mutex<SyncStatus>>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let subscription = self.client.subscribe(move |event| {
            let change = match event.kind {
                ChangeKind::ItemsChanged | ChangeKind::Renamed => {
                    Some(ListChange::Edited(event.list_id))
                }
                ChangeKind::Created | ChangeKind::Deleted | ChangeKind::IdRemapped { .. } => {
                    Some(ListChange::Lists)
                }
                ChangeKind::RemoteChanged
                | ChangeKind::RoleChanged
                | ChangeKind::SyncError { .. } => None,
            };
            if let Some(change) = change {
                let _ = tx.send(change);
            }
        });
        let mut attempt: u32 = 0;
        while !*stop.borrow() {
            // Whatever changed while disconnected is picked up by the new session anyway.
            while rx.try_recv().is_ok() {}
            let result = self.connect_and_pump(&mut rx, &mut stop, &status, &mut attempt).await;
            set_status(&status, |s| s.connected = false);
            match result {
                Ok(Ended::Stopped) => break,
                Ok(Ended::Settled) => {}
                Err(e @ Error::UpdateRequired(_)) => {
                    // Reconnecting cannot help until the app is updated.
                    tracing::warn!(error = %e, "sync stopped");
                    set_status(&status, |s| {
                        s.last_error = Some(e.to_string());
                        s.update_required = true;
                    });
                    break;
                }
                Err(e) => {
                    tracing::info!(error = %e, "sync connection ended");
                    set_status(&status, |s| s.last_error = Some(e.to_string()));
                }
            }
            let delay = self.config.backoff(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        self.client.unsubscribe(subscription);
    }

    async fn connect_and_pump(
        &self,
        rx: &mut mpsc::UnboundedReceiver<ListChange>,
        stop: &mut watch::Receiver<bool>,
        status: &Mutex<SyncStatus>,
        attempt: &mut u32,
    ) -> Result<Ended> {
        let token = self.client.token()?;
        self.housekeeping().await?;
        let mut socket =
            socket::connect(self.client.server_url(), &token, self.config.connect_timeout).await?;
        set_status(status, |s| {
            s.connected = true;
            s.last_error = None;
            s.last_close = None;
            s.connections += 1;
        });
        *attempt = 0;
        let mut session = self.session();
        let inputs = Inputs {
            local: Some(rx),
            stop: Some(stop),
            poll_every: self.config.poll_every,
            until_settled: false,
            ping_every: self.config.ping_every,
            idle_timeout: self.config.idle_timeout,
            max_messages_per_second: self.config.max_messages_per_second,
        };
        let result = socket::pump(&mut socket, &mut session, inputs, || async {
            self.housekeeping().await.map(drop)
        })
        .await;
        self.keep_refused(&session);
        if let Some(close) = session.closed() {
            set_status(status, |s| s.last_close = Some(close.clone()));
        }
        result
    }
}

fn set_status(status: &Mutex<SyncStatus>, f: impl FnOnce(&mut SyncStatus)) {
    f(&mut status.lock().unwrap_or_else(|p| p.into_inner()));
}

/// A running background sync. Dropping it stops the sync (without waiting).
pub struct SyncHandle {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    status: Arc<Mutex<SyncStatus>>,
}

impl SyncHandle {
    /// Whether background sync is still running: false once stopped, or once it gave up
    /// because the app must be updated ([`SyncStatus::update_required`]).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The connection state now.
    pub fn status(&self) -> SyncStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops syncing and waits for the sync thread to finish (it closes the socket first).
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_in_the_upper_half() {
        let config = SyncConfig {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            ..SyncConfig::default()
        };
        for attempt in 0..40 {
            let full = (Duration::from_millis(100) * 2u32.pow(attempt.min(20)))
                .min(Duration::from_secs(5));
            let delay = config.backoff(attempt);
            assert!(delay >= full / 2 && delay <= full, "attempt {attempt}: {delay:?}");
        }
    }

    #[test]
    fn sync_urls_follow_the_server_url() {
        assert_eq!(
            socket::sync_url("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/api/todolist/sync"
        );
        assert_eq!(
            socket::sync_url("https://tandem.example").unwrap(),
            "wss://tandem.example/api/todolist/sync"
        );
        assert!(socket::sync_url("ftp://x").is_err());
    }
}
