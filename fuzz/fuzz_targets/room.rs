//! The room's receive path: a message (the input after its first two bytes, which pick a
//! recorded session and one of its peers) sent to a room over that session's final document.
//! A `Refusal::Broken` counts as a crash; a refused message must change nothing; an accepted
//! one must leave a list that validates and a saved chunk that loads.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::{Session, room_for, sessions, split_room_input};
use tandem_protocol::ListDoc;
use tandem_protocol::room::Refusal;

/// The sessions, each with its final document loaded.
static SESSIONS: OnceLock<Vec<(Session, ListDoc)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let sessions = SESSIONS.get_or_init(|| {
        let load = |s: Session| {
            let doc = ListDoc::load(&s.snapshot).expect("a recorded snapshot");
            (s, doc)
        };
        sessions().into_iter().map(load).collect()
    });
    let Some((session, peer, message)) = split_room_input(data) else { return };
    let (session, doc) = &sessions[session % sessions.len()];
    let (mut room, peer) = room_for(session, doc, peer);
    let before = room.heads();
    match room.receive(peer, message) {
        Err(Refusal::Broken(e)) => panic!("Refusal::Broken: {e}"),
        Err(_) => {
            assert!(room.heads() == before && !room.has_unsaved(), "a refusal changed the list")
        }
        Ok(received) => {
            assert_eq!(received.changed, room.heads() != before);
            if received.changed {
                room.doc().validate().expect("an accepted change leaves a valid list");
                let chunk = room.unsaved().expect("a change to save");
                let mut stored = ListDoc::load(&session.snapshot).unwrap();
                stored.load_incremental(&chunk).expect("the saved chunk loads");
                assert_eq!(stored.heads(), room.heads(), "the saved chunk holds the change");
                room.mark_saved();
            }
        }
    }
    let peers: Vec<_> = session.peers.iter().map(|(p, _)| *p).collect();
    room.outgoing_many(&peers);
});
