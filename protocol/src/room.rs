//! The server's side of syncing one list with many peers, with no I/O: the merged document,
//! each peer's Automerge sync state and role, and the rule that nothing reaches a peer before
//! it is saved.
//!
//! The caller (the server's room task) feeds peer messages in with [`Room::receive`], saves
//! what [`Room::unsaved`] returns in one transaction, calls [`Room::mark_saved`], and only
//! then asks [`Room::outgoing`] for the messages to send. `outgoing` refuses to produce
//! anything while changes are unsaved, so "every acknowledged change is durable" holds by
//! construction, not by the caller's care.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::ChangeHash;
use automerge::sync::{Message, State, SyncDoc as _};

use crate::list_doc::ValidationError;
use crate::{ListDoc, Role, Touched};

/// A peer (one socket's subscription to this list).
pub type PeerId = u64;

/// Why a peer's message was refused. Nothing of a refused message is applied.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The peer is not in the room.
    #[error("not subscribed to this list")]
    UnknownPeer,
    /// The bytes are not an Automerge sync message.
    #[error("not a sync message: {0}")]
    Malformed(String),
    /// A viewer's message carried changes.
    #[error("viewers cannot change this list")]
    ReadOnly,
    /// The changes would make the document malformed.
    #[error("the change would make the list malformed: {0}")]
    Invalid(#[from] ValidationError),
    /// Automerge failed (or panicked) on the bytes; the room's document must be reloaded.
    #[error("the change could not be applied: {0}")]
    Broken(String),
}

/// Sync messages for many peers, each distinct message made and encoded once.
#[derive(Debug, Default)]
pub struct Fanout {
    /// The distinct encoded messages.
    pub messages: Vec<Vec<u8>>,
    /// Which peer gets which message (an index into `messages`).
    pub to: Vec<(PeerId, usize)>,
}

/// What an accepted message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Whether the document changed (so there is something to save and to forward).
    pub changed: bool,
}

struct Peer {
    state: State,
    role: Role,
    /// The peer's changes were merged since it was last sent a message: it must hear the
    /// room's heads once they are saved, even when Automerge thinks it already knows them.
    owes_ack: bool,
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

/// One list's merged document and its peers.
pub struct Room {
    doc: Doc,
    peers: HashMap<PeerId, Peer>,
    saved_heads: Vec<ChangeHash>,
    /// What changed since the last save, so that saving writes only those rows.
    unsaved_touched: Touched,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("peers", &self.peers.len())
            .field("saved_heads", &self.saved_heads)
            .finish()
    }
}

fn state_for(role: Role) -> State {
    // A viewer's changes are never applied: the read-only state ignores them, and tells the
    // viewer's side not to send any.
    if role.can_edit() { State::new() } else { State::new_read_only() }
}

impl Room {
    /// A room over a document as saved (everything in it counts as saved).
    pub fn new(mut doc: ListDoc) -> Self {
        let saved_heads = doc.heads();
        doc.track_changes();
        Self {
            doc: Doc::Awake(Box::new(doc)),
            peers: HashMap::new(),
            saved_heads,
            unsaved_touched: Touched::default(),
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
        let Doc::Awake(doc) = &mut self.doc else { return true };
        let snapshot = doc.save();
        if self.load_saved(&snapshot).is_none() {
            return false;
        }
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

    /// Adds a peer with a role (or changes its role, restarting its sync state).
    pub fn join(&mut self, peer: PeerId, role: Role) {
        self.peers.insert(peer, Peer { state: state_for(role), role, owes_ack: false });
    }

    /// Changes a peer's role; a change between read-only and writable restarts its sync state.
    pub fn set_role(&mut self, peer: PeerId, role: Role) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.role.can_edit() != role.can_edit() {
                p.state = state_for(role);
            }
            p.role = role;
        }
    }

    /// Removes a peer.
    pub fn leave(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// The peers, with their roles.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, Role)> + '_ {
        self.peers.iter().map(|(id, p)| (*id, p.role))
    }

