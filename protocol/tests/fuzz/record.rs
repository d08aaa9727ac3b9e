//! Records the seed corpus from real exchanges: clients editing [`ListDoc`]s and syncing with
//! Automerge's sync protocol through the server's [`Room`], exactly as the client library and
//! the server's room task do (minus the sockets). Every message the room receives and sends,
//! every chunk it saves, and its final document go into a [`Session`].
//!
//! Actor ids and timestamps are random, so recording again gives other bytes: the recorded
//! files are the corpus, and `TANDEM_FUZZ_RECORD=1` writes them afresh (see the README).

use serde_bytes::ByteBuf;
use tandem_protocol::automerge::sync::{ChunkList, Message, State, SyncDoc as _};
use tandem_protocol::automerge::transaction::Transactable as _;
use tandem_protocol::automerge::{ROOT, ReadDoc as _};
use tandem_protocol::room::{PeerId, Room};
use tandem_protocol::{ItemId, ListDoc, Role};

use crate::corpus::{Session, Step};
use crate::targets::verdict;

/// A client's replica of the list and its sync state with the server.
struct Client {
    peer: PeerId,
    doc: ListDoc,
    state: State,
}

impl Client {
    fn new(peer: PeerId, doc: ListDoc) -> Self {
        Self { peer, doc, state: State::new() }
    }

    fn outgoing(&mut self) -> Option<Vec<u8>> {
        self.doc.automerge_mut().sync().generate_sync_message(&mut self.state).map(Message::encode)
    }

    fn receive(&mut self, data: &[u8]) {
        let message = Message::decode(data).unwrap();
        self.doc.automerge_mut().sync().receive_sync_message(&mut self.state, message).unwrap();
    }
}

/// The room and everything it saw.
struct Recorder {
    room: Room,
    session: Session,
}

impl Recorder {
    fn new(name: &str, mut base: Option<ListDoc>, peers: &[(PeerId, Role)]) -> Self {
        let saved = base.as_mut().map(ListDoc::save).unwrap_or_default();
        let mut room = Room::new(base.unwrap_or_else(ListDoc::empty));
        for &(peer, role) in peers {
            room.join(peer, tandem_protocol::UserId(peer + 1), role);
        }
        let session = Session {
            name: name.to_owned(),
            base: ByteBuf::from(saved),
            peers: peers.to_vec(),
            steps: Vec::new(),
            replies: Vec::new(),
            chunks: Vec::new(),
            snapshot: ByteBuf::new(),
        };
        Self { room, session }
    }

    /// The room receives `data` from `peer`, and saves what changed.
    fn deliver(&mut self, peer: PeerId, data: Vec<u8>) -> String {
        let verdict = verdict(&self.room.receive(peer, &data));
        self.session.steps.push(Step { peer, data: ByteBuf::from(data), verdict: verdict.clone() });
        if let Some(chunk) = self.room.unsaved() {
            self.session.chunks.push(ByteBuf::from(chunk));
            self.room.mark_saved();
        }
        verdict
    }

    /// Exchanges messages between the room and `clients` until everyone is quiet.
    fn settle(&mut self, clients: &mut [&mut Client]) {
        for _ in 0..30 {
            let mut quiet = true;
            for client in clients.iter_mut() {
                if let Some(m) = client.outgoing() {
                    quiet = false;
                    self.deliver(client.peer, m);
                }
            }
            let peers: Vec<PeerId> = clients.iter().map(|c| c.peer).collect();
            let fanout = self.room.outgoing_many(&peers);
            for (peer, index) in fanout.to {
                quiet = false;
                let message = &fanout.messages[index];
                self.session.replies.push(ByteBuf::from(message.clone()));
                clients.iter_mut().find(|c| c.peer == peer).unwrap().receive(message);
            }
            if quiet {
                return;
            }
        }
        panic!("{}: the exchange did not settle", self.session.name);
    }

    fn finish(mut self) -> Session {
        self.session.snapshot = ByteBuf::from(self.room.edit(|d| d.save()));
        self.session
    }
}

/// A change a viewer made locally, sent anyway by a modified client: its last message with
/// the change slipped in.
fn forged_viewer_message(viewer: &mut Client) -> Vec<u8> {
    let before = viewer.doc.heads();
    viewer.doc.add_item(ItemId(666), "sneaky").unwrap();
    let changes: Vec<Vec<u8>> = viewer
        .doc
        .automerge_mut()
        .get_changes(&before)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let mut message = Message::decode(&viewer.outgoing().unwrap_or_else(|| {
        viewer.state = State::new();
        viewer.outgoing().unwrap()
    }))
    .unwrap();
    message.changes = ChunkList::from(changes);
    message.encode()
}

