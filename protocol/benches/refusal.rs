//! What refusing a bad change costs against the size of the list's history (issue 11): a room
//! over a list made of many tiny changes (the attack's shape: 226,884 of them made refusing
//! one 169-byte change take ~4 s when the room applied it and then rebuilt the document), an
//! editor's valid change accepted, and a change that breaks a rule refused. The refusal is
//! decided from the change's own operations before Automerge applies anything, so its cost
//! should not grow with the history.
//!
//! Run with `cargo bench -p tandem-protocol --bench refusal`; prints one line per history size.

use std::time::{Duration, Instant};

use automerge::sync::{Message, State, SyncDoc as _};
use automerge::transaction::Transactable as _;
use automerge::{ROOT, ReadDoc as _};
use tandem_protocol::room::Room;
use tandem_protocol::{ItemId, ListDoc, Role, UserId};

/// Changes timed per case (the median is printed).
const ROUNDS: usize = 21;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn case(changes: u64) {
    // A list of 100 items, each toggled again and again: `changes` tiny changes in all.
    let mut doc = ListDoc::new("history").unwrap();
    for i in 1..=100 {
        doc.add_item(ItemId(i), "x").unwrap();
    }
    for n in 0..changes.saturating_sub(101) {
        doc.set_done(ItemId(1 + n % 100), n / 100 % 2 == 0).unwrap();
    }
    let saved = doc.save();
    let mut room = Room::new(ListDoc::load(&saved).unwrap());
    room.join(1, UserId(1), Role::Editor);
    let mut client = ListDoc::load(&saved).unwrap();
    let mut state = State::new();
    // In step first.
    for _ in 0..10 {
        if let Some(m) = client.automerge_mut().sync().generate_sync_message(&mut state) {
            room.receive(1, &m.encode()).unwrap();
        }
        match room.outgoing(1) {
            Some(m) => client
                .automerge_mut()
                .sync()
                .receive_sync_message(&mut state, Message::decode(&m).unwrap())
                .unwrap(),
            None => break,
        }
    }

    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for round in 0..ROUNDS {
        // A valid change, accepted and saved.
        client.set_title(&format!("history {round}")).unwrap();
        let m = client.automerge_mut().sync().generate_sync_message(&mut state).unwrap().encode();
        let began = Instant::now();
        room.receive(1, &m).unwrap();
        room.unsaved();
        room.mark_saved();
        accepted.push(began.elapsed());
        let ack = room.outgoing(1).unwrap();
        client
            .automerge_mut()
            .sync()
            .receive_sync_message(&mut state, Message::decode(&ack).unwrap())
            .unwrap();

        // A change that breaks a rule (a control character in the title), from a copy.
        let mut bad = client.clone();
        let mut bad_state = state.clone();
        let title = bad.automerge().get(ROOT, "title").unwrap().unwrap().1;
        bad.automerge_mut().splice_text(&title, 0, 0, "\u{7}").unwrap();
        bad.automerge_mut().commit();
        let m = bad.automerge_mut().sync().generate_sync_message(&mut bad_state).unwrap().encode();
        let began = Instant::now();
        assert!(room.receive(1, &m).is_err());
        refused.push(began.elapsed());
        room.join(1, UserId(1), Role::Editor);
        state = State::new();
        for _ in 0..10 {
            if let Some(m) = client.automerge_mut().sync().generate_sync_message(&mut state) {
                let _ = room.receive(1, &m.encode());
            }
            match room.outgoing(1) {
                Some(m) => client
                    .automerge_mut()
                    .sync()
                    .receive_sync_message(&mut state, Message::decode(&m).unwrap())
                    .unwrap(),
                None => break,
            }
        }
    }
    println!(
        "{changes} changes ({} KiB saved): a valid change accepted in {:?}, a bad one refused in \
         {:?} (medians of {ROUNDS})",
        saved.len() / 1024,
        median(accepted),
        median(refused),
    );
}

fn main() {
    // `cargo test --benches` runs benches with no arguments in test mode: keep it short.
    if std::env::args().all(|a| a != "--bench") {
        case(200);
        return;
    }
    for changes in [1_000, 10_000, 100_000, 226_884] {
        case(changes);
    }
}
