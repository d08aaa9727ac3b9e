//! A raw sync client for the end-to-end tests: a WebSocket speaking the wire protocol that
//! keeps each list's Automerge document, as a real client does. Attack tests use its socket
//! directly to send what a real client never would.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tandem_protocol::automerge::sync::{Message as SyncMessage, State, SyncDoc as _};
use tandem_protocol::wire::{ClientMessage, ErrorCode, ListErrorCode, ServerMessage, decode_heads};
use tandem_protocol::{ListDoc, ListId, Role, streaming};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{TestServer, TestUser};

/// How long "nothing more arrives" is waited for.
pub const QUIET: Duration = Duration::from_millis(300);
/// Longest wait for an expected message.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct SyncClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub docs: HashMap<ListId, (ListDoc, State)>,
    /// Messages other than `Sync`, in arrival order.
    pub events: Vec<ServerMessage>,
    pub welcome: Vec<(ListId, Role)>,
    /// The server's close frame (code, reason), once one arrived.
    pub close: Option<(u16, String)>,
    /// The protocol version agreed.
    pub version: u16,
    /// Version 2 frames applied: (list, seq, whether the document then held their heads).
    pub frames: Vec<(ListId, u64, bool)>,
}

/// The sync URL of a server.
pub fn sync_url(base: &str) -> String {
    format!("{}/api/todolist/sync", base.replace("http://", "ws://"))
}

/// Opens a socket as `user` without saying Hello; `receive_buffer` sets the TCP receive
/// buffer (a small one makes a client that does not read back up the server quickly).
pub async fn open_socket(
    base: &str,
    user: &TestUser,
    receive_buffer: Option<u32>,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
    let mut request = sync_url(base).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", user.token).parse().unwrap());
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let tcp = socket.connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await?;
    Ok(ws)
}

/// The value of a gauge or counter in the server's `/metrics`.
pub async fn metric(server: &TestServer, name: &str) -> u64 {
    let text =
        reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no metric {name}"))
        .parse()
        .unwrap()
}