    /// Whether no peer is subscribed.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Merges a peer's sync message. A viewer's changes are refused ([`Refusal::ReadOnly`]);
    /// an editor's are applied only if the document still validates afterwards. On
    /// [`Refusal::Broken`] the document may be damaged: drop the room and reload it.
    pub fn receive(&mut self, peer: PeerId, data: &[u8]) -> Result<Received, Refusal> {
        let message = Message::decode(data).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let Some(p) = self.peers.get_mut(&peer) else { return Err(Refusal::UnknownPeer) };
        let carries_changes = !message.changes.is_empty();
        if carries_changes && !p.role.can_edit() {
            // Still let the viewer's heads and needs through (read-only state ignores the
            // changes), so it keeps receiving; but say no.
            let doc = self.doc.get();
            let _ = doc.automerge_mut().sync().receive_sync_message(&mut p.state, message);
            return Err(Refusal::ReadOnly);
        }
        let doc = self.doc.get();
        let before = doc.heads();
        let state = &mut p.state;
        let applied = catch_unwind(AssertUnwindSafe(|| {
            doc.automerge_mut().sync().receive_sync_message(state, message)
        }));
        match applied {
            Err(_) => return Err(Refusal::Broken("automerge panicked".into())),
            Ok(Err(e)) => {
                p.state = state_for(p.role);
                return Err(Refusal::Malformed(e.to_string()));
            }
            Ok(Ok(())) => {}
        }
        let after = doc.heads();
        if after == before {
            return Ok(Received { changed: false });
        }
        // Only what this message changed is checked: the document was valid before it.
        let touched = doc.take_touched();
        if let Err(invalid) = doc.validate_touched(&touched) {
            // Back to the document as it was; the peer starts its sync over.
            let restored =
                doc.automerge_mut().fork_at(&before).map_err(|e| Refusal::Broken(e.to_string()))?;
            let mut restored = ListDoc::from_automerge(restored);
            restored.track_changes();
            self.doc = Doc::Awake(Box::new(restored));
            p.state = state_for(p.role);
            return Err(Refusal::Invalid(invalid));
        }
        self.unsaved_touched.merge(touched);
        p.owes_ack = true;
        Ok(Received { changed: true })
    }

    /// Makes a change of the server's own (a title set through REST, say).
    pub fn edit<T>(&mut self, f: impl FnOnce(&mut ListDoc) -> T) -> T {
        let doc = self.doc.get();
        let value = f(doc);
        let touched = doc.take_touched();
        self.unsaved_touched.merge(touched);
        value
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
        let heads = self.saved_heads.clone();
        Some(self.doc.get().save_after(&heads))
    }

    /// What changed since the last save: the title, the items (by key) and whether the
    /// document's top level changed. Saving writes the rows of these.
    pub fn unsaved_touched(&self) -> &Touched {
        &self.unsaved_touched
    }

    /// Records that everything in the document is saved.
    pub fn mark_saved(&mut self) {
        self.saved_heads = self.heads();
        self.unsaved_touched = Touched::default();
    }

    /// The next sync message for `peer`, if it needs one. Nothing while changes are unsaved:
    /// a peer must never hear of a change that a crash could still lose.
    pub fn outgoing(&mut self, peer: PeerId) -> Option<Vec<u8>> {
        let mut fanout = self.outgoing_many(&[peer]);
        fanout.messages.pop()
    }

