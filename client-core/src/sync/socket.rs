//! The sync WebSocket: connecting with the bearer token, and the pump that moves frames
//! between the socket and a [`Session`]. Everything it decides comes from the session; this
//! module only does I/O, timeouts and stopping, and reads how the server closed the socket
//! (its close code and reason) into the session.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tandem_protocol::wire::{ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::close::SyncClose;
use super::session::Session;
use crate::{Error, Result};

/// How long to wait for the server's close frame after its `Error` frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The connected socket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The sync endpoint for a server base URL: `http(s)://host` -> `ws(s)://host/api/todolist/sync`.
pub fn sync_url(server_url: &str) -> Result<String> {
    let base = server_url.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(Error::InvalidInput(format!(
            "server URL {server_url:?} must start with http:// or https://"
        )));
    };
    Ok(format!("{rest}/api/todolist/sync"))
}

/// Opens the sync socket, authenticated with `token`.
pub(crate) async fn connect(server_url: &str, token: &str, limit: Duration) -> Result<Socket> {
    let url = sync_url(server_url)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidInput(format!("bad sync URL {url}: {e}")))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::Unauthorized("the stored token is not a valid header".into()))?;
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
    let connected = tokio::time::timeout(
        limit,
        tokio_tungstenite::connect_async_with_config(request, None, true),
    )
    .await
    .map_err(|_| Error::Offline(format!("cannot reach {url}: timed out")))?;
    match connected {
        Ok((socket, _response)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let message = format!("sync: the server answered {status} {}", body.trim());
            Err(crate::rest::error_for_status(status, message))
        }
        Err(e) => Err(Error::Offline(format!("cannot reach {url}: {e}"))),
    }
}

/// Why a pump ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// `until_settled` was asked and every list is in step (or failed).
    Settled,
    /// The stop signal fired.
    Stopped,
}

/// What the pump listens to besides the socket.
pub(crate) struct Inputs<'a> {
    /// Lists changed here (background mode).
    pub local: Option<&'a mut mpsc::UnboundedReceiver<ListChange>>,
    /// Fires (turns true) to end the pump.
    pub stop: Option<&'a mut watch::Receiver<bool>>,
    /// How often to look for changes made by other processes.
    pub poll_every: Duration,
    /// Return as soon as the session is settled (one-round sync).
    pub until_settled: bool,
    /// Send a WebSocket ping this often, so a dead connection shows.
    pub ping_every: Duration,
    /// Give the connection up when nothing at all (not even a pong) arrived for this long.
    pub idle_timeout: Duration,
    /// Most messages sent per second.
    pub max_messages_per_second: u32,
}

/// A local change the background loop was told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListChange {
    /// The list's document changed.
    Edited(tandem_protocol::ListId),
    /// Lists appeared or went away here (created, deleted, remapped): housekeeping is due.
    Lists,
}

/// Keeps the client under the server's per-socket message rate (the server closes a socket
/// that goes over it): at most `max` messages per one-second window, waiting for the next
/// window when the budget is spent. A device with hundreds of lists would otherwise burst
/// past the limit on every connect, be cut off, and never finish.
pub(crate) struct Pace {
    max: u32,
    window_start: tokio::time::Instant,
    sent: u32,
}

impl Pace {
    /// A pace of `max` messages per second (at least one).
    pub(crate) fn new(max: u32) -> Self {
        Self { max: max.max(1), window_start: tokio::time::Instant::now(), sent: 0 }
    }

    /// Waits until one more message may go.
    pub(crate) async fn ready(&mut self) {
        let window = Duration::from_secs(1);
        if self.window_start.elapsed() >= window {
            self.window_start = tokio::time::Instant::now();
            self.sent = 0;
        }
        if self.sent >= self.max {
            tokio::time::sleep_until(self.window_start + window).await;
            self.window_start = tokio::time::Instant::now();
            self.sent = 0;
        }
        self.sent += 1;
    }
}

async fn send_all(
    socket: &mut Socket,
    pace: &mut Pace,
    messages: Vec<ClientMessage>,
) -> Result<()> {
    for message in messages {
        pace.ready().await;
        socket
            .send(Message::Binary(message.encode().into()))
            .await
            .map_err(|e| Error::Offline(format!("sync connection lost: {e}")))?;
    }
    Ok(())
}

