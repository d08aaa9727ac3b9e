//! What one edit costs in CPU on its way from a writer to many subscribers, step by step,
//! with the server's [`Room`] and the clients' documents in one process (no socket, no
//! store): the floor under the load generator's `fanout` and `throughput` figures.
//!
//! Per edit: the writer makes it and its sync message; the room merges it (with the checks the
//! server runs) and takes the chunk to save; the room makes each peer's message; each
//! subscriber applies its message and answers; the room takes each answer.
//!
//! Run with `cargo bench -p tandem-protocol --bench fanout`; prints one line per case.

use std::hint::black_box;
use std::time::{Duration, Instant};

use automerge::sync::{Message, State, SyncDoc as _};
use tandem_protocol::room::{PeerId, Room};
use tandem_protocol::{ItemId, ListDoc, Role, UserId};

/// Edits timed per case.
const EDITS: u64 = 200;

struct Peer {
    id: PeerId,
    doc: ListDoc,
    state: State,
}

impl Peer {
    fn message(&mut self) -> Option<Vec<u8>> {
        self.doc.automerge_mut().sync().generate_sync_message(&mut self.state).map(Message::encode)
    }

    fn apply(&mut self, data: &[u8]) {
        let message = Message::decode(data).expect("a sync message");
        self.doc.automerge_mut().sync().receive_sync_message(&mut self.state, message).unwrap();
    }
}

/// Exchanges messages between the room and a peer until both are quiet.
fn settle(room: &mut Room, peer: &mut Peer) {
    loop {
        let mut quiet = true;
        if let Some(m) = peer.message() {
            quiet = false;
            room.receive(peer.id, &m).unwrap();
            if room.unsaved().is_some() {
                room.mark_saved();
            }
        }
        if let Some(m) = room.outgoing(peer.id) {
            quiet = false;
            peer.apply(&m);
        }
        if quiet {
            return;
        }
    }
}

#[derive(Default)]
struct Spent {
    edit: Duration,
    merge: Duration,
    outgoing: Duration,
    client_apply: Duration,
    answers: Duration,
    messages: u64,
}

fn case(items: u64, subscribers: u64) {
    let mut doc = ListDoc::new("bench").unwrap();
    for i in 1..=items {
        doc.add_item(ItemId(i), &format!("item number {i}, something to do")).unwrap();
    }
    let saved = doc.save();
    let mut room = Room::new(ListDoc::load(&saved).unwrap());
    let mut peers: Vec<Peer> = (0..=subscribers)
        .map(|id| Peer { id, doc: ListDoc::load(&saved).unwrap(), state: State::new() })
        .collect();
    for peer in &mut peers {
        room.join(peer.id, UserId(peer.id + 1), Role::Editor);
        settle(&mut room, peer);
    }

    let mut spent = Spent::default();
    for n in 1..=EDITS {
        let began = Instant::now();
        let writer = &mut peers[0];
        writer.doc.add_item(ItemId(items + n), "a new thing to do").unwrap();
        let sent = writer.message().expect("the edit");
        let made = Instant::now();
        room.receive(writer.id, &sent).unwrap();
        black_box(room.unsaved());
        room.mark_saved();
        let merged = Instant::now();
        // As the server flushes: peers in step share one message, made once.
        let ids: Vec<PeerId> = peers.iter().map(|p| p.id).collect();
        let fanout = room.outgoing_many(&ids);
        let outgoing: Vec<(usize, &[u8])> = fanout
            .to
            .iter()
            .map(|(id, m)| (*id as usize, fanout.messages[*m].as_slice()))
            .collect();
        let generated = Instant::now();
        let mut answers = Vec::new();
        for (i, message) in &outgoing {
            let peer = &mut peers[*i];
            peer.apply(message);
            if let Some(answer) = peer.message() {
                answers.push((peer.id, answer));
            }
        }
        let applied = Instant::now();
        for (id, answer) in &answers {
            room.receive(*id, answer).unwrap();
            black_box(room.outgoing(*id));
        }
        let answered = Instant::now();
        spent.edit += made - began;
        spent.merge += merged - made;
        spent.outgoing += generated - merged;
        spent.client_apply += applied - generated;
        spent.answers += answered - applied;
        spent.messages += outgoing.len() as u64;
    }
    for peer in &mut peers[1..] {
        assert!(peer.doc.contains_item(ItemId(items + EDITS)).unwrap(), "every edit arrived");
    }

    let per_edit = |d: Duration| d.as_secs_f64() * 1e6 / EDITS as f64;
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / spent.messages.max(1) as f64;
    let server = per_edit(spent.merge + spent.outgoing + spent.answers);
    println!(
        "{items} items, 1 writer + {subscribers} subscribers: per edit, writer {:.0} µs; \
         room merge+chunk {:.0} µs; room message per peer {:.1} µs; client apply+answer per \
         peer {:.1} µs; room takes an answer {:.1} µs; server total {:.0} µs ({:.1} µs per peer), \
         clients total {:.0} µs",
        per_edit(spent.edit),
        per_edit(spent.merge),
        per_message(spent.outgoing),
        per_message(spent.client_apply),
        per_message(spent.answers),
        server,
        server / (subscribers + 1) as f64,
        per_edit(spent.client_apply),
    );
}

fn main() {
    // `cargo test --benches` runs benches with no arguments in test mode: keep it short.
    let quick = std::env::args().all(|a| a != "--bench");
    if quick {
        case(10, 2);
        return;
    }
    for (items, subscribers) in [(100, 100), (1_000, 100), (100, 2), (1_000, 2)] {
        case(items, subscribers);
    }
}
