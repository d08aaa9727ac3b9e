//! Real-time sync: the [`Hub`] that routes each list's traffic to its room task, the room
//! tasks ([`room`]) that merge, validate and save before they forward, and the socket sessions
//! ([`connection`]) that speak the wire protocol, each writing through its [`Outbox`].
//!
//! Memory follows the lists in use: a room is loaded when a socket subscribes to its list (or
//! REST renames it) and unloaded after it has been idle with no subscriber for a while. What
//! one user costs is bounded: sockets per user and messages per second across them
//! ([`user_limits`]), and bytes queued per socket ([`outbox`]).

pub mod connection;
pub mod outbox;
pub mod room;
pub mod user_limits;

pub use outbox::Outbox;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tandem_protocol::wire::{ListAccess, RemovalReason, ServerMessage};
use tandem_protocol::{ListId, Role, UserId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use user_limits::{SocketSlot, UserLimits};

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use room::{RoomCommand, RoomInit};

/// Limits of the sync socket, all configurable under `[sync]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Largest frame accepted from a client, in bytes.
    pub max_message_bytes: usize,
    /// Largest stored document (snapshot plus changes) a list may grow to, in bytes.
    pub max_document_bytes: usize,
    /// Messages per second one socket may send (also the burst).
    pub messages_per_second: u32,
    /// Frames queued for one socket before it counts as a slow reader and is closed.
    pub outbound_queue: usize,
    /// Bytes queued for one socket before it counts as a slow reader and is closed.
    pub outbound_queue_bytes: usize,
    /// Seconds a new socket has to send `Hello` before it is closed.
    pub hello_timeout_secs: u64,
    /// Oldest protocol version accepted from clients. Raising it above what older apps speak
    /// makes them stop syncing and tell their user to update (`unsupported_version`).
    pub min_client_version: u16,
    /// Sync sockets one user may have open at once (on this node).
    pub max_sockets_per_user: usize,
    /// Messages per second one user may send across all of their sockets (also the burst).
    pub user_messages_per_second: u32,
    /// Largest total size of the changes of one message once decoded (inflated), in bytes.
    pub max_decoded_message_bytes: usize,
    /// Most operations one change may hold (a character typed is one operation).
    pub max_change_ops: usize,
    /// Most operations a list's document may hold, history included.
    pub max_document_ops: usize,
    /// Changes whose dependencies are missing that the room holds for one peer until the
    /// next message, by count and by decoded bytes; beyond either the message is refused.
    pub max_held_changes: usize,
    /// See `max_held_changes`.
    pub max_held_bytes: usize,
    /// Automerge actor ids (device sign-ins) one user may bring to one list.
    pub max_actors_per_user: usize,
    /// Times per minute one user may be sent a list's whole history (a new replica, or a
    /// peer that says it has nothing); beyond that such requests get `rate_limited`.
    pub full_syncs_per_minute: u32,
    /// Seconds between pings.
    pub ping_secs: u64,
    /// Seconds of silence after which a socket is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a room with no subscriber stays loaded.
    pub room_idle_secs: u64,
    /// Seconds of quiet after which a room lets go of its document (up to 64 KiB stored)
    /// and keeps only its snapshot, loading it again for the next message: idle subscribed
    /// lists then cost a few KiB instead of ~20 KiB each.
    pub room_sleep_secs: u64,
    /// Chunks appended to a document before it is compacted into a new snapshot.
    pub compact_after_chunks: usize,
    /// `Origin` values allowed to open a socket; empty allows any (non-browser clients send
    /// none).
    pub allowed_origins: Vec<String>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            max_document_bytes: 16 * 1024 * 1024,
            messages_per_second: 200,
            outbound_queue: 1024,
            outbound_queue_bytes: 8 * 1024 * 1024,
            hello_timeout_secs: 10,
            min_client_version: tandem_protocol::wire::MIN_PROTOCOL_VERSION,
            max_sockets_per_user: 16,
            user_messages_per_second: 400,
            max_decoded_message_bytes: 8 * 1024 * 1024,
            max_change_ops: 100_000,
            max_document_ops: 2_000_000,
            max_held_changes: 256,
            max_held_bytes: 1024 * 1024,
            max_actors_per_user: 256,
            full_syncs_per_minute: 6,
            ping_secs: 30,
            idle_timeout_secs: 60,
            room_idle_secs: 30,
            room_sleep_secs: 5,
            compact_after_chunks: 200,
            allowed_origins: Vec::new(),
        }
    }
}

impl SyncConfig {
    /// Seconds as a `Duration`.
    pub fn ping(&self) -> Duration {
        Duration::from_secs(self.ping_secs)
    }
}

/// A socket's identity within this server.
pub type ConnId = u64;

/// Routes sync traffic and membership changes to rooms and sockets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    store: Store,
    metrics: Arc<Metrics>,
    config: SyncConfig,
    rooms: std::sync::Mutex<HashMap<ListId, mpsc::Sender<RoomCommand>>>,
    sockets: std::sync::Mutex<HashMap<UserId, HashMap<ConnId, Outbox>>>,
    limits: Arc<UserLimits>,
    next_conn: AtomicU64,
    /// Cancelled when the server drains: every socket says so and closes, and every room
    /// saves what it was sent and unloads.
    shutdown: CancellationToken,
}

