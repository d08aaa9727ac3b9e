//! Simulated clients: REST calls for accounts and lists, and a sync socket that keeps each
//! list's document and applies every message it receives, as a real client does.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tandem_protocol::automerge::ChangeHash;
use tandem_protocol::automerge::sync::{Message as SyncMessage, State, SyncDoc as _};
use tandem_protocol::wire::{ClientMessage, MIN_PROTOCOL_VERSION, ServerMessage, decode_heads};
use tandem_protocol::{ListDoc, ListId, streaming};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The newest protocol version the simulated clients offer (`--protocol`).
static MAX_VERSION: AtomicU16 = AtomicU16::new(tandem_protocol::wire::PROTOCOL_VERSION);

/// Makes every socket opened from now on offer protocol versions up to `version`.
pub fn set_max_version(version: u16) {
    MAX_VERSION.store(version, Ordering::Relaxed);
}

/// A list a version 2 socket holds in step: its changes travel raw both ways.
struct Streaming {
    /// The heads the server last advertised.
    server_heads: Vec<ChangeHash>,
    /// Changes sent raw and not yet in the server's history.
    sent: HashSet<ChangeHash>,
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its email.
    pub email: String,
    /// Its bearer token.
    pub token: String,
}

/// REST calls against one server.
#[derive(Debug, Clone)]
pub struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    /// A client of `base`.
    pub fn new(base: &str) -> Self {
        Self { base: base.to_owned(), http: reqwest::Client::new() }
    }

    async fn post(&self, call: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let mut req = self.http.post(format!("{}/api/todolist/{call}", self.base)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let reply: Value = req.send().await?.json().await?;
        if reply["code"] != 200 {
            bail!("{call} failed: {reply}");
        }
        Ok(reply)
    }

    /// Registers, verifies and logs in a new account (the server must use the demo mailer).
    pub async fn signup(&self, name: &str) -> anyhow::Result<Account> {
        let email = format!("{name}-{}@load.example.com", std::process::id());
        let password = "load-test-password";
        let reply =
            self.post("register", None, json!({"email": email, "password": password})).await?;
        let code =
            reply["data"]["demo_code"].as_str().context("the server must use the demo mailer")?;
        self.post("verify", None, json!({"email": email, "code": code})).await?;
        let reply = self.post("login", None, json!({"email": email, "password": password})).await?;
        let token = reply["data"]["token"].as_str().context("token")?.to_owned();
        Ok(Account { email, token })
    }

    /// Creates a list.
    pub async fn create(&self, owner: &Account, title: &str) -> anyhow::Result<ListId> {
        let reply = self.post("create", Some(&owner.token), json!({"title": title})).await?;
        Ok(ListId(reply["data"]["id"].as_u64().context("list id")?))
    }

    /// Shares a list.
    pub async fn share(
        &self,
        owner: &Account,
        list: ListId,
        email: &str,
        permission: &str,
    ) -> anyhow::Result<()> {
        self.post(
            "sharelist",
            Some(&owner.token),
            json!({"list_id": list, "target_email": email, "permission": permission}),
        )
        .await?;
        Ok(())
    }
}

/// One sync socket holding some lists.
pub struct SyncSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Each held list's document and sync state.
    pub docs: HashMap<ListId, (ListDoc, State)>,
    /// Bytes received, frames included.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// The largest message sent, in bytes.
    pub largest_sent: usize,
    /// The protocol version the server chose.
    version: u16,
    /// Lists in step (version 2).
    streaming: HashMap<ListId, Streaming>,
}

impl SyncSocket {
    /// Opens a socket and says hello.
    pub async fn connect(base: &str, account: &Account) -> anyhow::Result<Self> {
        let url = format!("{}/api/todolist/sync", base.replace("http://", "ws://"));
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("authorization", format!("Bearer {}", account.token).parse()?);
        // TCP_NODELAY: small sync frames must not wait for Nagle's algorithm.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
        let mut socket = Self {
            ws,
            docs: HashMap::new(),
            bytes_in: 0,
            bytes_out: 0,
            largest_sent: 0,
            version: 0,
            streaming: HashMap::new(),
        };
        let max_version = MAX_VERSION.load(Ordering::Relaxed);
        socket
            .send(ClientMessage::Hello { min_version: MIN_PROTOCOL_VERSION, max_version })
            .await?;
        match socket.recv().await? {
            Some(ServerMessage::Welcome { version, .. }) => {
                socket.version = version;
                Ok(socket)
            }
            other => bail!("expected Welcome, got {other:?}"),
        }
    }

