//! One sync socket: an adapter between the WebSocket and the hub. It splits the socket, keeps
//! the ping and silence timers, checks the protocol (`Hello` first, binary CBOR frames),
//! subscribes the socket to each list it names after checking the user's access, and hands
//! sync messages to the list's room.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tandem_protocol::wire::{
    ClientMessage, ErrorCode, ListAccess, ListErrorCode, ServerMessage, negotiate,
};
use tandem_protocol::{ListId, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::room::{RoomCommand, RoomInit};
use super::{ConnId, Hub, Outbox};
use crate::store::StoreError;

/// How long the writer keeps trying to deliver queued frames once the socket is closing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves one authenticated socket until it closes.
pub async fn serve(socket: WebSocket, hub: Hub, user: UserId, email: String) {
    let config = hub.config().clone();
    let (mut sink, mut stream) = socket.split();
    let (frames, mut queued) = mpsc::channel::<Bytes>(config.outbound_queue.max(1));
    let kill = CancellationToken::new();
    let outbox = Outbox { frames, kill: kill.clone() };
    hub.metrics().open_sockets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let writer_kill = kill.clone();
    let ping_every = config.ping();
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(ping_every);
        ping.tick().await;
        loop {
            tokio::select! {
                frame = queued.recv() => match frame {
                    Some(frame) => if sink.send(Message::Binary(frame)).await.is_err() { break },
                    None => break,
                },
                _ = ping.tick() => if sink.send(Message::Ping(Bytes::new())).await.is_err() { break },
                _ = writer_kill.cancelled() => {
                    // Say what was queued (an error, say), briefly, then close.
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
                        while let Ok(frame) = queued.try_recv() {
                            if sink.send(Message::Binary(frame)).await.is_err() { break }
                        }
                    }).await;
                    break;
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    });

    let quota =
        Quota::per_second(NonZeroU32::new(config.messages_per_second).unwrap_or(NonZeroU32::MIN));
    let mut session = Session {
        hub: hub.clone(),
        user,
        email,
        conn: None,
        subscribed: HashMap::new(),
        outbox: outbox.clone(),
        limiter: RateLimiter::direct(quota),
    };
    let silence = Duration::from_secs(config.idle_timeout_secs);
    let shutdown = hub.shutdown().clone();
    loop {
        let next = tokio::select! {
            _ = kill.cancelled() => break,
            _ = shutdown.cancelled() => {
                session.fatal(ErrorCode::ShuttingDown, "The server is shutting down; reconnect later.");
                break;
            }
            next = tokio::time::timeout(silence, stream.next()) => next,
        };
        let message = match next {
            Ok(Some(Ok(message))) => message,
            _ => break, // silence, closed, or a protocol error
        };
        let keep_going = match message {
            // Boxed while it runs: an idle socket's task then keeps no room for it.
            Message::Binary(frame) => Box::pin(session.handle(&frame)).await,
            Message::Text(_) => session.fatal(ErrorCode::BadMessage, "Frames must be binary CBOR."),
            Message::Ping(_) | Message::Pong(_) => true,
            Message::Close(_) => false,
        };
        if !keep_going {
            break;
        }
    }
    session.close().await;
    kill.cancel();
    // Read on until the client answers our Close (or briefly), so that closing with its
    // frames unread does not reset the connection and lose our last frames (an Error, say).
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    let _ = writer.await;
    hub.metrics().open_sockets.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

struct Session {
    hub: Hub,
    user: UserId,
    email: String,
    /// Set once `Hello` was answered.
    conn: Option<ConnId>,
    /// Lists this socket is subscribed to, with how their rooms are loaded.
    subscribed: HashMap<ListId, RoomInit>,
    outbox: Outbox,
    limiter: DefaultDirectRateLimiter,
}

impl Session {
    /// Sends a connection-level error and asks for the socket to close.
    fn fatal(&self, code: ErrorCode, message: &str) -> bool {
        self.outbox.send(&ServerMessage::Error { code, message: message.into() });
        self.outbox.kill.cancel();
        false
    }

    fn list_error(&self, list: ListId, code: ListErrorCode, message: &str) {
        self.outbox.send(&ServerMessage::ListError { list, code, message: message.into() });
    }

    /// Handles one frame; false when the socket must close.
    async fn handle(&mut self, frame: &[u8]) -> bool {
        let Ok(message) = ClientMessage::decode(frame) else {
            return self.fatal(ErrorCode::BadMessage, "Not a message of the Tandem sync protocol.");
        };
        let Some(conn) = self.conn else {
            return match message {
                ClientMessage::Hello { min_version, max_version } => {
                    self.welcome(min_version, max_version).await
                }
                _ => self.fatal(ErrorCode::BadMessage, "The first message must be Hello."),
            };
        };
        if self.limiter.check().is_err() {
            return self.fatal(ErrorCode::RateLimited, "Too many messages; reconnect more slowly.");
        }
        match message {
            ClientMessage::Hello { .. } => {
                self.fatal(ErrorCode::BadMessage, "Hello was already sent.")
            }
            ClientMessage::Sync { list, data } => {
                if !self.subscribed.contains_key(&list) && !self.subscribe(conn, list).await {
                    return true;
                }
                let init = self.subscribed[&list].clone();
                let out = self.outbox.clone();
                self.hub
                    .to_room(
                        list,
                        init,
                        RoomCommand::Sync { peer: conn, user: self.user, data, out },
                    )
                    .await;
                true
            }
            ClientMessage::Unsubscribe { list } => {
                if let Some(init) = self.subscribed.remove(&list) {
                    self.hub.to_room(list, init, RoomCommand::Leave { peer: conn }).await;
                }
                true
            }
        }
    }

    async fn welcome(&mut self, min_version: u16, max_version: u16) -> bool {
        let Some(version) = negotiate(min_version, max_version) else {
            return self.fatal(
                ErrorCode::UnsupportedVersion,
                "No protocol version in common; update the app.",
            );
        };
        let store = self.hub.store();
        let lists = match store.indexed_lists(self.user).await {
            Ok(candidates) => store.accessible_lists(self.user, &candidates).await,
            Err(err) => Err(err),
        };
        let lists = match lists {
            Ok(lists) => {
                lists.into_iter().map(|a| ListAccess { list: a.list.id, role: a.role }).collect()
            }
            Err(err) => {
                tracing::error!(error = ?err, "listing lists for a socket");
                return self.fatal(
                    ErrorCode::ShuttingDown,
                    "The server cannot read your lists right now.",
                );
            }
        };
        self.conn = Some(self.hub.connect(self.user, self.outbox.clone()));
        self.outbox.send(&ServerMessage::Welcome { version, user: self.user, lists });
        true
    }

    /// Subscribes to a list the user may see (or reserved); otherwise answers `not_found`.
    async fn subscribe(&mut self, conn: ConnId, list: ListId) -> bool {
        let store = self.hub.store();
        let (init, role) = match store.access(list, self.user).await {
            Ok(access) => (RoomInit::Load, access.role),
            Err(StoreError::NotFound) => match store.is_reserved(list, self.user).await {
                Ok(true) => (
                    RoomInit::Reserved { owner: self.user, email: self.email.clone() },
                    tandem_protocol::Role::Owner,
                ),
                Ok(false) => {
                    self.list_error(list, ListErrorCode::NotFound, "List not found.");
                    return false;
                }
                Err(err) => return self.internal(list, err),
            },
            Err(err) => return self.internal(list, err),
        };
        let out = self.outbox.clone();
        self.hub
            .to_room(
                list,
                init.clone(),
                RoomCommand::Join { peer: conn, user: self.user, role, out },
            )
            .await;
        self.subscribed.insert(list, init);
        true
    }

    fn internal(&self, list: ListId, err: StoreError) -> bool {
        tracing::error!(%list, error = ?err, "subscribing a socket");
        self.list_error(list, ListErrorCode::Internal, "The server failed; retry later.");
        false
    }

    async fn close(&mut self) {
        let Some(conn) = self.conn else { return };
        for (list, init) in self.subscribed.drain() {
            self.hub.to_room(list, init, RoomCommand::Leave { peer: conn }).await;
        }
        self.hub.disconnect(self.user, conn);
    }
}