    /// The next sync message of each of `peers` that needs one (see [`Room::outgoing`]).
    /// Automerge makes a peer's message from the document and that peer's sync state alone,
    /// so peers whose states are equal (subscribers in step before a change, typically) get
    /// one message made and encoded once, and the same new state.
    pub fn outgoing_many(&mut self, peers: &[PeerId]) -> Fanout {
        let mut fanout = Fanout::default();
        if self.has_unsaved() {
            return fanout;
        }
        let doc = self.doc.get();
        // A state before the message, with its state after and its message.
        let mut made: HashMap<State, (State, Option<usize>)> = HashMap::new();
        for &peer in peers {
            let Some(p) = self.peers.get_mut(&peer) else { continue };
            if std::mem::take(&mut p.owes_ack) {
                // Automerge stays quiet towards a peer whose last message showed the same
                // heads as ours (say it merged someone else's change while its own was on the
                // way); but that peer has not heard that its change is saved. Forgetting what
                // we last sent makes Automerge send our heads.
                p.state.last_sent_heads.clear();
            }
            let message = match made.get(&p.state) {
                Some((after, message)) => {
                    p.state = after.clone();
                    *message
                }
                None => {
                    let before = p.state.clone();
                    let message =
                        doc.automerge_mut().sync().generate_sync_message(&mut p.state).map(|m| {
                            fanout.messages.push(m.encode());
                            fanout.messages.len() - 1
                        });
                    made.insert(before, (p.state.clone(), message));
                    message
                }
            };
            if let Some(index) = message {
                fanout.to.push((peer, index));
            }
        }
        fanout
    }
}

#[cfg(test)]
mod tests {
    use automerge::sync::SyncDoc as _;

    use super::*;
    use crate::ItemId;

    struct Client {
        doc: ListDoc,
        state: State,
    }

    impl Client {
        fn new(doc: ListDoc) -> Self {
            Self { doc, state: State::new() }
        }
        fn outgoing(&mut self) -> Option<Vec<u8>> {
            self.doc
                .automerge_mut()
                .sync()
                .generate_sync_message(&mut self.state)
                .map(Message::encode)
        }
        fn receive(&mut self, data: &[u8]) {
            let msg = Message::decode(data).unwrap();
            self.doc.automerge_mut().sync().receive_sync_message(&mut self.state, msg).unwrap();
        }
    }

    /// Exchanges messages between the room and one client until both are quiet, saving
    /// whenever the room changed.
    fn settle(room: &mut Room, peer: PeerId, client: &mut Client) -> Vec<Refusal> {
        let mut refusals = Vec::new();
        for _ in 0..20 {
            let mut quiet = true;
            if let Some(m) = client.outgoing() {
                quiet = false;
                if let Err(r) = room.receive(peer, &m) {
                    refusals.push(r);
                }
                if room.unsaved().is_some() {
                    room.mark_saved();
                }
            }
            if let Some(m) = room.outgoing(peer) {
                quiet = false;
                client.receive(&m);
            }
            if quiet {
                break;
            }
        }
        refusals
    }

    #[test]
    fn an_editor_change_is_merged_saved_then_acknowledged() {
        let mut room = Room::new(ListDoc::new("Shared").unwrap());
        room.join(1, Role::Editor);
        let mut saved = room.doc().clone();
        let mut client = Client::new(ListDoc::empty());
        settle(&mut room, 1, &mut client);
        assert_eq!(client.doc.title().unwrap(), "Shared");

        client.doc.add_item(ItemId(5), "milk").unwrap();
        let m = client.outgoing().unwrap();
        assert!(room.receive(1, &m).unwrap().changed);
        assert!(room.outgoing(1).is_none(), "nothing is said before the change is saved");
        let chunk = room.unsaved().unwrap();
        saved.load_incremental(&chunk).unwrap();
        room.mark_saved();
        assert!(room.outgoing(1).is_some());
        assert_eq!(saved.items().unwrap()[0].content, "milk", "the saved chunk holds the change");
    }

    fn save(room: &mut Room) {
        if room.unsaved().is_some() {
            room.mark_saved();
        }
    }

