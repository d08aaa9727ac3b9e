//! One connection's sync logic with no I/O: it takes the server's messages and returns the
//! client's answers, reading and writing the store through the [`Client`]. Keeping it free of
//! sockets lets tests drive it against the protocol's own server-side `Room`, and lets the
//! socket loop (in `sync::socket`) stay a thin pump.
//!
//! Rules it implements (see DESIGN.md, "Sync semantics"):
//! - lists the server announces (Welcome, Access) that this device lacks are tracked with an
//!   EMPTY document, never with title/items objects of our own (they would conflict);
//! - lists held here as EDITOR/VIEWER that the server no longer lists are dropped;
//! - every visible list with a server id is synced; the first message subscribes it;
//! - a list is *in step* when the server advertised exactly our heads (or, for a read-only
//!   peer, heads we all hold) since this connection began;
//! - with protocol version 2, a list in step streams: the server's saved batches arrive as
//!   `Changes` frames that are applied without an answer, and new changes made here go out
//!   as `Changes` (each once); a frame that cannot be placed (a batch was missed), a refusal
//!   or a reconnect puts the list back on sync messages until it is in step again;
//! - `ListError`s are surfaced as `SyncError` events; a refused document (`invalid_document`,
//!   `too_large`) is not sent again until the list changes here;
//! - a connection-level `Error` ends the session with the matching [`Error`], and is kept
//!   (with the close frame the socket pump adds) for the app to see.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use tandem_protocol::automerge::ChangeHash;
use tandem_protocol::automerge::sync::State;
use tandem_protocol::wire::{
    ClientMessage, ErrorCode, ListAccess, ListErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
    ServerMessage, decode_heads,
};
use tandem_protocol::{ListId, Role, UserId};

use super::close::SyncClose;
use crate::{Client, Error, Result};

/// A list the server refused, as reported to the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListFailure {
    /// The list.
    pub list: ListId,
    /// The protocol's error code in snake case (`forbidden`, `not_found`, ...), or
    /// `invalid_document` when the server's own message could not be applied here.
    pub code: String,
    /// For people.
    pub message: String,
}

/// Where one list stands in the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListSyncStatus {
    /// The server has advertised this device's heads: nothing to send, nothing to get.
    InStep,
    /// Still exchanging.
    Pending,
    /// The server refused the list (see the failures).
    Failed,
    /// Created offline with no server id yet (no reserved id was available).
    NoId,
}

/// Lists whose document the server refused, with the heads refused, kept across
/// connections so the same document is not pushed again and again.
pub type Refused = HashMap<ListId, Vec<ChangeHash>>;

struct ListSync {
    state: State,
    /// The server spoke about this list on this connection.
    heard: bool,
    /// The heads the server last advertised.
    server_heads: Vec<ChangeHash>,
    /// No more messages for this list on this connection.
    stopped: bool,
    /// The server refused a change as forbidden: what is left here cannot be sent.
    forbidden: bool,
    /// Version 2 and in step: changes travel raw both ways.
    streaming: bool,
    /// Changes sent raw that the server has not yet advertised.
    sent: HashSet<ChangeHash>,
}

impl ListSync {
    fn new(state: State, server_heads: Vec<ChangeHash>, stopped: bool, forbidden: bool) -> Self {
        Self {
            state,
            heard: false,
            server_heads,
            stopped,
            forbidden,
            streaming: false,
            sent: HashSet::new(),
        }
    }
}

/// A fresh sync state for a list: for a list this user only views, one that knows the server
/// will take no change from here (Automerge then sends none, and `receive` drops any made
/// here before a downgrade).
fn state_for(state: State, viewer: bool) -> State {
    State { peer_read_only: viewer || state.peer_read_only, ..state }
}

/// The sans-IO sync state of one connection.
pub struct Session {
    client: Arc<Client>,
    lists: BTreeMap<ListId, ListSync>,
    user: Option<UserId>,
    /// The protocol version the server chose.
    version: u16,
    failures: Vec<ListFailure>,
    refused: Refused,
    server_error: Option<(ErrorCode, String)>,
    closed: Option<SyncClose>,
}

