//! One sync socket: an adapter between the WebSocket and the hub. It splits the socket, keeps
//! the Hello deadline and the ping and silence timers, checks the protocol (`Hello` first,
//! binary CBOR frames) and the message rates (the socket's own, and its user's across all of
//! their sockets), subscribes the socket to each list it names after checking the user's
//! access, and hands sync messages to the list's room.
//!
//! Every close the server decides on says why, twice: a `ServerMessage::Error` frame, then a
//! close frame whose code is the error's close code (4000-4999) and whose reason is its
//! message, so a client learns why even if it cannot read the frame.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tandem_protocol::wire::{
    ClientMessage, ErrorCode, ListAccess, ListErrorCode, ServerMessage, close_reason,
    negotiate_from,
};
use tandem_protocol::{ListId, UserId};
use tokio::time::Instant;

use super::outbox::{Outgoing, outbox};
use super::room::{RoomCommand, RoomInit};
use super::user_limits::SocketSlot;
use super::{ConnId, Hub, Outbox};
use crate::metrics::Metrics;
use crate::store::StoreError;

/// How long the writer keeps trying to deliver its last frames once the socket is closing,
/// and how long the reader waits for the client to answer the close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves one authenticated socket until it closes; `slot` (the user's socket count) is
/// given back when it has.
pub async fn serve(socket: WebSocket, hub: Hub, slot: SocketSlot, user: UserId, email: String) {
    let config = hub.config().clone();
    let (sink, mut stream) = socket.split();
    let (outbox, outgoing) =
        outbox(config.outbound_queue, config.outbound_queue_bytes, hub.shared_metrics());
    hub.metrics().open_sockets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let writer =
        tokio::spawn(write(sink, outgoing, outbox.clone(), config.ping(), hub.shared_metrics()));

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
        version: 0,
    };
    let silence = Duration::from_secs(config.idle_timeout_secs);
    let hello_by = tokio::time::Instant::now() + Duration::from_secs(config.hello_timeout_secs);
    let shutdown = hub.shutdown().clone();
    loop {
        let next = tokio::select! {
            () = outbox.closing() => break,
            () = shutdown.cancelled() => {
                let message = "The server is shutting down; reconnect later.";
                session.fatal(ErrorCode::ShuttingDown, message);
                break;
            }
            () = tokio::time::sleep_until(hello_by), if session.conn.is_none() => {
                let secs = config.hello_timeout_secs;
                let message = format!("Hello must come within {secs} s of opening the socket.");
                session.fatal(ErrorCode::HelloTimeout, &message);
                break;
            }
            next = tokio::time::timeout(silence, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                let secs = config.idle_timeout_secs;
                session.fatal(ErrorCode::IdleTimeout, &format!("Nothing came for {secs} s."));
                break;
            }
            Ok(None) => break, // the client went away
            Ok(Some(Err(err))) => {
                // Over the frame size limit, a protocol violation, or the connection broke
                // (then nobody reads this).
                session.fatal(
                    ErrorCode::BadMessage,
                    &format!(
                        "A frame could not be read ({err}); frames may be at most {} bytes.",
                        config.max_message_bytes
                    ),
                );
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        let keep_going = match message {
            // Boxed while it runs: an idle socket's task then keeps no room for it.
            Message::Binary(frame) => {
                hub.metrics().messages_in.increment(1);
                hub.metrics().bytes_in.increment(frame.len() as u64);
                Box::pin(session.handle(&frame)).await
            }
            Message::Text(_) => session.fatal(ErrorCode::BadMessage, "Frames must be binary CBOR."),
            Message::Ping(_) | Message::Pong(_) => true,
            Message::Close(_) => false,
        };
        if !keep_going {
            break;
        }
    }
    session.close().await;
    outbox.hang_up();
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
    drop(slot);
}

/// Sends one message unless the socket starts closing first; false if it was not sent.
async fn send_unless_closing(
    sink: &mut SplitSink<WebSocket, Message>,
    message: Message,
    outbox: &Outbox,
) -> bool {
    tokio::select! {
        biased;
        sent = sink.send(message) => sent.is_ok(),
        () = outbox.closing() => false,
    }
}

/// The socket's writer: queued frames and pings until the socket closes; then, briefly, what
/// was still queued (unless the reader is too slow for it), the error and the close frame.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outgoing: Outgoing,
    outbox: Outbox,
    ping_every: Duration,
    metrics: Arc<Metrics>,
) {
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    loop {
        let frame = tokio::select! {
            biased;
            () = outbox.closing() => break,
            frame = outgoing.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
            _ = ping.tick() => {
                if send_unless_closing(&mut sink, Message::Ping(Bytes::new()), &outbox).await {
                    continue;
                }
                break;
            }
        };
        let len = frame.len();
        let sent = send_unless_closing(&mut sink, Message::Binary(frame), &outbox).await;
        outgoing.written(len);
        if !sent {
            break;
        }
        metrics.messages_out.increment(1);
        metrics.bytes_out.increment(len as u64);
    }
    let fatal = outgoing.fatal().cloned();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        if fatal.as_ref().is_none_or(|f| f.code != ErrorCode::SlowReader) {
            while let Some(frame) = outgoing.try_recv() {
                let len = frame.len();
                let sent = sink.send(Message::Binary(frame)).await;
                outgoing.written(len);
                if sent.is_err() {
                    return;
                }
                metrics.messages_out.increment(1);
                metrics.bytes_out.increment(len as u64);
            }
        }
        let close = match &fatal {
            Some(fatal) => {
                let error =
                    ServerMessage::Error { code: fatal.code, message: fatal.message.clone() };
                if sink.send(Message::Binary(error.encode().into())).await.is_err() {
                    return;
                }
                Some(CloseFrame {
                    code: fatal.code.close_code(),
                    reason: close_reason(&fatal.message).into(),
                })
            }
            None => None,
        };
        let _ = sink.send(Message::Close(close)).await;
    })
    .await;
    outgoing.discard();
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
    /// The protocol version agreed in `Hello` (2 streams saved batches as frames).
    version: u16,
}

