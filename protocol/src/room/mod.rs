//! The server's side of syncing one list with many peers, with no I/O: the merged document,
//! each peer's Automerge sync state, role and user, and the rule that nothing reaches a peer
//! before it is saved.
//!
//! The caller (the server's room task) feeds peer messages in with [`Room::receive`], saves
//! what [`Room::unsaved`] returns in one transaction (with [`Room::unsaved_actors`] and
//! [`Room::unsaved_accepted`]), calls [`Room::mark_saved`], and only then asks
//! [`Room::outgoing`] for the messages to send. `outgoing` refuses to produce anything while
//! changes are unsaved, so "every acknowledged change is durable" holds by construction, not
//! by the caller's care.
//!
//! Every peer may be hostile, a member of the list included. What a message carries passes,
//! in order and before Automerge applies anything:
//! 1. [`intake`](crate::intake): sane heads and Bloom filters; changes only (no whole
//!    documents), inflated and counted under [`SyncLimits`];
//! 2. the role: a viewer's changes are refused;
//! 3. [`actors`]: each change's actor belongs to the sender's user, or becomes theirs;
//! 4. [`held`]: changes whose dependencies are missing are set aside for one round;
//! 5. the document's operation limit;
//! 6. [`ListDoc::check_changes`]: the list's shape and rules, from the changes' operations.
//!
//! So refusing costs what the message costs, and the document only ever holds changes that
//! were checked, whose dependencies it has, made by the user who sent them.

mod actors;
mod fanout;
mod held;
mod peer;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use automerge::sync::{Message, SyncDoc as _};
use automerge::{ActorId, Change, ChangeHash, ReadDoc};

use crate::history::ChangeAction;
use crate::intake::{self, Incoming, IntakeError};
use crate::limits::SyncLimits;
use crate::list_doc::{Checked, ValidationError};
use crate::{ListDoc, Role, Touched, UserId};
use actors::{ActorRefusal, Actors};
pub use fanout::Fanout;
use fanout::Memo;
pub use peer::PeerId;
use peer::{MAX_STRIKES, Peer, state_for};

/// Why a peer's message was refused. Nothing of a refused message is applied.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The peer is not in the room.
    #[error("not subscribed to this list")]
    UnknownPeer,
    /// The bytes are not an Automerge sync message, or its parts are malformed.
    #[error("not a sync message: {0}")]
    Malformed(String),
    /// A viewer's message carried changes.
    #[error("viewers cannot change this list")]
    ReadOnly,
    /// A change made by an Automerge actor that belongs to another user.
    #[error("a change was made by another user's device")]
    ForeignActor,
    /// The changes would make the document malformed or break the rules of what a list may
    /// hold.
    #[error("the change would make the list malformed: {0}")]
    Invalid(#[from] ValidationError),
    /// The message, a change, the changes held for the peer or the document would be larger
    /// than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The peer asked for the whole list more often than allowed.
    #[error("the whole list was sent too often; retry in a minute")]
    RateLimited,
    /// The peer kept sending what is refused or never completes: cut it off.
    #[error("too many refused messages: {0}")]
    Abusive(String),
    /// Automerge failed (or panicked) on the bytes; the room's document must be reloaded.
    #[error("the change could not be applied: {0}")]
    Broken(String),
}

impl From<IntakeError> for Refusal {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::TooLarge(_) | IntakeError::TooManyOps(_) => {
                Refusal::TooLarge(e.to_string())
            }
            _ => Refusal::Malformed(e.to_string()),
        }
    }
}

/// What an accepted message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Whether the document changed (so there is something to save and to forward).
    pub changed: bool,
    /// Changes held since the peer's previous message whose dependencies never came: dropped.
    pub dropped: usize,
}

/// A batch of changes as saved: what version 2 peers in step are sent as one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The list's version after it (as given to [`Room::mark_saved_as`]).
    pub seq: u64,
    /// The heads before it.
    pub from: Vec<ChangeHash>,
    /// The heads after it.
    pub heads: Vec<ChangeHash>,
    /// Its changes, as saved (change chunks, for `load_incremental`).
    pub chunk: Vec<u8>,
}

/// A change the room accepted and who sent it: the user its actor is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The change.
    pub hash: ChangeHash,
    /// Who made it.
    pub user: UserId,
    /// What it did.
    pub actions: Vec<ChangeAction>,
}