fn code_name(code: ListErrorCode) -> &'static str {
    match code {
        ListErrorCode::Forbidden => "forbidden",
        ListErrorCode::NotFound => "not_found",
        ListErrorCode::InvalidDocument => "invalid_document",
        ListErrorCode::TooLarge => "too_large",
        ListErrorCode::RateLimited => "rate_limited",
        ListErrorCode::Internal => "internal",
    }
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

impl Session {
    /// A session for `client`, remembering the documents refused on earlier connections.
    pub fn new(client: Arc<Client>, refused: Refused) -> Self {
        Self {
            client,
            lists: BTreeMap::new(),
            user: None,
            version: 0,
            failures: Vec::new(),
            refused,
            server_error: None,
            closed: None,
        }
    }

    /// The first message to send.
    pub fn hello(&self) -> ClientMessage {
        ClientMessage::hello()
    }

    /// Whether the server's `Welcome` arrived.
    pub fn welcomed(&self) -> bool {
        self.user.is_some()
    }

    /// The refusals seen so far in this session.
    pub fn failures(&self) -> &[ListFailure] {
        &self.failures
    }

    /// The refused documents, to hand to the next session.
    pub fn refused(&self) -> &Refused {
        &self.refused
    }

    /// Handles one server message and returns the messages to send back. A connection-level
    /// `Error` from the server is returned as an error (the server closes the socket), mapped
    /// by its code: `unsupported_version` is [`Error::UpdateRequired`], `unauthorized`,
    /// `rate_limited` and `bad_message` their own kinds, the rest [`Error::Offline`].
    pub fn handle(&mut self, message: ServerMessage) -> Result<Vec<ClientMessage>> {
        match message {
            ServerMessage::Welcome { version, user, lists } => self.welcome(version, user, lists),
            ServerMessage::Sync { list, data } => self.receive(list, &data),
            ServerMessage::Changes { list, seq, heads, data } => {
                self.receive_frame(list, seq, &heads, &data)
            }
            ServerMessage::Access(ListAccess { list, role }) => self.access(list, role),
            ServerMessage::Removed { list, reason } => {
                self.lists.remove(&list);
                if self.client.role(list)?.is_some() {
                    tracing::info!(%list, ?reason, "list removed by the server");
                    self.client.forget_list(list)?;
                }
                Ok(Vec::new())
            }
            ServerMessage::ListError { list, code, message } => {
                self.list_error(list, code, message)?;
                Ok(Vec::new())
            }
            ServerMessage::Error { code, message } => {
                tracing::warn!(?code, %message, "the server is closing the sync connection");
                let error = SyncClose::new(Some((code, message.clone())), None).to_error();
                self.server_error = Some((code, message));
                Err(error)
            }
        }
    }

    /// The connection-level `Error` the server sent, if any (it closes the socket after it).
    pub fn server_error(&self) -> Option<&(ErrorCode, String)> {
        self.server_error.as_ref()
    }

    /// Records how the server closed this connection.
    pub fn set_closed(&mut self, close: SyncClose) {
        self.closed = Some(close);
    }

    /// How the server closed this connection, once it did.
    pub fn closed(&self) -> Option<&SyncClose> {
        self.closed.as_ref()
    }