/// Waits (up to `PATIENCE`) until the metric `name` reaches at least `at_least`.
pub async fn wait_for_metric(server: &TestServer, name: &str, at_least: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let value = metric(server, name).await;
        if value >= at_least {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} stayed at {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl SyncClient {
    pub async fn connect(server: &TestServer, user: &TestUser) -> Self {
        Self::connect_to(&server.base, user).await
    }

    pub async fn connect_to(base: &str, user: &TestUser) -> Self {
        let ws = open_socket(base, user, None).await.expect("socket opens");
        Self::hello_on(ws, user).await
    }

    /// A client that speaks protocol version 2 (saved batches arrive as `Changes` frames).
    pub async fn connect_v2(server: &TestServer, user: &TestUser) -> Self {
        let ws = open_socket(&server.base, user, None).await.expect("socket opens");
        Self::hello_with(ws, user, 2).await
    }

    /// Says Hello on an open socket, speaking protocol version 1 only (what clients before
    /// version 2 sent), and reads the Welcome.
    pub async fn hello_on(ws: WebSocketStream<MaybeTlsStream<TcpStream>>, user: &TestUser) -> Self {
        Self::hello_with(ws, user, 1).await
    }

    /// A client on an open socket that has not said Hello (to send its own).
    pub fn unwelcomed(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            docs: HashMap::new(),
            events: Vec::new(),
            welcome: Vec::new(),
            close: None,
            version: 0,
            frames: Vec::new(),
        }
    }

    /// Says Hello offering versions 1 to `max` and reads the Welcome.
    pub async fn hello_with(
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        user: &TestUser,
        max: u16,
    ) -> Self {
        let mut client = Self::unwelcomed(ws);
        client.send(ClientMessage::Hello { min_version: 1, max_version: max }).await;
        match client.next().await {
            Some(ServerMessage::Welcome { version, user: id, lists }) => {
                assert_eq!((version, id.get()), (max, user.id));
                client.version = version;
                client.welcome = lists.into_iter().map(|a| (a.list, a.role)).collect();
            }
            other => panic!("expected Welcome, got {other:?}"),
        }
        client
    }

    pub async fn send(&mut self, message: ClientMessage) {
        self.ws.send(Message::Binary(message.encode().into())).await.unwrap();
    }

    /// The next server message within `PATIENCE`, or None if the socket closed.
    pub async fn next(&mut self) -> Option<ServerMessage> {
        self.next_within(PATIENCE).await.flatten()
    }

    /// Some(None): closed; None: nothing within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Option<ServerMessage>> {
        loop {
            let frame = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(None),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Message::Binary(bytes) => {
                    return Some(Some(ServerMessage::decode(&bytes).unwrap()));
                }
                Message::Close(frame) => {
                    self.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return Some(None);
                }
                _ => continue,
            }
        }
    }

    /// Reads until the server's `Error` (applying what comes before it) and the close frame
    /// after it: (error code, close code, close reason).
    pub async fn expect_fatal(&mut self) -> (ErrorCode, u16, String) {
        let code = loop {
            match self.next().await {
                Some(ServerMessage::Error { code, .. }) => break code,
                Some(other) => self.apply(other),
                None => panic!("closed without an Error frame (close: {:?})", self.close),
            }
        };
        assert!(self.next().await.is_none(), "the socket closes after the Error");
        let (close, reason) = self.close.clone().expect("a close frame with a code");
        (code, close, reason)
    }

    /// Starts holding a list with `doc` (empty for a list made elsewhere).
    pub fn hold(&mut self, list: ListId, doc: ListDoc) {
        self.docs.insert(list, (doc, State::new()));
    }

    pub fn doc(&self, list: ListId) -> &ListDoc {
        &self.docs[&list].0
    }

    pub fn edit(&mut self, list: ListId, f: impl FnOnce(&mut ListDoc)) {
        f(&mut self.docs.get_mut(&list).unwrap().0);
    }

    /// Sends what every held list needs and applies what arrives, until nothing more comes.
    pub async fn settle(&mut self) {
        loop {
            let mut sent = false;
            let lists: Vec<ListId> = self.docs.keys().copied().collect();
            for list in lists {
                let (doc, state) = self.docs.get_mut(&list).unwrap();
                let message = doc.automerge_mut().sync().generate_sync_message(state);
                if let Some(m) = message {
                    self.send(ClientMessage::Sync { list, data: m.encode() }).await;
                    sent = true;
                }
            }
            match self.next_within(QUIET).await {
                Some(Some(message)) => self.apply(message),
                Some(None) => return,
                None if !sent => return,
                None => {}
            }
        }
    }

    /// Waits until `pred` holds for the documents, applying what arrives.
    pub async fn wait_for(&mut self, pred: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !pred(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting");
            match self.next_within(QUIET).await {
                Some(Some(message)) => self.apply(message),
                Some(None) => panic!("socket closed while waiting"),
                None => self.settle().await,
            }
        }
    }

    pub fn apply(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Sync { list, data } => {
                let (doc, state) =
                    self.docs.entry(list).or_insert_with(|| (ListDoc::empty(), State::new()));
                let m = SyncMessage::decode(&data).unwrap();
                doc.automerge_mut().sync().receive_sync_message(state, m).unwrap();
            }
            ServerMessage::Changes { list, seq, heads, data } => {
                assert!(self.version >= 2, "a version 1 socket got a version 2 frame");
                let heads = decode_heads(&heads).expect("whole hashes");
                let (doc, state) = self.docs.get_mut(&list).expect("a frame for a held list");
                let applied = streaming::apply_frame(doc, state, &data, &heads).unwrap();
                self.frames.push((list, seq, applied.complete));
            }
            other => self.events.push(other),
        }
    }

    pub fn list_errors(&self, list: ListId) -> Vec<ListErrorCode> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ServerMessage::ListError { list: l, code, .. } if *l == list => Some(*code),
                _ => None,
            })
            .collect()
    }
}

pub fn contents(doc: &ListDoc) -> Vec<String> {
    doc.items().unwrap().into_iter().map(|i| i.content).collect()
}

pub async fn rest_items(server: &TestServer, user: &TestUser, list: u64) -> Vec<String> {
    let (status, body) =
        server.get(&format!("/api/todolist/read?id={list}"), Some(&user.token)).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"].as_str().unwrap().to_owned())
        .collect()
}