    /// Opens a socket holding one list, loaded.
    pub async fn open_list(base: &str, account: &Account, list: ListId) -> anyhow::Result<Self> {
        let mut socket = Self::connect(base, account).await?;
        socket.subscribe(list).await?;
        socket.wait_loaded(list).await?;
        Ok(socket)
    }

    /// Sends one message.
    pub async fn send(&mut self, message: ClientMessage) -> anyhow::Result<()> {
        let frame = message.encode();
        self.bytes_out += frame.len() as u64;
        self.largest_sent = self.largest_sent.max(frame.len());
        self.ws.send(Message::Binary(frame.into())).await?;
        Ok(())
    }

    /// The next message (None when the socket closed).
    pub async fn recv(&mut self) -> anyhow::Result<Option<ServerMessage>> {
        while let Some(frame) = self.ws.next().await {
            match frame? {
                Message::Binary(bytes) => {
                    self.bytes_in += bytes.len() as u64;
                    return Ok(Some(ServerMessage::decode(&bytes)?));
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }

    /// The next message, or None when the socket closed or `deadline` passed first.
    pub async fn recv_until(&mut self, deadline: Instant) -> anyhow::Result<Option<ServerMessage>> {
        tokio::time::timeout_at(deadline, self.recv()).await.unwrap_or(Ok(None))
    }

    /// Starts holding `list` with an empty document and asks the server for it.
    pub async fn subscribe(&mut self, list: ListId) -> anyhow::Result<()> {
        self.resume(list, ListDoc::empty(), State::new()).await
    }

    /// Starts holding `list` with a document and sync state kept from an earlier socket, and
    /// sends what the server may lack.
    pub async fn resume(&mut self, list: ListId, doc: ListDoc, state: State) -> anyhow::Result<()> {
        self.docs.insert(list, (doc, state));
        self.push(list).await
    }

    /// Closes the socket and hands back the lists it held.
    pub async fn close(mut self) -> HashMap<ListId, (ListDoc, State)> {
        self.streaming.clear();
        let _ = self.ws.close(None).await;
        self.docs
    }

    /// Makes a held list's document track what merges change, as an app's client does, so
    /// that an edit after a merge refreshes only the items the merge touched (the order index
    /// an add uses) instead of reading the whole list again. For sockets that edit.
    pub fn track_changes(&mut self, list: ListId) -> anyhow::Result<()> {
        self.doc_mut(list)?.track_changes();
        Ok(())
    }

    /// The document of a held list, to edit; [`SyncSocket::push`] sends the edits.
    pub fn doc_mut(&mut self, list: ListId) -> anyhow::Result<&mut ListDoc> {
        Ok(&mut self.docs.get_mut(&list).context("list not held")?.0)
    }

    /// Items in a held list's document (0 while it has none or is not a list yet).
    pub fn item_count(&self, list: ListId) -> usize {
        self.docs.get(&list).and_then(|(doc, _)| doc.item_count().ok()).unwrap_or(0)
    }

    /// Sends what the list has that the server lacks: its new changes, raw, while it is in
    /// step (version 2); else the next sync message, if one is due.
    pub async fn push(&mut self, list: ListId) -> anyhow::Result<()> {
        let (doc, state) = self.docs.get_mut(&list).context("list not held")?;
        if let Some(stream) = self.streaming.get_mut(&list) {
            if let Some(changes) =
                streaming::changes_since(doc.automerge_mut(), &stream.server_heads)
            {
                let pending: HashSet<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
                stream.sent.retain(|h| pending.contains(h));
                let mut data = Vec::new();
                for change in changes {
                    if stream.sent.insert(change.hash()) {
                        data.extend_from_slice(change.raw_bytes());
                    }
                }
                if !data.is_empty() {
                    self.send(ClientMessage::Changes { list, data }).await?;
                }
                return Ok(());
            }
            self.streaming.remove(&list);
        }
        let message = doc.automerge_mut().sync().generate_sync_message(state);
        if let Some(m) = message {
            self.send(ClientMessage::Sync { list, data: m.encode() }).await?;
        }
        Ok(())
    }

    /// Applies a server message; returns the list a sync message changed, and answers it.
    pub async fn apply(&mut self, message: ServerMessage) -> anyhow::Result<Option<ListId>> {
        match message {
            ServerMessage::Sync { list, data } => {
                let (doc, state) =
                    self.docs.entry(list).or_insert_with(|| (ListDoc::empty(), State::new()));
                doc.automerge_mut()
                    .sync()
                    .receive_sync_message(state, SyncMessage::decode(&data)?)?;
                // Answer in kind; stream again once in step.
                self.streaming.remove(&list);
                self.push(list).await?;
                let (doc, state) = self.docs.get_mut(&list).expect("inserted above");
                let mut ours = doc.heads();
                let mut theirs = state.their_heads.clone().unwrap_or_default();
                ours.sort_unstable();
                theirs.sort_unstable();
                if self.version >= 2 && !theirs.is_empty() && ours == theirs {
                    let stream = Streaming { server_heads: theirs, sent: HashSet::new() };
                    self.streaming.insert(list, stream);
                }
                Ok(Some(list))
            }
            ServerMessage::Changes { list, seq, heads, data } => {
                let heads = decode_heads(&heads).context("frame heads")?;
                let (doc, state) =
                    self.docs.get_mut(&list).context("a frame for a list not held")?;
                let applied = streaming::apply_frame(doc, state, &data, &heads)?;
                if !applied.complete {
                    eprintln!("list {list}: frame {seq} missed a batch; catching up");
                    self.streaming.remove(&list);
                } else if let Some(stream) = self.streaming.get_mut(&list) {
                    stream.server_heads = heads;
                } else if applied.in_step {
                    let stream = Streaming { server_heads: heads, sent: HashSet::new() };
                    self.streaming.insert(list, stream);
                }
                self.push(list).await?;
                Ok(Some(list))
            }
            ServerMessage::ListError { list, code, message } => {
                bail!("list {list}: {code:?}: {message}")
            }
            ServerMessage::Error { code, message } => bail!("connection: {code:?}: {message}"),
            _ => Ok(None),
        }
    }

    /// Receives and applies messages until `list` has a document.
    pub async fn wait_loaded(&mut self, list: ListId) -> anyhow::Result<()> {
        while self.docs[&list].0.title().is_err() {
            let message = self.recv().await?.context("closed while loading")?;
            self.apply(message).await?;
        }
        Ok(())
    }

    /// Receives and applies messages until the server has acknowledged everything in the
    /// list's document; fails after `patience`.
    pub async fn wait_acknowledged(
        &mut self,
        list: ListId,
        patience: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        while !self.acknowledged(list) {
            let Ok(message) = tokio::time::timeout_at(deadline, self.recv()).await else {
                bail!("list {list}: not acknowledged within {patience:?}: {}", self.heads(list));
            };
            let message = message?.with_context(|| format!("list {list}: socket closed"))?;
            self.apply(message).await?;
        }
        Ok(())
    }

    /// The list's heads and the server's last advertised ones, for errors.
    fn heads(&mut self, list: ListId) -> String {
        let short = |heads: &[ChangeHash]| -> Vec<String> {
            heads.iter().map(|h| h.to_string()[..8].to_owned()).collect()
        };
        let (doc, state) = self.docs.get_mut(&list).expect("held");
        format!(
            "ours {:?}, the server's last {:?}, shared {:?}, in flight {}",
            short(&doc.heads()),
            state.their_heads.as_deref().map(short),
            short(&state.shared_heads),
            state.in_flight
        )
    }

    /// Receives and applies messages until the list holds `items` items or `patience` ran
    /// out; returns the items it holds then.
    pub async fn wait_items(
        &mut self,
        list: ListId,
        items: usize,
        patience: Duration,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + patience;
        while self.item_count(list) < items {
            let Some(message) = self.recv_until(deadline).await? else { break };
            self.apply(message).await?;
        }
        Ok(self.item_count(list))
    }

    /// Whether the server has acknowledged everything in the list's document.
    pub fn acknowledged(&mut self, list: ListId) -> bool {
        let (doc, state) = self.docs.get_mut(&list).expect("held");
        let ours: Vec<ChangeHash> = doc.heads();
        let theirs = state.their_heads.clone().unwrap_or_default();
        ours.iter().all(|h| theirs.contains(h))
            || ours.iter().all(|h| state.shared_heads.contains(h))
    }
}