    /// The room heard a writer's change and, in the same batch, a message saying the writer
    /// now also holds someone else's change (so their heads are equal). Automerge alone would
    /// then say nothing, and the writer would never learn that its change was saved.
    #[test]
    fn a_saved_change_is_always_acknowledged_to_its_writer() {
        // Whether a writer's first message after an edit carries the change depends on what
        // the room said last (Automerge may wait for a round trip); set up until it does.
        for _ in 0..100 {
            let mut room = Room::new(ListDoc::new("Busy").unwrap());
            room.join(1, Role::Editor);
            room.join(2, Role::Editor);
            let mut w1 = Client::new(ListDoc::empty());
            let mut w2 = Client::new(ListDoc::empty());
            settle(&mut room, 1, &mut w1);
            settle(&mut room, 2, &mut w2);

            w1.doc.add_item(ItemId(1), "from w1").unwrap();
            let m1 = w1.outgoing().unwrap();
            if Message::decode(&m1).unwrap().changes.is_empty() {
                continue;
            }
            // w2's change reaches the room while w1's is on its way, and w1 merges it.
            w2.doc.add_item(ItemId(2), "from w2").unwrap();
            settle(&mut room, 2, &mut w2);
            let to_w1 = room.outgoing(1).unwrap();
            w1.receive(&to_w1);
            let m1_heads = w1.outgoing().unwrap();

            // The room hears both of w1's messages in one batch, then saves.
            room.receive(1, &m1).unwrap();
            room.receive(1, &m1_heads).unwrap();
            save(&mut room);
            let ack = room.outgoing(1).expect("the writer hears that its change was saved");
            w1.receive(&ack);
            let ours = w1.doc.heads();
            assert_eq!(w1.state.their_heads.as_ref(), Some(&ours));
            assert!(w1.outgoing().is_none(), "and the exchange ends there");
            assert!(room.outgoing(1).is_none());
            return;
        }
        panic!("the writer's change never left in its first message");
    }

    /// A room with one editor (peer 1) in step with it, both holding item 1, "before".
    fn room_holding_one_item() -> (Room, Client) {
        let mut room = Room::new(ListDoc::new("Long lived").unwrap());
        room.join(1, Role::Editor);
        let mut client = Client::new(ListDoc::empty());
        settle(&mut room, 1, &mut client);
        client.doc.add_item(ItemId(1), "before").unwrap();
        settle(&mut room, 1, &mut client);
        (room, client)
    }

    #[test]
    fn shedding_history_keeps_peers_in_step() {
        let (mut room, mut client) = room_holding_one_item();

        let snapshot = room.edit(|d| d.save());
        let heads = room.heads();
        room.shed_history(&snapshot);
        assert_eq!(room.heads(), heads);
        assert!(room.outgoing(1).is_none(), "the peer's sync state is still valid");

        client.doc.add_item(ItemId(2), "after").unwrap();
        settle(&mut room, 1, &mut client);
        assert_eq!(room.doc().item_count().unwrap(), 2);
        let mut late = Client::new(ListDoc::empty());
        room.join(2, Role::Viewer);
        settle(&mut room, 2, &mut late);
        assert_eq!(late.doc.item_count().unwrap(), 2, "a new peer gets the whole history");
    }

    #[test]
    fn a_sleeping_room_wakes_for_what_needs_its_document() {
        let (mut room, mut client) = room_holding_one_item();

        let heads = room.heads();
        assert!(room.sleep());
        assert!(room.is_asleep());
        assert_eq!(room.heads(), heads, "its heads are known asleep");
        assert!(!room.has_unsaved() && room.unsaved().is_none());
        assert!(room.is_asleep(), "asking about heads or saves does not wake it");

        client.doc.add_item(ItemId(2), "after").unwrap();
        let m = client.outgoing().unwrap();
        assert!(room.receive(1, &m).unwrap().changed, "a change wakes it and is merged");
        assert!(!room.is_asleep());
        assert!(!room.sleep(), "no sleep while a change is unsaved");
        save(&mut room);
        settle(&mut room, 1, &mut client);
        assert_eq!(client.state.their_heads.as_ref(), Some(&client.doc.heads()), "acknowledged");

        assert!(room.sleep());
        let mut late = Client::new(ListDoc::empty());
        room.join(2, Role::Viewer);
        settle(&mut room, 2, &mut late);
        assert_eq!(late.doc.item_count().unwrap(), 2, "a new peer gets the whole list");
        assert!(room.outgoing(1).is_none(), "the first peer's sync state stayed valid");
    }