/// Runs the session over the socket: Hello, then every server message through the session,
/// local changes and periodic polls out. `housekeeping` runs (REST: reserve ids, remap,
/// delete) when lists appear or go away here.
pub(crate) async fn pump<F, Fut>(
    socket: &mut Socket,
    session: &mut Session,
    mut inputs: Inputs<'_>,
    mut housekeeping: F,
) -> Result<Ended>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut pace = Pace::new(inputs.max_messages_per_second);
    send_all(socket, &mut pace, vec![session.hello()]).await?;
    let mut tick = tokio::time::interval(inputs.poll_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    let mut ticks: u64 = 0;
    let mut last_heard = tokio::time::Instant::now();
    let mut last_ping = tokio::time::Instant::now();
    loop {
        if inputs.until_settled && session.settled()? {
            let _ = socket.close(None).await;
            return Ok(Ended::Settled);
        }
        let local = async {
            match inputs.local.as_deref_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let stop = async {
            match inputs.stop.as_deref_mut() {
                Some(rx) => {
                    if rx.wait_for(|stop| *stop).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        let out = tokio::select! {
            frame = socket.next() => { last_heard = tokio::time::Instant::now(); match frame {
                None => return Err(Error::Offline("the server closed the sync connection".into())),
                Some(Err(e)) => return Err(Error::Offline(format!("sync connection lost: {e}"))),
                Some(Ok(Message::Binary(bytes))) => {
                    let message = ServerMessage::decode(&bytes).map_err(|e| {
                        Error::Internal(format!("the server sent an unreadable frame: {e}"))
                    })?;
                    match session.handle(message) {
                        Ok(out) => out,
                        // The server said why it closes: its close frame follows.
                        Err(_) if session.server_error().is_some() => {
                            return Err(await_close(socket, session).await);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(record_close(session, frame.map(close_parts)));
                }
                Some(Ok(_)) => Vec::new(), // ping/pong (answered by tungstenite), text: ignored
            }},
            change = local => match change {
                Some(ListChange::Edited(list)) => session.local_changed(list)?,
                Some(ListChange::Lists) => {
                    if let Err(e) = housekeeping().await {
                        tracing::warn!(error = %e, "sync housekeeping failed");
                    }
                    session.start_all()?
                }
                None => Vec::new(),
            },
            _ = tick.tick() => {
                ticks += 1;
                if last_heard.elapsed() >= inputs.idle_timeout {
                    return Err(Error::Offline(format!(
                        "no word from the server for {} s",
                        inputs.idle_timeout.as_secs()
                    )));
                }
                if last_ping.elapsed() >= inputs.ping_every {
                    last_ping = tokio::time::Instant::now();
                    socket
                        .send(Message::Ping(Vec::new().into()))
                        .await
                        .map_err(|e| Error::Offline(format!("sync connection lost: {e}")))?;
                }
                // Lists stopped by a transient server error get another go now and then.
                session.poll(ticks.is_multiple_of(10))?
            }
            () = stop => {
                let _ = socket.close(None).await;
                return Ok(Ended::Stopped);
            }
        };
        send_all(socket, &mut pace, out).await?;
    }
}

/// A close frame's code and reason.
fn close_parts(frame: CloseFrame) -> (u16, String) {
    (u16::from(frame.code), frame.reason.to_string())
}

/// After the server's `Error` frame: reads on, briefly, for the close frame that follows it,
/// and returns the error the connection ends with.
async fn await_close(socket: &mut Socket, session: &mut Session) -> Error {
    let frame = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(close_parts);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    record_close(session, frame)
}

/// Keeps how the server closed the connection in the session, for the app to see, and returns
/// the error the connection ends with.
fn record_close(session: &mut Session, frame: Option<(u16, String)>) -> Error {
    let close = SyncClose::new(session.server_error().cloned(), frame);
    tracing::info!(%close, "sync connection closed by the server");
    let error = close.to_error();
    session.set_closed(close);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pace_spends_its_budget_then_waits_for_the_next_window() {
        let start = tokio::time::Instant::now();
        let mut pace = Pace::new(3);
        for _ in 0..3 {
            pace.ready().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the budget goes at once");
        pace.ready().await;
        assert!(start.elapsed() >= Duration::from_secs(1), "the fourth waits for the next second");
    }
}