impl Hub {
    /// A hub over the store.
    pub fn new(
        store: Store,
        config: SyncConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let limits = UserLimits::new(config.max_sockets_per_user, config.user_messages_per_second);
        Self {
            inner: Arc::new(HubInner {
                store,
                metrics,
                config,
                rooms: Default::default(),
                sockets: Default::default(),
                limits: Arc::new(limits),
                next_conn: AtomicU64::new(1),
                shutdown,
            }),
        }
    }

    /// The sync limits.
    pub fn config(&self) -> &SyncConfig {
        &self.inner.config
    }

    /// Cancelled when the server drains (and when it stops).
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// The server's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The server's counters, shared.
    pub fn shared_metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.inner.metrics)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Number of rooms loaded now.
    pub fn loaded_rooms(&self) -> usize {
        self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Distinct users with at least one socket past `Hello` now.
    pub fn active_users(&self) -> usize {
        self.inner.sockets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A slot for one more sync socket of `user`, or `None` if the user already has
    /// `max_sockets_per_user` open on this node. Hold it for as long as the socket lives.
    pub fn claim_socket(&self, user: UserId) -> Option<SocketSlot> {
        self.inner.limits.claim(user)
    }

    /// Counts one message from `user` against their rate across all of their sockets; false
    /// when they are over it.
    pub fn allow_message(&self, user: UserId) -> bool {
        self.inner.limits.allow_message(user)
    }

    /// Registers a socket of `user`, returning its id.
    pub fn connect(&self, user: UserId, outbox: Outbox) -> ConnId {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        self.inner
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(user)
            .or_default()
            .insert(conn, outbox);
        conn
    }

    /// Forgets a socket.
    pub fn disconnect(&self, user: UserId, conn: ConnId) {
        let mut sockets = self.inner.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = sockets.get_mut(&user) {
            conns.remove(&conn);
            if conns.is_empty() {
                sockets.remove(&user);
            }
        }
    }

    /// Sends a command to a list's room, loading the room if needed.
    pub(crate) async fn to_room(&self, list: ListId, init: RoomInit, mut command: RoomCommand) {
        loop {
            let sender = {
                let mut rooms = self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner());
                rooms
                    .entry(list)
                    .or_insert_with(|| room::spawn(self.clone(), list, init.clone()))
                    .clone()
            };
            match sender.send(command).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(returned)) => {
                    // The room unloaded itself meanwhile; forget it and load a new one.
                    command = returned;
                    let mut rooms = self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner());
                    if rooms.get(&list).is_some_and(|s| s.same_channel(&sender)) {
                        rooms.remove(&list);
                    }
                }
            }
        }
    }

    /// Called by a room that wants to unload: succeeds (and forgets the room) only if no
    /// command is waiting for it.
    pub(crate) fn try_unload(&self, list: ListId, inbox: &mpsc::Receiver<RoomCommand>) -> bool {
        let mut rooms = self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if !inbox.is_empty() {
            return false;
        }
        rooms.remove(&list);
        true
    }

    /// Takes a socket out of a list's room. A room that is not loaded holds no socket, so it
    /// is not loaded for this (a stopping server's rooms unload before their sockets leave).
    pub(crate) async fn leave(&self, list: ListId, peer: ConnId) {
        self.to_loaded_room(list, RoomCommand::Leave { peer }).await;
    }

    /// Sends a command to a room only if it is loaded.
    async fn to_loaded_room(&self, list: ListId, command: RoomCommand) {
        let sender = self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner()).get(&list).cloned();
        if let Some(sender) = sender {
            let _ = sender.send(command).await;
        }
    }

    /// Tells `user`'s sockets about a list.
    fn tell_user(&self, user: UserId, message: &ServerMessage) {
        let outboxes: Vec<Outbox> = self
            .inner
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&user)
            .map(|conns| conns.values().cloned().collect())
            .unwrap_or_default();
        for outbox in outboxes {
            outbox.send(message);
        }
    }

    /// After a membership change committed on the list's shard: `role` is the user's new
    /// role, or `None` if the user lost access. Open sockets and the room follow at once.
    pub async fn access_changed(&self, list: ListId, user: UserId, role: Option<Role>) {
        match role {
            Some(role) => self.tell_user(user, &ServerMessage::Access(ListAccess { list, role })),
            None => self
                .tell_user(user, &ServerMessage::Removed { list, reason: RemovalReason::Unshared }),
        }
        self.to_loaded_room(list, RoomCommand::SetRole { user, role }).await;
    }

    /// After a list was deleted: every member's sockets drop it and its room closes.
    pub async fn list_deleted(&self, list: ListId, members: &[UserId]) {
        for &user in members {
            self.tell_user(user, &ServerMessage::Removed { list, reason: RemovalReason::Deleted });
        }
        self.to_loaded_room(list, RoomCommand::Deleted).await;
    }

    /// Renames a list for `user` through its room, so the document, the rows and every
    /// subscriber see the new title. Returns the title and the new version.
    pub async fn rename(
        &self,
        list: ListId,
        user: UserId,
        title: String,
        expected_version: Option<i64>,
    ) -> Result<(String, i64), StoreError> {
        // Refuse before loading a room for a list the user cannot see.
        self.inner.store.access(list, user).await?;
        let (reply, answer) = oneshot::channel();
        self.to_room(
            list,
            RoomInit::Load,
            RoomCommand::Rename { user, title, expected_version, reply },
        )
        .await;
        answer.await.unwrap_or(Err(StoreError::NotFound))
    }
}
