//! What the libFuzzer targets share: the recorded sessions of `cargo test`'s fuzzer
//! (`protocol/tests/fuzz-corpus/seeds/`), and the room every `room` input is sent to.

use serde::Deserialize;
use serde_bytes::ByteBuf;
use tandem_protocol::room::{PeerId, Room};
use tandem_protocol::{ListDoc, Role};

/// One peer's message to the room (the fields the targets use).
#[derive(Debug, Deserialize)]
pub struct Step {
    /// Who sent it.
    pub peer: PeerId,
    /// The encoded Automerge sync message.
    pub data: ByteBuf,
}

/// What one room saw (see `protocol/tests/fuzz/corpus.rs`).
#[derive(Debug, Deserialize)]
pub struct Session {
    /// What the exchange was.
    pub name: String,
    /// The peers and their roles.
    pub peers: Vec<(PeerId, Role)>,
    /// What the peers sent.
    pub steps: Vec<Step>,
    /// What the room sent.
    pub replies: Vec<ByteBuf>,
    /// What the room saved, chunk by chunk.
    pub chunks: Vec<ByteBuf>,
    /// The room's document at the end.
    pub snapshot: ByteBuf,
}

/// The recorded sessions, in file-name order.
pub fn sessions() -> Vec<Session> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../protocol/tests/fuzz-corpus/seeds");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("the seed corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cbor"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| ciborium::from_reader(&std::fs::read(p).unwrap()[..]).expect("a session"))
        .collect()
}

/// A `room` input: which session's final state, which of its peers, and the message.
pub fn split_room_input(data: &[u8]) -> Option<(usize, usize, &[u8])> {
    match data {
        [session, peer, message @ ..] => Some((*session as usize, *peer as usize, message)),
        _ => None,
    }
}

/// A room over `doc` (`session`'s final document, loaded once) with the session's peers
/// joined, and the peer at `peer`.
pub fn room_for(session: &Session, doc: &ListDoc, peer: usize) -> (Room, PeerId) {
    let mut room = Room::new(doc.clone());
    for &(p, role) in &session.peers {
        room.join(p, tandem_protocol::UserId(p + 1), role);
    }
    (room, session.peers[peer % session.peers.len()].0)
}
