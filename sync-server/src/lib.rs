//! Tandem's server: accounts, lists and sharing over REST, on sharded relational storage.
//!
//! Layout:
//! - [`config`]: flags, environment and TOML file, merged into a [`Config`].
//! - [`api`]: the HTTP routes, one module per concern, the envelope and [`api::error::ApiError`].
//! - [`auth`]: passwords, tokens, verification codes, throttling.
//! - [`store`]: the shard map and the SQLite / PostgreSQL databases behind it.
//! - [`mailer`]: how verification codes reach people.
//! - [`sync`]: real-time sync over WebSocket: the hub, one room task per active list.
//! - [`metrics`]: counters, gauges and histograms of this instance, in Prometheus format.
//!
//! A typical embedding (what the tests do):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let mut config = tandem_server::Config::embedded("/tmp/tandem-data");
//! config.listen = "127.0.0.1:0".parse()?;
//! let server = tandem_server::Server::start(config).await?;
//! println!("listening on {}", server.addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod config;
pub mod mailer;
pub mod metrics;
pub mod state;
pub mod store;
pub mod sync;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use tandem_protocol::snowflake::Snowflake;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::app;
pub use config::Config;
pub use state::AppState;

use auth::code::CodeHasher;
use auth::password::PasswordHasher;
use auth::throttle::Throttle;
use auth::token::{TokenKeys, load_or_create_secret};
use store::Store;

/// How often idle rate-limit keys are forgotten.
const THROTTLE_SWEEP: Duration = Duration::from_secs(60);
/// How often a stopping server looks whether every room has saved and unloaded.
const ROOMS_GONE_POLL: Duration = Duration::from_millis(10);
/// How often histogram samples are moved into their buckets between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Opens the store (creating and migrating databases) and builds the shared state.
/// Cancelling `draining` makes `/readyz` answer 503, refuses new sync sockets, tells open ones
/// to reconnect elsewhere (`shutting_down`), and has every room save what it holds and unload.
pub async fn build_state(config: Config, draining: CancellationToken) -> anyhow::Result<AppState> {
    // First: a mailer the server must not run with is refused before anything is created.
    let mailer = mailer::Mailer::start(&config.mailer, config.listen)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data folder {}", config.data_dir.display()))?;
    let ids = Snowflake::new(u64::from(config.node_id)).context("--node-id")?;
    let secret = load_or_create_secret(config.auth.jwt_secret.as_deref(), &config.data_dir)?;
    let tokens = TokenKeys::new(&secret, config.token_ttl())?;
    // The code HMAC key is derived from the token secret, so one secret serves both.
    let codes = CodeHasher::new(&[b"tandem-verification-codes:".as_slice(), &secret].concat());
    let store = Store::open(&config.shards, &config.data_dir).await.context("opening the store")?;
    let passwords = PasswordHasher::new(config.auth.max_concurrent_hashes).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let hub = sync::Hub::new(store.clone(), config.sync.clone(), metrics.clone(), draining.clone());
    Ok(AppState {
        hub,
        metrics,
        draining,
        store,
        tokens,
        passwords,
        codes,
        throttle: Arc::new(Throttle::new(config.throttle)),
        ids: Arc::new(ids),
        mailer,
        config: Arc::new(config),
    })
}

/// A running server.
///
/// Stopping has two steps. *Draining* ([`Server::drain`], what SIGTERM does): `/readyz` turns
/// 503, new sync sockets are refused with 503, open ones are told `shutting_down` (clients
/// reconnect with backoff, to another node once the load balancer has taken this one out),
/// and every room saves what it was sent, answers it and unloads; REST still answers for
/// `drain_delay_secs`. *Stopping*: no new connections, requests in flight finish, rooms are
/// waited for, the databases close. Both fit in `shutdown_grace_secs`.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    /// Stops accepting; cancelling it cancels `draining` too.
    shutdown: CancellationToken,
    /// A child of `shutdown`: cancelled alone, the server drains but still serves HTTP.
    draining: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    store: Store,
    hub: sync::Hub,
    grace: Duration,
    drain_delay: Duration,
}

impl Server {
    /// Binds `config.listen` (port 0 picks a free port) and serves until [`Server::shutdown`].
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let listen = config.listen;
        let (grace, drain_delay) = (config.shutdown_grace(), config.drain_delay());
        let shutdown = CancellationToken::new();
        let draining = shutdown.child_token();
        let state = build_state(config, draining.clone()).await?;
        let store = state.store.clone();
        let hub = state.hub.clone();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        // Sync frames are small and latency-bound: never hold them back for Nagle's algorithm.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY");
            }
        });

        let throttle = state.throttle.clone();
        let sweeper_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(THROTTLE_SWEEP);
            loop {
                tokio::select! {
                    _ = tick.tick() => throttle.forget_idle(),
                    _ = sweeper_stop.cancelled() => break,
                }
            }
        });
        let metrics = state.metrics.clone();
        let upkeep_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tokio::select! {
                    _ = tick.tick() => metrics.run_upkeep(),
                    _ = upkeep_stop.cancelled() => break,
                }
            }
        });

        let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Ok(Self { addr, shutdown, draining, task, store, hub, grace, drain_delay })
    }

    /// The address actually listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A token that, cancelled, starts draining (see [`Server`]) without stopping.
    pub fn draining_token(&self) -> CancellationToken {
        self.draining.clone()
    }

    /// What SIGTERM does: drains, keeps answering HTTP for `drain_delay_secs`, then stops;
    /// an error if all of it took longer than `shutdown_grace_secs`.
    pub async fn drain(self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.grace;
        self.draining.cancel();
        tracing::info!(
            delay_secs = self.drain_delay.as_secs(),
            "draining: /readyz answers 503 and sync sockets are told to reconnect"
        );
        tokio::time::sleep(self.drain_delay).await;
        tracing::info!("stopping: no new connections");
        self.shutdown.cancel();
        let grace = self.grace.as_secs();
        tokio::time::timeout_at(deadline, self.finish())
            .await
            .map_err(|_| anyhow::anyhow!("did not stop within shutdown_grace_secs ({grace} s)"))?
    }

    /// Stops at once (draining without the delay); an error if it took longer than
    /// `shutdown_grace_secs`.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let grace = self.grace;
        tokio::time::timeout(grace, self.finish())
            .await
            .map_err(|_| anyhow::anyhow!("did not stop within {} s", grace.as_secs()))?
    }

    /// Waits until the server stops (after its shutdown token is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.finish().await
    }

    /// After `shutdown` was cancelled: requests in flight finish, every room saves what it
    /// holds and unloads, then the databases close.
    async fn finish(self) -> anyhow::Result<()> {
        let served = self.task.await.context("server task")?.context("serving");
        while self.hub.loaded_rooms() > 0 {
            tokio::time::sleep(ROOMS_GONE_POLL).await;
        }
        self.store.close().await;
        served
    }
}