/// A list id reserved offline: the owner makes the list and edits it before the first sync;
/// a second device of an editor joins, both edit concurrently; a viewer syncs and then tries
/// to slip a change in.
fn reserved_list() -> Session {
    let (owner, editor, viewer) = (1, 2, 3);
    let mut rec = Recorder::new(
        "reserved-list",
        None,
        &[(owner, Role::Owner), (editor, Role::Editor), (viewer, Role::Viewer)],
    );
    let mut a = Client::new(owner, ListDoc::new("Groceries").unwrap());
    a.doc.add_item(ItemId(11), "milk").unwrap();
    a.doc.add_item(ItemId(12), "eggs").unwrap();
    rec.settle(&mut [&mut a]);

    a.doc.add_item(ItemId(13), "bread").unwrap();
    rec.settle(&mut [&mut a]);
    a.doc.edit_content(ItemId(11), "oat milk").unwrap();
    a.doc.set_done(ItemId(12), true).unwrap();
    rec.settle(&mut [&mut a]);
    a.doc.move_to_first(ItemId(13)).unwrap();
    rec.settle(&mut [&mut a]);

    let mut b = Client::new(editor, ListDoc::empty());
    rec.settle(&mut [&mut a, &mut b]);
    a.doc.edit_content(ItemId(11), "oat milk, 2 litres").unwrap();
    b.doc.edit_content(ItemId(11), "whole oat milk").unwrap();
    b.doc.move_after(ItemId(12), ItemId(11)).unwrap();
    a.doc.set_done(ItemId(12), false).unwrap();
    rec.settle(&mut [&mut a, &mut b]);
    b.doc.remove_item(ItemId(13)).unwrap();
    a.doc.set_title("Groceries for Saturday").unwrap();
    rec.settle(&mut [&mut a, &mut b]);

    let mut v = Client::new(viewer, ListDoc::empty());
    rec.settle(&mut [&mut a, &mut b, &mut v]);
    let forged = forged_viewer_message(&mut v);
    assert_eq!(rec.deliver(viewer, forged), "read_only");
    a.doc.add_item(ItemId(14), "coffee").unwrap();
    rec.settle(&mut [&mut a, &mut b]);
    rec.finish()
}

/// A list created through REST (the server made its first change): an editor syncs, works
/// offline (several changes in one message), pastes a long note and edits it, and sends a
/// change that breaks the list's shape. (Sync sends changes uncompressed; compressed chunks
/// come from the mutations.)
fn created_list() -> Session {
    let editor = 7;
    let mut rec = Recorder::new(
        "created-list",
        Some(ListDoc::new("Team").unwrap()),
        &[(editor, Role::Editor)],
    );
    let mut e = Client::new(editor, ListDoc::empty());
    rec.settle(&mut [&mut e]);
    for i in 1..=6 {
        e.doc.add_item(ItemId(100 + i), &format!("task {i}")).unwrap();
    }
    e.doc.set_done(ItemId(102), true).unwrap();
    e.doc.move_after(ItemId(101), ItemId(104)).unwrap();
    e.doc.remove_item(ItemId(105)).unwrap();
    rec.settle(&mut [&mut e]);

    let note = "Agenda: ".to_owned() + &"review the quarterly numbers, then plan. ".repeat(10);
    e.doc.add_item(ItemId(200), &note).unwrap();
    rec.settle(&mut [&mut e]);
    e.doc.edit_content(ItemId(200), &note.replace("plan", "decide")).unwrap();
    rec.settle(&mut [&mut e]);

    e.doc.automerge_mut().put(ROOT, "title", 42).unwrap();
    e.doc.automerge_mut().commit();
    let message = e.outgoing().unwrap();
    assert!(rec.deliver(editor, message).starts_with("invalid"));
    rec.finish()
}

/// A list of many items, so that the saved document compresses its columns, then a new
/// device that gets the whole list at once.
fn long_list() -> Session {
    let (owner, newcomer) = (21, 22);
    let mut origin = ListDoc::new("Reading list").unwrap();
    for i in 1..=120 {
        origin.add_item(ItemId(1_000 + i), &format!("book number {i}, chapter {}", i % 7)).unwrap();
    }
    for i in (1..=120).step_by(5) {
        origin.set_done(ItemId(1_000 + i), true).unwrap();
    }
    let mut rec = Recorder::new(
        "long-list",
        Some(origin.clone()),
        &[(owner, Role::Owner), (newcomer, Role::Editor)],
    );
    let mut o = Client::new(owner, origin);
    rec.settle(&mut [&mut o]);
    o.doc.move_to_first(ItemId(1_120)).unwrap();
    rec.settle(&mut [&mut o]);
    let mut n = Client::new(newcomer, ListDoc::empty());
    rec.settle(&mut [&mut o, &mut n]);
    assert_eq!(n.doc.item_count().unwrap(), 120);
    assert!(n.doc.automerge().get(ROOT, "title").unwrap().is_some());
    rec.finish()
}

/// Every scenario, recorded now.
pub fn record_all() -> Vec<Session> {
    vec![reserved_list(), created_list(), long_list()]
}