/// The room's document or, while the room sleeps, the snapshot it wakes from.
enum Doc {
    /// Boxed: an `AutoCommit` is 4 KiB inline, which a sleeping room should not keep.
    Awake(Box<ListDoc>),
    Asleep(Vec<u8>),
}

impl Doc {
    /// The document, loaded again first if the room was asleep.
    fn get(&mut self) -> &mut ListDoc {
        if let Doc::Asleep(snapshot) = self {
            // `Room::sleep` loaded this very snapshot back before keeping it, and loading is
            // deterministic.
            let mut doc = ListDoc::load(snapshot).expect("a snapshot that loaded before");
            doc.track_changes();
            *self = Doc::Awake(Box::new(doc));
        }
        match self {
            Doc::Awake(doc) => doc,
            Doc::Asleep(_) => unreachable!("woken above"),
        }
    }
}

/// A user's allowance of whole-list sends: a token bucket refilled over a minute.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    tokens: f64,
    at: Instant,
}

/// One list's merged document and its peers.
pub struct Room {
    doc: Doc,
    peers: HashMap<PeerId, Peer>,
    saved_heads: Vec<ChangeHash>,
    /// What changed since the last save, so that saving writes only those rows.
    unsaved_touched: Touched,
    /// The changes accepted since the last save, with their authors.
    unsaved_accepted: Vec<Accepted>,
    /// Those changes as saved chunks, made as they were merged (which also proves that
    /// Automerge can write them out).
    unsaved_chunks: Vec<u8>,
    actors: Actors,
    limits: SyncLimits,
    memo: Memo,
    full_syncs: HashMap<UserId, Allowance>,
    /// Batches saved and not yet streamed (see [`Room::stream`]).
    batches: Vec<Batch>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("peers", &self.peers.len())
            .field("saved_heads", &self.saved_heads)
            .finish()
    }
}

impl Room {
    /// A room over a document as saved (everything in it counts as saved), with the default
    /// limits and no actor bound yet.
    pub fn new(doc: ListDoc) -> Self {
        Self::with_limits(doc, SyncLimits::default(), [])
    }

    /// A room over a document as saved, with `limits` and the list's stored actor bindings.
    pub fn with_limits(
        mut doc: ListDoc,
        limits: SyncLimits,
        actors: impl IntoIterator<Item = (ActorId, UserId)>,
    ) -> Self {
        let saved_heads = doc.heads();
        doc.track_changes();
        Self {
            doc: Doc::Awake(Box::new(doc)),
            peers: HashMap::new(),
            saved_heads,
            unsaved_touched: Touched::default(),
            unsaved_accepted: Vec::new(),
            unsaved_chunks: Vec::new(),
            actors: Actors::new(actors),
            limits,
            memo: Memo::default(),
            full_syncs: HashMap::new(),
            batches: Vec::new(),
        }
    }

    /// The merged document (loaded again if the room was asleep).
    pub fn doc(&mut self) -> &ListDoc {
        self.doc.get()
    }

    /// Lets go of the document while nothing happens in the room, keeping only its compacted
    /// snapshot: an Automerge document takes ~18 KiB even for an empty list, its snapshot a
    /// few hundred bytes. The next call that needs the document loads it again; peers' sync
    /// states stay valid (same changes, same hashes). Does nothing while changes are unsaved,
    /// or if the snapshot does not load back to the same heads; returns whether it sleeps.
    pub fn sleep(&mut self) -> bool {
        if self.has_unsaved() {
            return false;
        }
        if self.is_asleep() {
            return true;
        }
        let Some(snapshot) = self.snapshot() else { return false };
        self.doc = Doc::Asleep(snapshot);
        true
    }

    /// The document loaded from `snapshot`, if it loads and holds exactly the saved heads.
    fn load_saved(&self, snapshot: &[u8]) -> Option<ListDoc> {
        let mut doc = ListDoc::load(snapshot).ok()?;
        (doc.heads() == self.saved_heads).then_some(doc)
    }

    /// Whether the room is asleep (see [`Room::sleep`]).
    pub fn is_asleep(&self) -> bool {
        matches!(self.doc, Doc::Asleep(_))
    }