    #[test]
    fn peers_in_step_share_one_message_per_change() {
        let mut room = Room::new(ListDoc::new("Broadcast").unwrap());
        let mut clients: Vec<Client> = (0..6).map(|_| Client::new(ListDoc::empty())).collect();
        for (peer, client) in clients.iter_mut().enumerate() {
            room.join(peer as PeerId, Role::Editor);
            settle(&mut room, peer as PeerId, client);
        }
        let peers: Vec<PeerId> = (0..6).collect();
        assert!(room.outgoing_many(&peers).to.is_empty(), "everyone is in step");

        clients[0].doc.add_item(ItemId(1), "for everyone").unwrap();
        let m = clients[0].outgoing().unwrap();
        room.receive(0, &m).unwrap();
        assert!(room.outgoing_many(&peers).to.is_empty(), "nothing before the save");
        save(&mut room);
        let fanout = room.outgoing_many(&peers);
        assert_eq!(fanout.to.len(), 6, "the writer's acknowledgement and five deliveries");
        let subscribers: Vec<usize> =
            fanout.to.iter().filter(|(p, _)| *p != 0).map(|(_, m)| *m).collect();
        assert!(subscribers.iter().all(|&m| m == subscribers[0]), "one message for five");
        assert_eq!(fanout.messages.len(), 2);

        for (peer, message) in &fanout.to {
            clients[*peer as usize].receive(&fanout.messages[*message]);
        }
        for (peer, client) in clients.iter_mut().enumerate() {
            settle(&mut room, peer as PeerId, client);
            assert_eq!(client.doc.items().unwrap()[0].content, "for everyone");
            assert_eq!(client.state.their_heads.as_ref(), Some(&client.doc.heads()));
        }
        assert!(room.outgoing_many(&peers).to.is_empty(), "and quiet again");
    }

    #[test]
    fn a_viewer_change_is_refused_and_never_applied() {
        let mut base = ListDoc::new("Read only").unwrap();
        let mut room = Room::new(base.clone());
        room.join(1, Role::Viewer);
        let mut viewer = Client::new(ListDoc::from_automerge(base.automerge_mut().fork()));
        viewer.doc.add_item(ItemId(9), "sneaky").unwrap();
        // A modified client ignores the room's read-only flag: sync with an ordinary peer
        // until the viewer's message carries its change, and send that to the room.
        let mut other = Client::new(ListDoc::from_automerge(base.automerge_mut().fork()));
        let mut forged = Vec::new();
        for _ in 0..5 {
            let m = viewer.outgoing().unwrap();
            if !Message::decode(&m).unwrap().changes.is_empty() {
                forged = m;
                break;
            }
            other.receive(&m);
            let reply = other.outgoing().unwrap();
            viewer.receive(&reply);
        }
        assert!(!Message::decode(&forged).unwrap().changes.is_empty());
        assert!(matches!(room.receive(1, &forged), Err(Refusal::ReadOnly)));
        assert!(!room.has_unsaved());
        assert_eq!(room.doc().item_count().unwrap(), 0);
    }

    #[test]
    fn a_change_that_breaks_the_shape_is_refused_and_rolled_back() {
        use automerge::ROOT;
        use automerge::transaction::Transactable as _;
        let mut room = Room::new(ListDoc::new("Shape").unwrap());
        room.join(1, Role::Owner);
        let mut client = Client::new(ListDoc::empty());
        settle(&mut room, 1, &mut client);
        client.doc.automerge_mut().put(ROOT, "title", 42).unwrap();
        client.doc.automerge_mut().commit();
        let refusals = settle(&mut room, 1, &mut client);
        assert!(refusals.iter().any(|r| matches!(r, Refusal::Invalid(_))), "{refusals:?}");
        assert_eq!(room.doc().title().unwrap(), "Shape");
        assert!(!room.has_unsaved());
    }

    #[test]
    fn garbage_bytes_are_refused() {
        let mut room = Room::new(ListDoc::new("x").unwrap());
        room.join(1, Role::Editor);
        for junk in [&b""[..], b"\x42\x00\x01", &[0xFF; 100]] {
            assert!(room.receive(1, junk).is_err());
        }
        assert!(matches!(
            room.receive(2, &[]),
            Err(Refusal::Malformed(_)) | Err(Refusal::UnknownPeer)
        ));
    }
}
