//! The seed corpus on disk: recorded sessions (`fuzz-corpus/seeds/*.cbor`, written by
//! [`crate::record`]) and findings (`fuzz-corpus/findings/`, each input with a note).
//!
//! A session is what one room saw: the document it started from, its peers, every message
//! the peers sent (with what the room answered), every message the room sent, and what it
//! saved. The fuzzer draws its inputs from these: messages for the room, frames for the wire
//! decoders, snapshots and saved chunks for the document loader.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tandem_protocol::Role;
use tandem_protocol::room::PeerId;

/// One peer's message to the room, and what the room made of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Who sent it.
    pub peer: PeerId,
    /// The encoded Automerge sync message.
    pub data: ByteBuf,
    /// The room's verdict as recorded (see [`crate::targets::verdict`]).
    pub verdict: String,
}

/// What one room saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// What the exchange was.
    pub name: String,
    /// The document the room started from (`ListDoc::save`); empty for a reserved list id,
    /// whose room starts from `ListDoc::empty()`.
    pub base: ByteBuf,
    /// The peers, with their roles, joined before the first step.
    pub peers: Vec<(PeerId, Role)>,
    /// What the peers sent, in the order the room received it.
    pub steps: Vec<Step>,
    /// What the room sent (to any peer).
    pub replies: Vec<ByteBuf>,
    /// What the room handed over to be saved (`Room::unsaved`), in order.
    pub chunks: Vec<ByteBuf>,
    /// The room's document at the end (`ListDoc::save`).
    pub snapshot: ByteBuf,
}

/// `protocol/tests/fuzz-corpus`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

/// Where recorded sessions live.
pub fn seeds_dir() -> PathBuf {
    root().join("seeds")
}

/// Where findings live, each input next to a note.
pub fn findings_dir() -> PathBuf {
    root().join("findings")
}

/// Every recorded session, in file-name order (so a seeded run is repeatable).
pub fn sessions() -> Vec<Session> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(seeds_dir())
        .expect("the seed corpus is in the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cbor"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seeds in {}", seeds_dir().display());
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            ciborium::from_reader(&bytes[..])
                .unwrap_or_else(|e| panic!("{} is not a session: {e}", p.display()))
        })
        .collect()
}

/// Writes a session as `seeds/<name>.cbor`.
pub fn write_session(session: &Session) {
    let mut bytes = Vec::new();
    ciborium::into_writer(session, &mut bytes).unwrap();
    std::fs::create_dir_all(seeds_dir()).unwrap();
    std::fs::write(seeds_dir().join(format!("{}.cbor", session.name)), bytes).unwrap();
}

/// A finding's input, as saved in `findings/`.
pub fn finding(name: &str) -> Vec<u8> {
    let path = findings_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Saves a finding's input in `findings/`.
pub fn write_finding(name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(findings_dir()).unwrap();
    std::fs::write(findings_dir().join(name), bytes).unwrap();
}