impl Session {
    /// Closes the socket for `code` (the writer sends the error, then the close frame).
    fn fatal(&self, code: ErrorCode, message: &str) -> bool {
        self.outbox.close(code, message);
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
            return self.fatal(
                ErrorCode::RateLimited,
                "Too many messages on this socket; reconnect more slowly.",
            );
        }
        if !self.hub.allow_message(self.user) {
            return self.fatal(
                ErrorCode::RateLimited,
                "Too many messages from this account across its sockets; reconnect more slowly.",
            );
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
                        RoomCommand::Sync {
                            peer: conn,
                            user: self.user,
                            data,
                            out,
                            arrived: Instant::now(),
                        },
                    )
                    .await;
                true
            }
            ClientMessage::Changes { list, data } => {
                if self.version < 2 {
                    return self.fatal(
                        ErrorCode::BadMessage,
                        "Raw changes need protocol version 2; this socket speaks version 1.",
                    );
                }
                // Only for a list this socket is in step with, so subscribed already.
                let Some(init) = self.subscribed.get(&list).cloned() else {
                    self.list_error(list, ListErrorCode::NotFound, "Not subscribed to this list.");
                    return true;
                };
                let out = self.outbox.clone();
                self.hub
                    .to_room(
                        list,
                        init,
                        RoomCommand::Changes {
                            peer: conn,
                            user: self.user,
                            data,
                            out,
                            arrived: Instant::now(),
                        },
                    )
                    .await;
                true
            }
            ClientMessage::Unsubscribe { list } => {
                if self.subscribed.remove(&list).is_some() {
                    self.hub.leave(list, conn).await;
                }
                true
            }
        }
    }

    async fn welcome(&mut self, min_version: u16, max_version: u16) -> bool {
        let oldest = self.hub.config().min_client_version;
        let Some(version) = negotiate_from(oldest, min_version, max_version) else {
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
        let conn = self.hub.connect(self.user, self.outbox.clone());
        tracing::Span::current().record("conn", conn);
        self.conn = Some(conn);
        self.version = version;
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
                RoomCommand::Join {
                    peer: conn,
                    user: self.user,
                    role,
                    streams: self.version >= 2,
                    out,
                },
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
        for (list, _) in self.subscribed.drain() {
            self.hub.leave(list, conn).await;
        }
        self.hub.disconnect(self.user, conn);
    }
}
