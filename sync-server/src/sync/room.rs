//! One task per loaded list: owns the list's [`Room`] (merged document and peers), applies
//! what peers send in batches, saves each batch in one transaction (group commit), and only
//! then tells the peers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use axum::body::Bytes;
use metrics::Histogram;
use tandem_protocol::automerge::{ActorId, ChangeHash};
use tandem_protocol::limits::SyncLimits;
use tandem_protocol::room::{PeerId, Received, Refusal, Room};
use tandem_protocol::wire::{ErrorCode, ListErrorCode, RemovalReason, ServerMessage, encode_heads};
use tandem_protocol::{ListDoc, ListId, Role, UserId};
use tokio::sync::{mpsc, oneshot};

use super::{Hub, Outbox, SyncConfig};
use crate::store::StoreError;
use crate::store::documents::{Save, Saved};
use crate::store::history::{AcceptedChange, ActorBinding};
use crate::store::lists::ItemRecord;

/// Commands a room's inbox takes.
#[derive(Debug)]
pub enum RoomCommand {
    /// A socket subscribes with the user's role.
    Join {
        /// The socket.
        peer: PeerId,
        /// Its user.
        user: UserId,
        /// The user's role.
        role: Role,
        /// The socket speaks protocol version 2 (saved batches streamed as frames).
        streams: bool,
        /// Where its frames go.
        out: Outbox,
    },
    /// A socket unsubscribes (or closed).
    Leave {
        /// The socket.
        peer: PeerId,
    },
    /// A socket's sync message.
    Sync {
        /// The socket.
        peer: PeerId,
        /// Its user: a socket this room does not know (the room was reloaded) is let in
        /// again after its access is checked.
        user: UserId,
        /// The encoded Automerge sync message.
        data: Vec<u8>,
        /// Where to answer if the socket is not (or no longer) subscribed.
        out: Outbox,
        /// When the socket read it: the acknowledgement latency is measured from here.
        arrived: Instant,
    },
    /// A version 2 socket's raw changes.
    Changes {
        /// The socket.
        peer: PeerId,
        /// Its user (see `Sync`).
        user: UserId,
        /// The change chunks.
        data: Vec<u8>,
        /// Where to answer if the socket is not (or no longer) subscribed.
        out: Outbox,
        /// When the socket read them (see `Sync`).
        arrived: Instant,
    },
    /// A REST rename.
    Rename {
        /// Who asks.
        user: UserId,
        /// The new title.
        title: String,
        /// Optimistic-lock check.
        expected_version: Option<i64>,
        /// The new title and version, or why not.
        reply: oneshot::Sender<Result<(String, i64), StoreError>>,
    },
    /// A member's role changed (`None`: removed).
    SetRole {
        /// The member.
        user: UserId,
        /// The new role.
        role: Option<Role>,
    },
    /// The list was deleted.
    Deleted,
}