    fn welcome(
        &mut self,
        version: u16,
        user: UserId,
        lists: Vec<ListAccess>,
    ) -> Result<Vec<ClientMessage>> {
        if self.user.is_some() {
            return Err(Error::Internal("the server sent a second Welcome".into()));
        }
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
            return Err(Error::Internal(format!("the server chose protocol version {version}")));
        }
        self.user = Some(user);
        self.version = version;
        let deleted: HashSet<ListId> = self.client.pending_deletions()?.into_iter().collect();
        let on_server: HashSet<ListId> = lists.iter().map(|a| a.list).collect();
        for access in &lists {
            if !deleted.contains(&access.list) {
                self.client.track_list(access.list, "", access.role)?;
            }
        }
        for held in self.client.lists()? {
            if !on_server.contains(&held.id) && held.role != Role::Owner {
                // Unshared or deleted while this device was offline.
                self.client.forget_list(held.id)?;
            }
        }
        self.start_all()
    }

    /// Starts every visible list with a server id that is not yet in this session.
    pub fn start_all(&mut self) -> Result<Vec<ClientMessage>> {
        if !self.welcomed() {
            return Ok(Vec::new());
        }
        let provisional: HashSet<ListId> = self.client.provisional_lists()?.into_iter().collect();
        let mut out = Vec::new();
        let visible: HashSet<ListId> = self.client.lists()?.into_iter().map(|l| l.id).collect();
        // Lists gone here (deleted, forgotten, remapped away) leave the session.
        let gone: Vec<ListId> =
            self.lists.keys().filter(|id| !visible.contains(id)).copied().collect();
        for list in gone {
            self.lists.remove(&list);
            out.push(ClientMessage::Unsubscribe { list });
        }
        let mut ids: Vec<ListId> = visible.into_iter().collect();
        ids.sort();
        for list in ids {
            if provisional.contains(&list) || self.lists.contains_key(&list) {
                continue;
            }
            out.extend(self.start(list)?);
        }
        Ok(out)
    }

    fn start(&mut self, list: ListId) -> Result<Option<ClientMessage>> {
        if let Some(refused) = self.refused.get(&list) {
            if sorted(self.client.heads(list)?) == sorted(refused.clone()) {
                // The server refused exactly this document: do not send it again.
                self.lists.insert(list, ListSync::new(State::new(), Vec::new(), true, false));
                return Ok(None);
            }
            self.refused.remove(&list);
        }
        let (state, server_heads) = self.client.load_sync_state(list)?;
        let viewer = self.client.role(list)?.is_some_and(|role| !role.can_edit());
        self.lists
            .insert(list, ListSync::new(state_for(state, viewer), server_heads, false, viewer));
        self.generate(list)
    }

    /// The next message for `list`, if one is due: its new changes, raw, while it streams;
    /// else an Automerge sync message.
    fn generate(&mut self, list: ListId) -> Result<Option<ClientMessage>> {
        let Some(entry) = self.lists.get_mut(&list) else { return Ok(None) };
        if entry.stopped {
            return Ok(None);
        }
        if entry.streaming && !entry.forbidden {
            match self.client.changes_since(list, &entry.server_heads) {
                Ok(Some(changes)) => {
                    // What was sent and is still not in the server's history stays in flight;
                    // the rest of `sent` has been taken.
                    let pending: HashSet<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
                    entry.sent.retain(|h| pending.contains(h));
                    let mut data = Vec::new();
                    for change in changes {
                        if entry.sent.insert(change.hash()) {
                            data.extend_from_slice(change.raw_bytes());
                        }
                    }
                    return Ok((!data.is_empty()).then_some(ClientMessage::Changes { list, data }));
                }
                // The server's heads are not all here: catch up through sync messages.
                Ok(None) => entry.streaming = false,
                Err(Error::NotFound(_)) => {
                    self.lists.remove(&list);
                    return Ok(Some(ClientMessage::Unsubscribe { list }));
                }
                Err(e) => return Err(e),
            }
        }
        match self.client.sync_generate(list, &mut entry.state) {
            Ok(data) => Ok(data.map(|data| ClientMessage::Sync { list, data })),
            Err(Error::NotFound(_)) => {
                self.lists.remove(&list);
                Ok(Some(ClientMessage::Unsubscribe { list }))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `list` streams from now on: version 2, not refused, and the document here
    /// holds exactly the heads the server advertised.
    fn update_streaming(&mut self, list: ListId) -> Result<()> {
        let Some(entry) = self.lists.get(&list) else { return Ok(()) };
        let streaming = self.version >= 2
            && !entry.stopped
            && !entry.forbidden
            && !entry.server_heads.is_empty()
            && sorted(self.client.heads(list)?) == sorted(entry.server_heads.clone());
        if let Some(entry) = self.lists.get_mut(&list) {
            if streaming && !entry.streaming {
                entry.sent.clear();
            }
            entry.streaming = streaming;
        }
        Ok(())
    }

    /// A version 2 frame: a batch the server saved, for a list this session holds in step.
    fn receive_frame(
        &mut self,
        list: ListId,
        seq: u64,
        heads: &[u8],
        data: &[u8],
    ) -> Result<Vec<ClientMessage>> {
        let Some(entry) = self.lists.get_mut(&list) else {
            tracing::debug!(%list, "changes for a list not in this session; ignored");
            return Ok(Vec::new());
        };
        let Some(heads) = decode_heads(heads) else {
            entry.stopped = true;
            self.fail(list, "invalid_document", "the server sent heads that do not decode".into());
            return Ok(Vec::new());
        };
        match self.client.apply_server_changes(list, &mut entry.state, data, &heads) {
            Ok(applied) => {
                entry.heard = true;
                entry.server_heads = heads;
                if !applied.complete {
                    tracing::info!(%list, seq, "a batch was missed: catching up through sync");
                    entry.streaming = false;
                    return Ok(self.generate(list)?.into_iter().collect());
                }
                if entry.forbidden {
                    self.drop_refused_local_changes(list)?;
                }
            }
            Err(e) => return self.store_refused(list, e),
        }
        if !self.lists.get(&list).is_some_and(|l| l.streaming) {
            self.update_streaming(list)?;
        }
        Ok(self.generate(list)?.into_iter().collect())
    }

    /// What it means for `list` that the store could not take a server message: the list is
    /// gone here (unsubscribe), or the message does not apply here (stop this list, start
    /// over from the stored state on the next connection).
    fn store_refused(&mut self, list: ListId, error: Error) -> Result<Vec<ClientMessage>> {
        match error {
            Error::NotFound(_) => {
                self.lists.remove(&list);
                Ok(vec![ClientMessage::Unsubscribe { list }])
            }
            Error::InvalidInput(message) => {
                if let Some(entry) = self.lists.get_mut(&list) {
                    entry.stopped = true;
                }
                self.fail(list, "invalid_document", message);
                Ok(Vec::new())
            }
            e => Err(e),
        }
    }

    fn receive(&mut self, list: ListId, data: &[u8]) -> Result<Vec<ClientMessage>> {
        let Some(entry) = self.lists.get_mut(&list) else {
            tracing::debug!(%list, "sync message for a list not in this session; ignored");
            return Ok(Vec::new());
        };
        // A sync message: the server is catching this list up (or asks for something), so
        // answer in kind; streaming resumes once in step.
        entry.streaming = false;
        match self.client.sync_receive(list, &mut entry.state, data) {
            Ok(received) => {
                entry.heard = true;
                entry.server_heads = received.server_heads;
                // The server refused our changes as a viewer's (it says so with `forbidden`;
                // servers that advertise Automerge's read-only flag say it that way too).
                if entry.forbidden || entry.state.is_peer_read_only() {
                    self.drop_refused_local_changes(list)?;
                }
            }
            Err(e) => return self.store_refused(list, e),
        }
        let answer = self.generate(list)?;
        self.update_streaming(list)?;
        Ok(answer.into_iter().collect())
    }

    /// The server holds this user as a viewer of `list`, so changes made here (before a
    /// downgrade, say) will never be taken: go back to the server's document and say so.
    fn drop_refused_local_changes(&mut self, list: ListId) -> Result<()> {
        let Some(entry) = self.lists.get(&list) else { return Ok(()) };
        let heads = entry.server_heads.clone();
        if heads.is_empty() || sorted(self.client.heads(list)?) == sorted(heads.clone()) {
            return Ok(());
        }
        if !self.client.has_changes(list, &heads)? {
            return Ok(()); // still receiving the server's changes
        }
        if self.client.discard_changes_after(list, &heads)? {
            self.fail(
                list,
                "forbidden",
                "you can only view this list: changes made here were refused and undone".into(),
            );
        }
        Ok(())
    }

    fn access(&mut self, list: ListId, role: Role) -> Result<Vec<ClientMessage>> {
        if self.client.pending_deletions()?.contains(&list) {
            return Ok(Vec::new());
        }
        self.client.track_list(list, "", role)?;
        // A new role restarts the server's side of the exchange: restart ours too.
        self.lists.remove(&list);
        self.refused.remove(&list);
        if self.client.provisional_lists()?.contains(&list) || !self.welcomed() {
            return Ok(Vec::new());
        }
        Ok(self.start(list)?.into_iter().collect())
    }

    fn list_error(&mut self, list: ListId, code: ListErrorCode, message: String) -> Result<()> {
        tracing::warn!(%list, ?code, %message, "the server refused a list");
        if let Some(entry) = self.lists.get_mut(&list) {
            entry.streaming = false;
            entry.sent.clear();
            match code {
                // Keep receiving: the server's read-only state stops our changes from being
                // sent again, and the viewer still gets everyone else's.
                ListErrorCode::Forbidden => entry.forbidden = true,
                ListErrorCode::InvalidDocument | ListErrorCode::TooLarge => {
                    entry.stopped = true;
                    let heads = self.client.heads(list)?;
                    self.refused.insert(list, heads);
                }
                ListErrorCode::NotFound | ListErrorCode::RateLimited | ListErrorCode::Internal => {
                    entry.stopped = true;
                }
            }
        }
        self.fail(list, code_name(code), message);
        Ok(())
    }

    fn fail(&mut self, list: ListId, code: &str, message: String) {
        self.client.report_sync_error(list, code, &message);
        self.failures.push(ListFailure { list, code: code.to_owned(), message });
    }

    /// A list changed here: the messages that carry the change (starting the list if it is
    /// new to this session).
    pub fn local_changed(&mut self, list: ListId) -> Result<Vec<ClientMessage>> {
        if !self.welcomed() {
            return Ok(Vec::new());
        }
        if !self.lists.contains_key(&list) {
            return self.start_all();
        }
        if self.lists.get(&list).is_some_and(|l| l.stopped) && self.refused.contains_key(&list) {
            // A refused document changed: try again with the new one.
            self.lists.remove(&list);
            return Ok(self.start(list)?.into_iter().collect());
        }
        Ok(self.generate(list)?.into_iter().collect())
    }

    /// Messages due for any list (edits made by another process on the same store show up
    /// this way). Also restarts lists stopped by a transient server error when `retry`.
    pub fn poll(&mut self, retry: bool) -> Result<Vec<ClientMessage>> {
        let mut out = self.start_all()?;
        let ids: Vec<ListId> = self.lists.keys().copied().collect();
        for list in ids {
            let stopped = self.lists.get(&list).is_some_and(|l| l.stopped);
            if stopped && retry && !self.refused.contains_key(&list) {
                self.lists.remove(&list);
                out.extend(self.start(list)?);
            } else if stopped && self.refused.contains_key(&list) {
                out.extend(self.local_changed(list)?);
            } else {
                out.extend(self.generate(list)?);
            }
        }
        Ok(out)
    }

    /// Each list of this session with where it stands.
    pub fn statuses(&self) -> Result<Vec<(ListId, ListSyncStatus)>> {
        let mut out = Vec::new();
        for (&list, entry) in &self.lists {
            let status = if entry.stopped {
                ListSyncStatus::Failed
            } else if !entry.heard {
                ListSyncStatus::Pending
            } else if sorted(self.client.heads(list)?) == sorted(entry.server_heads.clone()) {
                ListSyncStatus::InStep
            } else if (entry.forbidden || entry.state.is_peer_read_only())
                && self.client.has_changes(list, &entry.server_heads)?
            {
                // Read-only here: we hold everything the server has; our own changes (if
                // any) can never go, and were reported.
                ListSyncStatus::InStep
            } else {
                ListSyncStatus::Pending
            };
            out.push((list, status));
        }
        for list in self.client.provisional_lists()? {
            out.push((list, ListSyncStatus::NoId));
        }
        Ok(out)
    }

    /// Whether no list is pending: each is in step, failed or without an id, so nothing
    /// more will come of waiting.
    pub fn settled(&self) -> Result<bool> {
        Ok(self.welcomed() && self.statuses()?.iter().all(|(_, s)| *s != ListSyncStatus::Pending))
    }
}