    /// Adds a peer of `user` with a role (or starts it over with a new sync state), speaking
    /// protocol version 1: sync messages only.
    pub fn join(&mut self, peer: PeerId, user: UserId, role: Role) {
        self.peers.insert(peer, Peer::new(user, role, false));
    }

    /// [`Room::join`] for a peer speaking protocol version 2: once in step, it takes each
    /// saved batch as one frame (see [`Room::stream`]) and may send raw changes
    /// ([`Room::receive_changes`]).
    pub fn join_streaming(&mut self, peer: PeerId, user: UserId, role: Role) {
        self.peers.insert(peer, Peer::new(user, role, true));
    }

    /// Changes a peer's role; a change between read-only and writable restarts its sync state.
    pub fn set_role(&mut self, peer: PeerId, role: Role) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.role.can_edit() != role.can_edit() {
                p.state = state_for(role);
                p.held.clear();
            }
            p.role = role;
        }
    }

    /// Removes a peer (and what was held for it).
    pub fn leave(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// The peers, with their roles.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, Role)> + '_ {
        self.peers.iter().map(|(id, p)| (*id, p.role))
    }

    /// The peers, with their users and roles.
    pub fn members(&self) -> impl Iterator<Item = (PeerId, UserId, Role)> + '_ {
        self.peers.iter().map(|(id, p)| (*id, p.user, p.role))
    }

    /// Whether no peer is subscribed.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Merges a peer's sync message, after the checks listed in the module docs. On
    /// [`Refusal::Broken`] the document may be damaged: drop the room and reload it. On
    /// [`Refusal::Abusive`], cut the peer off.
    pub fn receive(&mut self, peer: PeerId, data: &[u8]) -> Result<Received, Refusal> {
        let outcome = self.receive_inner(peer, data);
        self.count_strikes(peer, outcome)
    }

    /// Counts a peer's refused messages and dropped changes in a row, and cuts it off past
    /// [`MAX_STRIKES`].
    fn count_strikes(
        &mut self,
        peer: PeerId,
        outcome: Result<Received, Refusal>,
    ) -> Result<Received, Refusal> {
        if let Some(p) = self.peers.get_mut(&peer) {
            match &outcome {
                // Clean: nothing dropped, nothing left waiting.
                Ok(received) if received.dropped == 0 && p.held.is_empty() => p.strikes = 0,
                Ok(received) if received.dropped == 0 => {}
                Ok(_)
                | Err(
                    Refusal::Malformed(_)
                    | Refusal::ForeignActor
                    | Refusal::Invalid(_)
                    | Refusal::TooLarge(_),
                ) => p.strikes += 1,
                Err(_) => {}
            }
            if p.strikes >= MAX_STRIKES {
                p.strikes = 0;
                return Err(Refusal::Abusive(match outcome {
                    Ok(received) => format!("{} changes never completed", received.dropped),
                    Err(refusal) => refusal.to_string(),
                }));
            }
        }
        outcome
    }

    fn receive_inner(&mut self, peer: PeerId, data: &[u8]) -> Result<Received, Refusal> {
        let mut message = Message::decode(data).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let Some(p) = self.peers.get(&peer) else { return Err(Refusal::UnknownPeer) };
        let (user, role) = (p.user, p.role);
        intake::check_message(&message)?;
        if !message.changes.is_empty() && !role.can_edit() {
            // Still let the viewer's heads and needs through (the read-only state would ignore
            // changes anyway), so it keeps receiving; but say no, without reading the changes.
            message.changes = Vec::<Vec<u8>>::new().into();
            let doc = self.doc.get();
            let p = self.peers.get_mut(&peer).expect("looked up above");
            p.at = None;
            let state = &mut p.state;
            let _ = catch_unwind(AssertUnwindSafe(|| {
                doc.automerge_mut().sync().receive_sync_message(state, message)
            }));
            return Err(Refusal::ReadOnly);
        }
        let incoming =
            catch_unwind(|| intake::decode_changes(message.changes.iter(), &self.limits))
                .map_err(|_| Refusal::Malformed("the changes could not be read".into()))??;
        if message.heads.is_empty() && !self.saved_heads.is_empty() {
            // The peer has nothing: it is about to be sent the whole list.
            self.spend_full_sync(user)?;
        }
        // A sync message: the peer is catching up (or says it is in step; see below).
        self.peers.get_mut(&peer).expect("looked up above").at = None;
        let received = self.merge(peer, user, incoming, Some(message))?;
        // In step: the peer holds exactly our heads, so it can take the next saved batch as
        // one frame (version 2).
        let heads = self.doc.get().heads();
        let p = self.peers.get_mut(&peer).expect("looked up above");
        if p.streams && p.held.is_empty() && p.state.their_heads.as_ref() == Some(&heads) {
            p.at = Some(heads);
        }
        Ok(received)
    }

    /// Merges a version 2 peer's new changes (change chunks, one after another), with the
    /// same checks as [`Room::receive`]. A change whose dependencies are missing puts the peer
    /// back on sync messages (it is asked for them in the next one).
    pub fn receive_changes(&mut self, peer: PeerId, data: &[u8]) -> Result<Received, Refusal> {
        let outcome = self.receive_changes_inner(peer, data);
        self.count_strikes(peer, outcome)
    }

    fn receive_changes_inner(&mut self, peer: PeerId, data: &[u8]) -> Result<Received, Refusal> {
        let Some(p) = self.peers.get(&peer) else { return Err(Refusal::UnknownPeer) };
        let (user, role) = (p.user, p.role);
        if !role.can_edit() {
            return Err(Refusal::ReadOnly);
        }
        let incoming = catch_unwind(|| intake::decode_changes([data].into_iter(), &self.limits))
            .map_err(|_| Refusal::Malformed("the changes could not be read".into()))??;
        let received = self.merge(peer, user, incoming, None)?;
        let p = self.peers.get_mut(&peer).expect("looked up above");
        if !p.held.is_empty() {
            p.at = None;
        }
        Ok(received)
    }

    /// Checks and merges `incoming` from `peer` (see the module docs): through Automerge's
    /// sync protocol with the rest of `message` when the changes came in a sync message, or
    /// straight into the document when they came raw (version 2).
    fn merge(
        &mut self,
        peer: PeerId,
        user: UserId,
        incoming: Vec<Incoming>,
        message: Option<Message>,
    ) -> Result<Received, Refusal> {
        // Changes the document already has change nothing, whoever made them (a peer may send
        // back someone else's change it received, after messages crossed).
        let doc = self.doc.get();
        let mut incoming = incoming;
        incoming
            .retain(|i| !ReadDoc::get_missing_deps(doc.automerge(), &[i.change.hash()]).is_empty());
        let new_actors = self
            .actors
            .check(user, incoming.iter().map(|i| &i.change), self.limits.max_actors_per_user)
            .map_err(|refusal| match refusal {
                ActorRefusal::Foreign => Refusal::ForeignActor,
                ActorRefusal::TooMany => Refusal::TooLarge(format!(
                    "at most {} devices of one user may change a list",
                    self.limits.max_actors_per_user
                )),
            })?;
        let doc = self.doc.get();
        let p = self.peers.get_mut(&peer).expect("the caller looked it up");
        let automerge = doc.automerge();
        let sorted = held::sort(
            |hash| ReadDoc::get_missing_deps(automerge, &[*hash]).is_empty(),
            std::mem::take(&mut p.held),
            incoming,
        );
        let waiting_bytes: usize = sorted.waiting.iter().map(Incoming::bytes).sum();
        if sorted.waiting.len() > self.limits.max_held_changes
            || waiting_bytes > self.limits.max_held_bytes
        {
            return Err(Refusal::TooLarge(format!(
                "more than {} changes (or {} bytes) whose dependencies are missing",
                self.limits.max_held_changes, self.limits.max_held_bytes
            )));
        }
        let ops: usize = sorted.ready.iter().map(|i| i.ops).sum();
        let doc_ops = ReadDoc::stats(doc.automerge()).num_ops as usize;
        if doc_ops.saturating_add(ops) > self.limits.max_document_ops {
            return Err(Refusal::TooLarge(format!(
                "the list would hold more than {} operations",
                self.limits.max_document_ops
            )));
        }
        let changes: Vec<&Change> = sorted.ready.iter().map(|i| &i.change).collect();
        let checked = if changes.is_empty() || !doc.can_check_changes() {
            None
        } else {
            // Decoding a change's operations can panic on what Automerge's own checks let
            // through (an op naming an actor the change does not list, say).
            let checked = catch_unwind(AssertUnwindSafe(|| doc.check_changes(&changes)))
                .map_err(|_| Refusal::Malformed("the change's operations do not read".into()))?;
            Some(checked?)
        };
        let before = doc.heads();
        let state = &mut p.state;
        let applied = catch_unwind(AssertUnwindSafe(|| match message {
            Some(mut message) => {
                message.changes = sorted
                    .ready
                    .iter()
                    .map(|i| i.change.raw_bytes().to_vec())
                    .collect::<Vec<_>>()
                    .into();
                doc.automerge_mut().sync().receive_sync_message(state, message)
            }
            None if sorted.ready.is_empty() => Ok(()),
            None => {
                doc.automerge_mut().apply_changes(sorted.ready.iter().map(|i| i.change.clone()))
            }
        }));
        match applied {
            Err(_) => return Err(Refusal::Broken("automerge panicked".into())),
            // Automerge checks a batch (a sequence number used twice, say) before it changes
            // anything: if nothing moved, nothing was applied.
            Ok(Err(e)) if doc.heads() == before => return Err(Refusal::Malformed(e.to_string())),
            Ok(Err(e)) => return Err(Refusal::Broken(e.to_string())),
            Ok(Ok(())) => {}
        }
        p.held = sorted.waiting;
        let dropped = sorted.dropped;
        if changes.is_empty() {
            return Ok(Received { changed: false, dropped });
        }
        // Automerge has accepted changes that it cannot write back out (the fuzzer found
        // some): what is merged must save, and anything that panics from here on means the
        // document can no longer be trusted.
        let settled = catch_unwind(AssertUnwindSafe(|| {
            let chunk = self.doc.get().save_after(&before);
            let checked = match checked {
                Some(checked) => self.settle_checked(&before, checked)?,
                None => self.settle_unchecked(&before, &changes)?,
            };
            Ok::<_, Refusal>((chunk, checked))
        }));
        let (chunk, checked) = match settled {
            Ok(settled) => settled?,
            Err(_) => return Err(Refusal::Broken("the merged changes do not read back".into())),
        };
        self.unsaved_chunks.extend_from_slice(&chunk);
        self.actors.bind(user, new_actors);
        self.unsaved_touched.merge(checked.touched);
        self.unsaved_accepted.extend(checked.actions.into_iter().map(|(hash, actions)| Accepted {
            hash,
            user,
            actions,
        }));
        if let Some(p) = self.peers.get_mut(&peer) {
            p.owes_ack = true;
        }
        Ok(Received { changed: true, dropped })
    }

    /// After checked changes were applied: the change log moves on, and what they touched is
    /// checked once more against the shape (a second line of defence; it never fails when the
    /// check was right).
    fn settle_checked(
        &mut self,
        before: &[ChangeHash],
        checked: Checked,
    ) -> Result<Checked, Refusal> {
        let doc = self.doc.get();
        doc.note_applied(&checked.touched);
        if let Err(invalid) = doc.validate_touched(&checked.touched) {
            self.roll_back(before)?;
            return Err(Refusal::Invalid(invalid));
        }
        Ok(checked)
    }

    /// After changes were applied to a document that was not a list yet (a list first synced
    /// by its creator): the whole document is checked, and rolling back is cheap because all
    /// of it came with this message.
    fn settle_unchecked(
        &mut self,
        before: &[ChangeHash],
        changes: &[&Change],
    ) -> Result<Checked, Refusal> {
        let doc = self.doc.get();
        if let Err(invalid) = doc.validate_with_rules() {
            self.roll_back(before)?;
            return Err(Refusal::Invalid(invalid));
        }
        let touched = doc.take_touched();
        let actions = doc.summarize(changes);
        Ok(Checked { touched, actions })
    }

    /// Back to the document at `before` (the changes since are dropped).
    fn roll_back(&mut self, before: &[ChangeHash]) -> Result<(), Refusal> {
        let doc = self.doc.get();
        let mut restored = if before.is_empty() {
            ListDoc::empty()
        } else {
            let fork =
                doc.automerge_mut().fork_at(before).map_err(|e| Refusal::Broken(e.to_string()))?;
            ListDoc::from_automerge(fork)
        };
        restored.track_changes();
        self.doc = Doc::Awake(Box::new(restored));
        for p in self.peers.values_mut() {
            // Their states may name heads that no longer exist here.
            p.state = state_for(p.role);
            p.held.clear();
        }
        Ok(())
    }

    /// Takes one whole-list send from `user`'s allowance.
    fn spend_full_sync(&mut self, user: UserId) -> Result<(), Refusal> {
        let per_minute = f64::from(self.limits.full_syncs_per_minute.max(1));
        let now = Instant::now();
        let allowance =
            self.full_syncs.entry(user).or_insert(Allowance { tokens: per_minute, at: now });
        let refill = now.duration_since(allowance.at).as_secs_f64() * per_minute / 60.0;
        allowance.tokens = (allowance.tokens + refill).min(per_minute);
        allowance.at = now;
        if allowance.tokens < 1.0 {
            return Err(Refusal::RateLimited);
        }
        allowance.tokens -= 1.0;
        Ok(())
    }

    /// Makes a change of the server's own on behalf of `user` (a title set through REST,
    /// say), under a fresh actor id bound to that user, so the history names them.
    pub fn edit_as<T>(&mut self, user: UserId, f: impl FnOnce(&mut ListDoc) -> T) -> T {
        let actor = ActorId::random();
        let doc = self.doc.get();
        doc.automerge_mut().set_actor(actor.clone());
        let before = doc.heads();
        let value = f(doc);
        let touched = doc.take_touched();
        let changes = doc.automerge_mut().get_changes(&before);
        if !changes.is_empty() {
            let chunk = doc.save_after(&before);
            self.unsaved_chunks.extend_from_slice(&chunk);
            let refs: Vec<&Change> = changes.iter().collect();
            let actions = doc.summarize(&refs);
            self.actors.bind(user, vec![actor]);
            self.unsaved_accepted.extend(actions.into_iter().map(|(hash, actions)| Accepted {
                hash,
                user,
                actions,
            }));
        }
        self.unsaved_touched.merge(touched);
        value
    }

    /// Reads or rewrites the document without a change of its own (saving it whole, say).
    pub fn edit<T>(&mut self, f: impl FnOnce(&mut ListDoc) -> T) -> T {
        let doc = self.doc.get();
        let before = doc.heads();
        let value = f(doc);
        if doc.heads() != before {
            let chunk = doc.save_after(&before);
            self.unsaved_chunks.extend_from_slice(&chunk);
        }
        let touched = doc.take_touched();
        self.unsaved_touched.merge(touched);
        value
    }

    /// The whole document saved, if the save loads back to the same heads (Automerge can
    /// hold documents whose save does not load: the fuzzer found one); for compaction, which
    /// replaces what is stored with it.
    pub fn snapshot(&mut self) -> Option<Vec<u8>> {
        self.compacted().map(|(snapshot, _)| snapshot)
    }

    /// [`Room::snapshot`], with the document loaded from it: hand that to [`Room::adopt`]
    /// once the snapshot is stored, and the room holds the compacted form without loading
    /// it again.
    pub fn compacted(&mut self) -> Option<(Vec<u8>, ListDoc)> {
        let heads = self.heads();
        let doc = self.doc.get();
        let snapshot = catch_unwind(AssertUnwindSafe(|| doc.save())).ok()?;
        let mut loaded = ListDoc::load(&snapshot).ok()?;
        (loaded.heads() == heads).then_some((snapshot, loaded))
    }

    /// Takes `loaded` (from [`Room::compacted`]) as the room's document, as
    /// [`Room::shed_history`] does, if nothing changed since.
    pub fn adopt(&mut self, mut loaded: ListDoc) {
        if self.has_unsaved() || loaded.heads() != self.heads() {
            return;
        }
        loaded.track_changes();
        self.doc = Doc::Awake(Box::new(loaded));
    }

    /// Swaps the document for the same content loaded from `snapshot` (its own save, e.g.
    /// the compacted form just stored). Automerge keeps every change applied one by one in
    /// memory; a document loaded from a snapshot holds several times less. The changes and
    /// their hashes are the same, so every peer's sync state stays valid. Does nothing if
    /// changes are unsaved or the snapshot does not hold exactly the current heads.
    pub fn shed_history(&mut self, snapshot: &[u8]) {
        if self.has_unsaved() {
            return;
        }
        let Some(mut fresh) = self.load_saved(snapshot) else { return };
        fresh.track_changes();
        self.doc = Doc::Awake(Box::new(fresh));
    }

    /// The document's heads.
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        match &mut self.doc {
            Doc::Awake(doc) => doc.heads(),
            Doc::Asleep(_) => self.saved_heads.clone(),
        }
    }

    /// Whether the document has changes not yet saved.
    pub fn has_unsaved(&mut self) -> bool {
        match &mut self.doc {
            Doc::Awake(doc) => doc.heads() != self.saved_heads,
            Doc::Asleep(_) => false,
        }
    }

    /// The changes since the last save, as one incremental chunk, if any.
    pub fn unsaved(&mut self) -> Option<Vec<u8>> {
        if !self.has_unsaved() {
            return None;
        }
        Some(self.unsaved_chunks.clone())
    }

    /// What changed since the last save: the title, the items (by key) and whether the
    /// document's top level changed. Saving writes the rows of these.
    pub fn unsaved_touched(&self) -> &Touched {
        &self.unsaved_touched
    }

    /// Actor ids bound to users since the last save: saved with the changes.
    pub fn unsaved_actors(&self) -> &[(ActorId, UserId)] {
        self.actors.unsaved()
    }

    /// The changes accepted since the last save, with who made them and what they did.
    pub fn unsaved_accepted(&self) -> &[Accepted] {
        &self.unsaved_accepted
    }

    /// The user an actor id is bound to, if any.
    pub fn actor_owner(&self, actor: &ActorId) -> Option<UserId> {
        self.actors.owner(actor)
    }

    /// Records that everything in the document is saved.
    pub fn mark_saved(&mut self) {
        self.mark_saved_as(0);
    }

    /// [`Room::mark_saved`], naming the list's version after this save (carried by the
    /// frames [`Room::stream`] makes of it).
    pub fn mark_saved_as(&mut self, seq: u64) {
        let heads = self.heads();
        if heads != self.saved_heads {
            self.batches.push(Batch {
                seq,
                from: std::mem::replace(&mut self.saved_heads, heads.clone()),
                heads,
                chunk: std::mem::take(&mut self.unsaved_chunks),
            });
        }
        self.unsaved_touched = Touched::default();
        self.unsaved_accepted.clear();
        self.unsaved_chunks.clear();
        self.actors.mark_saved();
    }

    /// The batches saved since the last call, each with the version 2 peers that held the
    /// list as it was before it and so take it as one frame (they then hold its heads, and
    /// their sync states say so). Everyone else is brought up to date by
    /// [`Room::outgoing_many`].
    pub fn stream(&mut self) -> Vec<(Batch, Vec<PeerId>)> {
        let batches = std::mem::take(&mut self.batches);
        batches
            .into_iter()
            .map(|batch| {
                let mut to = Vec::new();
                for (&id, p) in &mut self.peers {
                    if p.streams && p.held.is_empty() && p.at.as_ref() == Some(&batch.from) {
                        p.at = Some(batch.heads.clone());
                        p.owes_ack = false;
                        crate::streaming::mark_in_step(&mut p.state, &batch.heads);
                        to.push(id);
                    }
                }
                (batch, to)
            })
            .collect()
    }

    /// The next sync message for `peer`, if it needs one. Nothing while changes are unsaved:
    /// a peer must never hear of a change that a crash could still lose.
    pub fn outgoing(&mut self, peer: PeerId) -> Option<Vec<u8>> {
        let mut fanout = self.outgoing_many(&[peer]);
        fanout.messages.pop()
    }

    /// The next sync message of each of `peers` that needs one (see [`Room::outgoing`]).
    /// Peers whose states are equal (subscribers in step before a change, typically) get one
    /// message made and encoded once, and the same new state (see [`fanout`]).
    pub fn outgoing_many(&mut self, peers: &[PeerId]) -> Fanout {
        if self.has_unsaved() {
            return Fanout::default();
        }
        fanout::outgoing(self.doc.get(), &mut self.peers, &mut self.memo, peers)
    }
}

#[cfg(test)]
mod tests;