/// What a socket sent for the room to merge.
#[derive(Debug, Clone, Copy)]
enum Incoming<'a> {
    /// An Automerge sync message.
    Sync(&'a [u8]),
    /// Version 2: raw change chunks.
    Changes(&'a [u8]),
}

/// How a room's document comes to be.
#[derive(Debug, Clone)]
pub enum RoomInit {
    /// Load it from the store.
    Load,
    /// A list id reserved by `owner`, not yet on the server: start empty and create the list
    /// when the owner's first valid document arrives.
    Reserved {
        /// The user who reserved the id.
        owner: UserId,
        /// Their email.
        email: String,
    },
}

/// Most commands handled in one batch (one transaction).
const BATCH: usize = 256;

/// Most sync messages one flush sends a peer (Automerge sends one and then waits for the
/// answer; the bound only keeps a surprise from spinning).
const FLUSH_PASSES: usize = 4;

/// How long a user whose bytes broke the room's document is refused (each break costs a
/// reload of the whole document).
const BROKEN_PENALTY: Duration = Duration::from_secs(60);

/// Largest stored document a quiet room lets go of (see [`Room::sleep`]): loading it again
/// when the next message comes must stay quick.
const SLEEP_MAX_BYTES: usize = 64 * 1024;

struct Member {
    user: UserId,
    /// Speaks protocol version 2.
    streams: bool,
    out: Outbox,
}

struct RoomTask {
    hub: Hub,
    list: ListId,
    room: Room,
    members: HashMap<PeerId, Member>,
    /// Peers that joined or sent something since the last flush: with the document's heads
    /// where they were at that flush, only these can need a message.
    dirty: HashSet<PeerId>,
    flushed_heads: Vec<ChangeHash>,
    /// Set while the list exists only on the client that reserved its id.
    unborn: Option<(UserId, String)>,
    chunks: usize,
    stored_bytes: usize,
    last_seq: i64,
    /// Automerge failed on a peer's bytes: the in-memory document must be reloaded from the
    /// store before anything else is saved or sent.
    broken: bool,
    /// Users whose bytes broke the document, with when their changes are taken again.
    penalized: HashMap<UserId, Instant>,
    /// Save times on the list's database.
    save_seconds: Histogram,
}

/// Starts a room task; it loads the document before it handles its first command.
pub(crate) fn spawn(hub: Hub, list: ListId, init: RoomInit) -> mpsc::Sender<RoomCommand> {
    let (tx, rx) = mpsc::channel(BATCH * 4);
    tokio::spawn(run(hub, list, init, rx));
    tx
}

async fn run(hub: Hub, list: ListId, init: RoomInit, mut inbox: mpsc::Receiver<RoomCommand>) {
    // The loading and batch futures are boxed while they run, so that an idle room's task
    // keeps only its state, not room for the largest future it ever awaits (3 KiB).
    let Some(mut task) = Box::pin(RoomTask::load(hub.clone(), list, init)).await else {
        // No such list: answer everything that was waiting, then go.
        while let Ok(command) = inbox.try_recv() {
            refuse_missing(list, command);
        }
        hub.try_unload(list, &inbox);
        return;
    };
    let idle = Duration::from_secs(hub.config().room_idle_secs);
    let sleep_after = Duration::from_secs(hub.config().room_sleep_secs.max(1));
    let mut quiet_since = Instant::now();
    // Grown as batches come: most rooms are idle, and 256 slots would cost each 16 KiB.
    let mut batch = Vec::new();
    let draining = hub.shutdown().clone();
    loop {
        let wait = if task.room.is_asleep() { idle } else { sleep_after.min(idle) };
        let received = tokio::select! {
            // Queued commands first: a draining room still saves and answers what it was sent.
            biased;
            received = tokio::time::timeout(wait, inbox.recv_many(&mut batch, BATCH)) => received,
            () = draining.cancelled() => {
                if hub.try_unload(list, &inbox) {
                    task.leave_sleep_count();
                    return;
                }
                continue; // a command came meanwhile
            }
        };
        match received {
            Ok(0) => break,
            Ok(_) => {
                quiet_since = Instant::now();
                let was_asleep = task.room.is_asleep();
                let open = Box::pin(task.handle_batch(batch.drain(..))).await;
                if was_asleep && !task.room.is_asleep() {
                    task.hub.metrics().rooms_asleep.fetch_sub(1, Ordering::Relaxed);
                }
                if !open {
                    break;
                }
            }
            Err(_quiet) => {
                let quiet = quiet_since.elapsed();
                if quiet >= idle && task.members.is_empty() && hub.try_unload(list, &inbox) {
                    task.leave_sleep_count();
                    return;
                }
                if quiet >= sleep_after
                    && !task.room.is_asleep()
                    && task.stored_bytes <= SLEEP_MAX_BYTES
                    && task.room.sleep()
                {
                    task.hub.metrics().rooms_asleep.fetch_add(1, Ordering::Relaxed);
                }
                batch.shrink_to_fit();
            }
        }
    }
    task.leave_sleep_count();
    hub.try_unload(list, &inbox);
}

/// What one peer may make a room decode and hold, from the `[sync]` config.
fn limits(config: &SyncConfig) -> SyncLimits {
    SyncLimits {
        max_decoded_message_bytes: config.max_decoded_message_bytes,
        max_change_ops: config.max_change_ops,
        max_document_ops: config.max_document_ops,
        max_held_changes: config.max_held_changes,
        max_held_bytes: config.max_held_bytes,
        max_actors_per_user: config.max_actors_per_user,
        full_syncs_per_minute: config.full_syncs_per_minute,
    }
}

fn refuse_missing(list: ListId, command: RoomCommand) {
    let not_found = ServerMessage::ListError {
        list,
        code: ListErrorCode::NotFound,
        message: "List not found.".into(),
    };
    match command {
        RoomCommand::Join { out, .. } | RoomCommand::Sync { out, .. } => {
            out.send(&not_found);
        }
        RoomCommand::Rename { reply, .. } => {
            let _ = reply.send(Err(StoreError::NotFound));
        }
        _ => {}
    }
}

impl RoomTask {
    async fn load(hub: Hub, list: ListId, init: RoomInit) -> Option<Self> {
        let (doc, unborn, stored) = match hub.store().load_document(list).await {
            Ok(mut stored) => {
                // Loading is CPU work in proportion to the list: off the async threads, so
                // that a big list does not hold up every other socket and request.
                let parts = std::mem::take(&mut stored.parts);
                let loaded = tokio::task::spawn_blocking(move || {
                    let mut parts = parts.iter();
                    let first =
                        parts.next().map_or_else(|| Ok(ListDoc::empty()), |p| ListDoc::load(p));
                    first.and_then(|mut doc| {
                        parts.try_for_each(|part| doc.load_incremental(part)).map(|()| doc)
                    })
                })
                .await;
                match loaded {
                    Ok(Ok(doc)) => (doc, None, Some(stored)),
                    Ok(Err(err)) => {
                        tracing::error!(%list, error = %err, "stored document does not load");
                        return None;
                    }
                    Err(err) => {
                        tracing::error!(%list, error = %err, "loading a stored document failed");
                        return None;
                    }
                }
            }
            Err(StoreError::NotFound) => match init {
                RoomInit::Reserved { owner, email } => {
                    (ListDoc::empty(), Some((owner, email)), None)
                }
                RoomInit::Load => return None,
            },
            Err(err) => {
                tracing::error!(%list, error = ?err, "loading a list's document");
                return None;
            }
        };
        let (chunks, stored_bytes, last_seq) =
            stored.as_ref().map(|s| (s.chunks, s.bytes, s.last_seq)).unwrap_or_default();
        let actors: Vec<(ActorId, UserId)> = stored
            .as_ref()
            .map(|s| s.actors.iter().map(|b| (ActorId::from(b.actor.as_slice()), b.user)).collect())
            .unwrap_or_default();
        let room = Room::with_limits(doc, limits(hub.config()), actors);
        let database = hub.store().shards().for_list(list).label().to_owned();
        let save_seconds = hub.metrics().save_seconds(&database);
        let mut task = Self {
            hub,
            list,
            room,
            members: HashMap::new(),
            dirty: HashSet::new(),
            flushed_heads: Vec::new(),
            unborn,
            chunks,
            stored_bytes,
            last_seq,
            broken: false,
            penalized: HashMap::new(),
            save_seconds,
        };
        if task.chunks > 0 {
            // Chunks loaded one by one keep their history in memory: fold them into the
            // snapshot now, and hold the document as loaded from it.
            task.compact().await;
        }
        Some(task)
    }

    /// Takes a room that goes away while asleep off the sleeping-rooms gauge.
    fn leave_sleep_count(&self) {
        if self.room.is_asleep() {
            self.hub.metrics().rooms_asleep.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn error(&self, out: &Outbox, code: ListErrorCode, message: impl Into<String>) {
        out.send(&ServerMessage::ListError { list: self.list, code, message: message.into() });
    }

    /// Handles a batch; returns false when the room must close.
    async fn handle_batch(&mut self, batch: impl Iterator<Item = RoomCommand>) -> bool {
        let mut renames = Vec::new();
        // When each message that changed the document arrived, for the acknowledgement time.
        let mut arrivals = Vec::new();
        for command in batch {
            match command {
                RoomCommand::Join { peer, user, role, streams, out } => {
                    self.join(peer, user, role, streams, out);
                    self.dirty.insert(peer);
                }
                RoomCommand::Leave { peer } => {
                    self.room.leave(peer);
                    self.members.remove(&peer);
                }
                RoomCommand::Sync { peer, user, data, out, arrived } => {
                    if !self.members.contains_key(&peer)
                        && !self.rejoin(peer, user, false, &out).await
                    {
                        continue;
                    }
                    self.dirty.insert(peer);
                    if self.receive(peer, Incoming::Sync(&data), &out) {
                        arrivals.push(arrived);
                    }
                }
                RoomCommand::Changes { peer, user, data, out, arrived } => {
                    if !self.members.contains_key(&peer)
                        && !self.rejoin(peer, user, true, &out).await
                    {
                        continue;
                    }
                    self.dirty.insert(peer);
                    if self.receive(peer, Incoming::Changes(&data), &out) {
                        arrivals.push(arrived);
                    }
                }
                RoomCommand::Rename { user, title, expected_version, reply } => {
                    renames.push((user, title, expected_version, reply))
                }
                RoomCommand::SetRole { user, role } => self.set_role(user, role),
                RoomCommand::Deleted => {
                    for member in self.members.values() {
                        member.out.send(&ServerMessage::Removed {
                            list: self.list,
                            reason: RemovalReason::Deleted,
                        });
                    }
                    return false;
                }
            }
        }
        if std::mem::take(&mut self.broken) && !self.reload_saved().await {
            // Changes merged in this batch are dropped unacknowledged; their senders still
            // hold them and send them again on their new sync state.
            return false;
        }
        if !self.save().await {
            return false;
        }
        for (user, title, expected, reply) in renames {
            let _ = reply.send(self.rename(user, &title, expected).await);
        }
        self.flush();
        if !self.broken {
            for arrived in arrivals {
                self.hub.metrics().ack_seconds.record(arrived.elapsed().as_secs_f64());
            }
        }
        // After the acknowledgements went out, so that compaction never delays them.
        self.maybe_compact().await;
        true
    }

    /// Lets a subscribed socket in again after this room was reloaded, if its user still has
    /// access; otherwise answers `not_found`.
    async fn rejoin(&mut self, peer: PeerId, user: UserId, streams: bool, out: &Outbox) -> bool {
        let role = match (&self.unborn, self.hub.store().access(self.list, user).await) {
            (_, Ok(access)) => access.role,
            (Some((owner, _)), Err(StoreError::NotFound)) if *owner == user => Role::Owner,
            _ => {
                self.error(out, ListErrorCode::NotFound, "List not found.");
                return false;
            }
        };
        self.join(peer, user, role, streams, out.clone());
        true
    }

    fn join(&mut self, peer: PeerId, user: UserId, role: Role, streams: bool, out: Outbox) {
        if streams {
            self.room.join_streaming(peer, user, role);
        } else {
            self.room.join(peer, user, role);
        }
        self.members.insert(peer, Member { user, streams, out });
    }

    /// Merges what a peer sent; true when it changed the document (there is something to
    /// save and acknowledge).
    fn receive(&mut self, peer: PeerId, incoming: Incoming<'_>, out: &Outbox) -> bool {
        let data = match incoming {
            Incoming::Sync(data) | Incoming::Changes(data) => data,
        };
        let Some(member) = self.members.get(&peer) else {
            self.error(out, ListErrorCode::NotFound, "List not found.");
            return false;
        };
        if let Some(until) = self.penalized.get(&member.user) {
            if *until > Instant::now() {
                self.error(
                    out,
                    ListErrorCode::RateLimited,
                    "Your last change to this list could not be applied; retry later.",
                );
                return false;
            }
            self.penalized.remove(&member.user);
        }
        if self.stored_bytes + data.len() > self.hub.config().max_document_bytes {
            self.error(out, ListErrorCode::TooLarge, "The list has reached its size limit.");
            return false;
        }
        let metrics = self.hub.metrics();
        let received = match incoming {
            Incoming::Sync(data) => self.room.receive(peer, data),
            Incoming::Changes(data) => self.room.receive_changes(peer, data),
        };
        let changed = matches!(received, Ok(Received { changed: true, .. }));
        match received {
            Ok(Received { dropped, .. }) if dropped > 0 => {
                metrics.orphan_changes_dropped.increment(dropped as u64);
                self.error(
                    out,
                    ListErrorCode::InvalidDocument,
                    format!(
                        "{dropped} changes were dropped: their dependencies never arrived; \
                         send them with what they depend on"
                    ),
                );
            }
            Ok(_) => {}
            Err(Refusal::ReadOnly) => {
                metrics.viewer_changes_refused.increment(1);
                self.error(
                    out,
                    ListErrorCode::Forbidden,
                    "Viewers cannot change this list; the change was not applied.",
                )
            }
            Err(Refusal::ForeignActor) => {
                metrics.foreign_actor_changes_refused.increment(1);
                self.error(
                    out,
                    ListErrorCode::Forbidden,
                    "A change was made under another user's device id; nothing was applied.",
                )
            }
            Err(Refusal::Invalid(e)) => {
                metrics.invalid_changes_refused.increment(1);
                self.error(
                    out,
                    ListErrorCode::InvalidDocument,
                    format!("The change was refused: {e}"),
                )
            }
            Err(Refusal::TooLarge(e)) => {
                metrics.oversized_messages_refused.increment(1);
                self.error(out, ListErrorCode::TooLarge, format!("The change was refused: {e}."))
            }
            Err(Refusal::RateLimited) => {
                metrics.full_syncs_throttled.increment(1);
                self.error(
                    out,
                    ListErrorCode::RateLimited,
                    "The whole list was sent to you too often; retry in a minute.",
                )
            }
            Err(Refusal::Malformed(e)) => {
                self.error(out, ListErrorCode::InvalidDocument, format!("Not a sync message: {e}"))
            }
            Err(Refusal::UnknownPeer) => {
                self.error(out, ListErrorCode::NotFound, "List not found.")
            }
            Err(Refusal::Abusive(e)) => {
                // Cut off: the socket closes, and what the room held for it goes with it.
                tracing::warn!(list = %self.list, %peer, reason = %e, "closing an abusive socket");
                out.close(
                    ErrorCode::BadMessage,
                    format!("Too many refused messages for list {}: {e}", self.list),
                );
                self.room.leave(peer);
                self.members.remove(&peer);
            }
            Err(Refusal::Broken(e)) => {
                // The in-memory document may be damaged: reload it from what is saved. No
                // honest client sends such bytes: its socket closes, and its user's changes to
                // this list are refused for a while, so that reloads stay rare.
                tracing::warn!(list = %self.list, %peer, error = %e, "automerge failed on a peer's bytes; reloading");
                self.broken = true;
                if let Some(member) = self.members.get(&peer) {
                    self.penalized.insert(member.user, Instant::now() + BROKEN_PENALTY);
                }
                out.close(
                    ErrorCode::BadMessage,
                    format!("A change for list {} could not be applied.", self.list),
                );
                self.room.leave(peer);
                self.members.remove(&peer);
            }
        }
        changed
    }

    fn set_role(&mut self, user: UserId, role: Option<Role>) {
        let peers: Vec<PeerId> =
            self.members.iter().filter(|(_, m)| m.user == user).map(|(p, _)| *p).collect();
        for peer in peers {
            self.dirty.insert(peer);
            match role {
                Some(role) => self.room.set_role(peer, role),
                None => {
                    self.room.leave(peer);
                    self.members.remove(&peer);
                }
            }
        }
    }

    /// Saves what the batch merged, in one transaction, before anyone hears of it.
    async fn save(&mut self) -> bool {
        let Some(chunk) = self.room.unsaved() else { return true };
        let chunk_len = chunk.len();
        let touched = self.room.unsaved_touched().clone();
        let (new_actors, accepted) = self.unsaved_history();
        let doc = self.room.doc();
        let Ok(title) = doc.title() else {
            return true; // an unborn list still empty: nothing to save yet
        };
        let store = self.hub.store().clone();
        let started = Instant::now();
        let saved = if self.unborn.is_some() || touched.structure {
            // Every row, from the whole document.
            let items: Vec<ItemRecord> = match doc.items() {
                Ok(items) => items.into_iter().map(ItemRecord::from).collect(),
                Err(_) => return true,
            };
            match &self.unborn {
                Some((owner, email)) => {
                    let Some(snapshot) = self.room.snapshot() else {
                        tracing::error!(list = %self.list, "a new list's save does not load back");
                        return false;
                    };
                    store
                        .create_list_from_sync(
                            self.list,
                            *owner,
                            email,
                            &snapshot,
                            &title,
                            &items,
                            &new_actors,
                            &accepted,
                        )
                        .await
                        .map(|()| Saved { seq: 0, version: 1 })
                }
                None => {
                    let save = Save {
                        list: self.list,
                        chunk,
                        title,
                        upserts: items,
                        removed: Vec::new(),
                        replace_all: true,
                        new_actors,
                        accepted,
                    };
                    store.save_changes(save).await
                }
            }
        } else {
            // Only the items this batch touched (validated as it was merged).
            let mut upserts = Vec::new();
            let mut removed = Vec::new();
            for id in touched.item_ids() {
                match doc.item(id) {
                    Ok(Some(item)) => upserts.push(item.into()),
                    Ok(None) => removed.push(id),
                    Err(_) => {}
                }
            }
            let save = Save {
                list: self.list,
                chunk,
                title,
                upserts,
                removed,
                replace_all: false,
                new_actors,
                accepted,
            };
            store.save_changes(save).await
        };
        self.save_seconds.record(started.elapsed().as_secs_f64());
        match saved {
            Ok(saved) => {
                if self.unborn.take().is_some() {
                    self.hub.metrics().lists_created.increment(1);
                    self.stored_bytes = chunk_len;
                } else {
                    self.chunks += 1;
                    self.stored_bytes += chunk_len;
                    self.last_seq = saved.seq;
                }
                self.room.mark_saved_as(saved.version as u64);
                self.hub.metrics().changes_merged.increment(1);
                true
            }
            Err(StoreError::NotFound) => {
                // Deleted (or never reserved) meanwhile: nothing to acknowledge.
                for member in self.members.values() {
                    member.out.send(&ServerMessage::ListError {
                        list: self.list,
                        code: ListErrorCode::NotFound,
                        message: "List not found.".into(),
                    });
                }
                false
            }
            Err(err) => {
                // Not saved, so not acknowledged: the clients still hold their changes and
                // will send them again. Start over from what is stored.
                tracing::error!(list = %self.list, error = ?err, "saving a list's changes failed");
                for member in self.members.values() {
                    member.out.send(&ServerMessage::ListError {
                        list: self.list,
                        code: ListErrorCode::Internal,
                        message: "The server could not save the change; it will be retried.".into(),
                    });
                }
                self.reload_saved().await
            }
        }
    }

    /// The actor bindings and accepted changes to save with the room's unsaved changes.
    fn unsaved_history(&self) -> (Vec<ActorBinding>, Vec<AcceptedChange>) {
        let actors = self
            .room
            .unsaved_actors()
            .iter()
            .map(|(actor, user)| ActorBinding { actor: actor.to_bytes().to_vec(), user: *user })
            .collect();
        let accepted = self
            .room
            .unsaved_accepted()
            .iter()
            .map(|a| AcceptedChange { hash: a.hash.0, user: a.user, actions: a.actions.clone() })
            .collect();
        (actors, accepted)
    }

    async fn maybe_compact(&mut self) {
        if self.chunks >= self.hub.config().compact_after_chunks {
            self.compact().await;
        }
    }

    /// Replaces the stored snapshot and chunks by one snapshot, and the document in memory by
    /// the same content loaded from it.
    async fn compact(&mut self) {
        // Saving and loading back are CPU work in proportion to the list: off the async
        // threads, with the room lent to the blocking pool meanwhile (nothing else runs in
        // this task until it is back).
        let mut room = std::mem::replace(&mut self.room, Room::new(ListDoc::empty()));
        let lent = tokio::task::spawn_blocking(move || {
            let compacted = room.compacted();
            (room, compacted)
        })
        .await;
        let compacted = match lent {
            Ok((room, compacted)) => {
                self.room = room;
                compacted
            }
            Err(err) => {
                tracing::error!(list = %self.list, error = %err, "compacting failed; reloading");
                // Boxed: reloading loads a room, which may compact.
                self.broken = !Box::pin(self.reload_saved()).await;
                return;
            }
        };
        let Some((snapshot, loaded)) = compacted else {
            tracing::error!(list = %self.list, "the document's save does not load back; not compacted");
            return;
        };
        match self.hub.store().compact_document(self.list, &snapshot, self.last_seq).await {
            Ok(()) => {
                self.chunks = 0;
                self.stored_bytes = snapshot.len();
                self.room.adopt(loaded);
            }
            Err(err) => {
                tracing::warn!(list = %self.list, error = ?err, "compaction failed; will retry")
            }
        }
    }

    async fn rename(
        &mut self,
        user: UserId,
        title: &str,
        expected: Option<i64>,
    ) -> Result<(String, i64), StoreError> {
        let access = self.hub.store().access(self.list, user).await?;
        if !access.role.can_edit() {
            return Err(StoreError::Forbidden("Viewers cannot change a list.".into()));
        }
        if let Some(expected) = expected.filter(|&v| v != access.list.version) {
            return Err(StoreError::Conflict(format!(
                "The list is at version {}, not {expected}; read it again and retry.",
                access.list.version
            )));
        }
        if let Err(err) = self.room.edit_as(user, |d| d.set_title(title)) {
            return Err(StoreError::Invalid(err.to_string()));
        }
        let Some(chunk) = self.room.unsaved() else {
            // The title was already this: nothing to save, nothing changes.
            return Ok((title.to_owned(), access.list.version));
        };
        let (new_actors, accepted) = self.unsaved_history();
        // Checked again inside the transaction that saves the change.
        match self
            .hub
            .store()
            .rename_with_change(self.list, user, title, expected, &chunk, &new_actors, &accepted)
            .await
        {
            Ok((seq, version)) => {
                self.room.mark_saved_as(version as u64);
                self.chunks += 1;
                self.stored_bytes += chunk.len();
                self.last_seq = seq;
                Ok((title.to_owned(), version))
            }
            Err(err) => {
                // The title edit must not be saved later with someone else's changes.
                if !self.reload_saved().await {
                    self.broken = true;
                }
                Err(err)
            }
        }
    }

    /// Drops unsaved edits by reloading the document from the store; false if it cannot be
    /// loaded (the room then closes, and the next command loads it afresh).
    async fn reload_saved(&mut self) -> bool {
        let peers: Vec<(PeerId, UserId, Role)> = self.room.members().collect();
        if let Some(fresh) = RoomTask::load(self.hub.clone(), self.list, RoomInit::Load).await {
            self.room = fresh.room;
            self.chunks = fresh.chunks;
            self.stored_bytes = fresh.stored_bytes;
            self.last_seq = fresh.last_seq;
            // Every peer starts its sync over against the reloaded document.
            for (peer, user, role) in peers {
                let streams = self.members.get(&peer).is_some_and(|m| m.streams);
                if streams {
                    self.room.join_streaming(peer, user, role);
                } else {
                    self.room.join(peer, user, role);
                }
            }
            self.flushed_heads.clear();
            return true;
        }
        false
    }

    /// Sends every peer the sync message it needs now that everything is saved. A peer's
    /// next message depends only on its sync state and the document, so when the document did
    /// not move only the peers heard from since the last flush are asked.
    fn flush(&mut self) {
        let heads = self.room.heads();
        let peers: Vec<PeerId> = if heads == self.flushed_heads {
            self.dirty.drain().filter(|p| self.members.contains_key(p)).collect()
        } else {
            self.dirty.clear();
            self.members.keys().copied().collect()
        };
        self.flushed_heads = heads;
        let mut slow = Vec::new();
        // Version 2 peers that held the list as it was before a batch get the batch as one
        // frame, encoded once and shared.
        for (batch, to) in self.room.stream() {
            if to.is_empty() {
                continue;
            }
            let frame = Bytes::from(
                ServerMessage::Changes {
                    list: self.list,
                    seq: batch.seq,
                    heads: encode_heads(&batch.heads),
                    data: batch.chunk,
                }
                .encode(),
            );
            for peer in to {
                let Some(member) = self.members.get(&peer) else { continue };
                if !member.out.send_frame(frame.clone()) {
                    slow.push(peer);
                }
            }
        }
        // Usually one pass; a peer can need a second message right after its first.
        let mut pending = peers;
        for _pass in 0..FLUSH_PASSES {
            if pending.is_empty() {
                break;
            }
            let fanout = self.room.outgoing_many(&pending);
            // Each distinct message framed once, the frame shared by its sockets.
            let frames: Vec<Bytes> = fanout
                .messages
                .into_iter()
                .map(|data| Bytes::from(ServerMessage::Sync { list: self.list, data }.encode()))
                .collect();
            pending = Vec::with_capacity(fanout.to.len());
            for (peer, message) in fanout.to {
                let Some(member) = self.members.get(&peer) else { continue };
                if member.out.send_frame(frames[message].clone()) {
                    pending.push(peer);
                } else {
                    slow.push(peer);
                }
            }
        }
        // Their outboxes closed the sockets (and counted the slow readers).
        for peer in slow {
            self.room.leave(peer);
            self.members.remove(&peer);
        }
    }
}
