//! What the fuzzer runs one input through, and what must hold afterwards.
//!
//! A [`Case`] is self-contained (a room case carries the document and the messages before the
//! mutated one), so a finding saved as one file replays alone, whatever happens to the seeds.
//! [`run`] answers a *label* (the kind of outcome, digits and hashes blanked, which the
//! engine uses as feedback: an input with a label never seen before joins the pool) or a
//! *problem*: a property that failed. Panics and allocations are the engine's business.
//!
//! Properties checked:
//! - wire: a frame that decodes encodes back to a frame that decodes to the same message;
//! - loader: a loaded document that validates can be read (title, items) and saves to bytes
//!   that load back to the same heads;
//! - room: no [`Refusal::Broken`]; a refused message leaves the document as it was with
//!   nothing unsaved; a viewer never changes the list; an accepted change leaves a document
//!   that passes the full [`ListDoc::validate`] (not only the room's incremental check); what
//!   the room handed over to be saved loads back to the room's heads; the room can still
//!   answer every peer, a newcomer, and sleep and wake.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tandem_protocol::room::{PeerId, Refusal, Room};
use tandem_protocol::wire::{ClientMessage, ServerMessage};
use tandem_protocol::{ListDoc, Role};

use crate::engine::Meter;

/// One input for one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Case {
    /// A frame from a client: `ClientMessage::decode`.
    ClientFrame(ByteBuf),
    /// A frame from the server (what a client decodes): `ServerMessage::decode`.
    ServerFrame(ByteBuf),
    /// `ListDoc::load`, then `validate`.
    Load(ByteBuf),
    /// `ListDoc::load(base)`, then `load_incremental(data)`, then `validate`.
    LoadIncremental {
        /// A document that loads.
        base: ByteBuf,
        /// The chunk(s) to apply.
        data: ByteBuf,
    },
    /// A room over `base` with `peers`; the `prefix` messages are received (and saved) first,
    /// then `data` from `peer`.
    Room {
        /// The room's document as saved; empty for `ListDoc::empty()`.
        base: ByteBuf,
        /// Who is in the room.
        peers: Vec<(PeerId, Role)>,
        /// Messages received before the one under test.
        prefix: Vec<(PeerId, ByteBuf)>,
        /// The sender of `data`.
        peer: PeerId,
        /// The message under test.
        data: ByteBuf,
    },
}

impl Case {
    /// The bytes a peer controls in this case.
    pub fn input_len(&self) -> usize {
        match self {
            Case::ClientFrame(d) | Case::ServerFrame(d) | Case::Load(d) => d.len(),
            Case::LoadIncremental { data, .. } | Case::Room { data, .. } => data.len(),
        }
    }

    /// The target's name: `wire`, `loader` or `room`.
    pub fn target(&self) -> &'static str {
        match self {
            Case::ClientFrame(_) | Case::ServerFrame(_) => "wire",
            Case::Load(_) | Case::LoadIncremental { .. } => "loader",
            Case::Room { .. } => "room",
        }
    }

    /// The case as one file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).unwrap();
        out
    }

    /// A case from [`Case::encode`] output.
    pub fn decode(bytes: &[u8]) -> Self {
        ciborium::from_reader(bytes).expect("a saved case")
    }
}

/// An error text reduced to its kind: quoted parts dropped, digits and hex runs blanked, cut
/// to a few words.
pub fn kind_of(text: &str) -> String {
    let mut unquoted = String::new();
    let mut quote = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '`' || c == '"' => quote = Some(c),
            None => unquoted.push(c),
        }
    }
    let mut out = String::new();
    for word in unquoted.split_whitespace().take(6) {
        let blank = word.chars().filter(char::is_ascii_hexdigit).count() * 2 > word.len()
            && word.chars().any(|c| c.is_ascii_digit());
        if blank {
            out.push_str("# ");
        } else {
            out.extend(word.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }));
            out.push(' ');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// The room's verdict on a message, as recorded in sessions and used as a label.
pub fn verdict(result: &Result<tandem_protocol::room::Received, Refusal>) -> String {
    match result {
        Ok(r) if r.changed => "changed".into(),
        Ok(_) => "unchanged".into(),
        Err(Refusal::UnknownPeer) => "unknown_peer".into(),
        Err(Refusal::ReadOnly) => "read_only".into(),
        Err(Refusal::Malformed(m)) => format!("malformed: {}", kind_of(m)),
        Err(Refusal::Invalid(e)) => format!("invalid: {}", kind_of(&e.to_string())),
        Err(Refusal::Broken(m)) => format!("broken: {}", kind_of(m)),
        #[allow(unreachable_patterns)]
        Err(other) => format!("refused: {}", kind_of(&other.to_string())),
    }
}

/// Runs one case: `Ok(label)`, or `Err(problem)` if a property failed.
pub fn run(case: &Case, meter: &mut Meter) -> Result<String, String> {
    match case {
        Case::ClientFrame(frame) => {
            meter.start(0);
            wire(ClientMessage::decode(frame), ClientMessage::encode, ClientMessage::decode, "c")
        }
        Case::ServerFrame(frame) => {
            meter.start(0);
            wire(ServerMessage::decode(frame), ServerMessage::encode, ServerMessage::decode, "s")
        }
        Case::Load(bytes) => {
            meter.start(0);
            match ListDoc::load(bytes) {
                Err(e) => Ok(format!("load: {}", kind_of(&e.to_string()))),
                Ok(doc) => loaded(doc, "load"),
            }
        }
        Case::LoadIncremental { base, data } => {
            let Ok(mut doc) = ListDoc::load(base) else { return Ok("base does not load".into()) };
            meter.start(base.len());
            match doc.load_incremental(data) {
                Err(e) => Ok(format!("incremental: {}", kind_of(&e.to_string()))),
                Ok(()) => loaded(doc, "incremental"),
            }
        }
        Case::Room { base, peers, prefix, peer, data } => {
            room(base, peers, prefix, *peer, data, meter)
        }
    }
}

fn wire<M: PartialEq + std::fmt::Debug, E: std::fmt::Display>(
    decoded: Result<M, E>,
    encode: impl Fn(&M) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<M, E>,
    side: &str,
) -> Result<String, String> {
    match decoded {
        Err(e) => Ok(format!("{side}: {}", kind_of(&e.to_string()))),
        Ok(message) => {
            let again = decode(&encode(&message))
                .map_err(|e| format!("{message:?} encodes to a frame that does not decode: {e}"))?;
            if again != message {
                return Err(format!("{message:?} comes back as {again:?}"));
            }
            let name = format!("{message:?}");
            Ok(format!("{side}: ok {}", name.split([' ', '(', '{']).next().unwrap_or("")))
        }
    }
}

fn loaded(mut doc: ListDoc, how: &str) -> Result<String, String> {
    let heads = doc.heads();
    let again =
        ListDoc::load(&doc.save()).map_err(|e| format!("its own save does not load: {e}"))?;
    if again.clone().heads() != heads {
        return Err("its own save loads to other heads".into());
    }
    match doc.validate() {
        Err(e) => Ok(format!("{how}: {}", kind_of(&e.to_string()))),
        Ok(()) => {
            doc.title().map_err(|e| format!("validates but the title does not read: {e}"))?;
            doc.items().map_err(|e| format!("validates but the items do not read: {e}"))?;
            Ok(format!("{how}: valid"))
        }
    }
}

/// What the server stores for a list: the base document, then each saved chunk.
struct Stored(Vec<Vec<u8>>);

impl Stored {
    fn save(&mut self, room: &mut Room) {
        if let Some(chunk) = room.unsaved() {
            self.0.push(chunk);
            room.mark_saved();
        }
    }

    /// Loads the stored parts as the server does when it opens a room.
    fn load(&self) -> Result<ListDoc, String> {
        let mut parts = self.0.iter().filter(|p| !p.is_empty());
        let mut doc = match parts.next() {
            None => return Ok(ListDoc::empty()),
            Some(first) => ListDoc::load(first).map_err(|e| e.to_string())?,
        };
        for part in parts {
            doc.load_incremental(part).map_err(|e| e.to_string())?;
        }
        Ok(doc)
    }
}

fn room(
    base: &[u8],
    peers: &[(PeerId, Role)],
    prefix: &[(PeerId, ByteBuf)],
    peer: PeerId,
    data: &[u8],
    meter: &mut Meter,
) -> Result<String, String> {
    let doc = if base.is_empty() {
        ListDoc::empty()
    } else {
        ListDoc::load(base).map_err(|e| format!("the base does not load: {e}"))?
    };
    let mut room = Room::new(doc);
    for &(p, role) in peers {
        room.join(p, tandem_protocol::UserId(p + 1), role);
    }
    let mut stored = Stored(vec![base.to_vec()]);
    let everyone: Vec<PeerId> = peers.iter().map(|(p, _)| *p).collect();
    for (p, message) in prefix {
        if let Err(Refusal::Broken(e)) = room.receive(*p, message) {
            return Err(format!("broken by an earlier message: {e}"));
        }
        stored.save(&mut room);
        room.outgoing_many(&everyone);
    }

    let document_len: usize = stored.0.iter().map(Vec::len).sum();
    meter.start(document_len);
    let before = room.heads();
    let result = room.receive(peer, data);
    let label = verdict(&result);
    let role = peers.iter().find(|(p, _)| *p == peer).map(|(_, r)| *r);
    match &result {
        Err(Refusal::Broken(e)) => return Err(format!("Refusal::Broken: {e}")),
        Err(_) => {
            if room.heads() != before || room.has_unsaved() {
                return Err(format!("refused ({label}) but the document changed"));
            }
        }
        Ok(received) => {
            let moved = room.heads() != before;
            if moved != received.changed {
                return Err(format!(
                    "said changed={} but the heads moved={moved}",
                    received.changed
                ));
            }
            if moved && role.is_none_or(|r| !r.can_edit()) {
                return Err(format!("a {role:?} peer changed the list"));
            }
            if moved && let Err(e) = room.doc().validate() {
                return Err(format!("accepted a change that validate() refuses: {e}"));
            }
        }
    }
    stored.save(&mut room);
    room.outgoing_many(&everyone);
    let changed = result.as_ref().is_ok_and(|r| r.changed);
    // What follows costs whole-document work: after every change, and after one in eight of
    // the other inputs (picked by the input, so that a replay does the same).
    if !changed && data.iter().fold(0u8, |a, b| a.wrapping_add(*b)) % 8 != 0 {
        return Ok(format!("room: {label}"));
    }
    room.join(u64::MAX, tandem_protocol::UserId(1 << 52), Role::Viewer);
    room.outgoing(u64::MAX);
    if changed {
        let mut reloaded =
            stored.load().map_err(|e| format!("what the room saved does not load: {e}"))?;
        if reloaded.heads() != room.heads() {
            return Err("what the room saved loads to other heads than the room's".into());
        }
    }
    let snapshot = room.edit(|d| d.save());
    room.shed_history(&snapshot);
    if room.sleep() {
        room.doc();
    }
    Ok(format!("room: {label}"))
}

/// What a case holds, for people: each chunk of the message or bytes under test, with its
/// type, checksum verdict and (for changes) its fields.
pub fn describe(case: &Case) -> String {
    use std::fmt::Write as _;

    use tandem_protocol::automerge::sync::Message;

    use crate::chunk::{CHANGE, COMPRESSED, Chunk, checksum};
    let mut out = String::new();
    let chunks = |out: &mut String, bytes: &[u8]| match Chunk::parse_all(bytes) {
        None => writeln!(out, "  not made of chunks ({} bytes)", bytes.len()).unwrap(),
        Some(chunks) => {
            for c in chunks {
                let inner = if c.chunk_type == COMPRESSED { c.inflated() } else { Some(c.clone()) };
                let Some(inner) = inner else {
                    writeln!(out, "  compressed chunk that does not inflate").unwrap();
                    continue;
                };
                let valid = c.checksum == checksum(inner.chunk_type, &inner.data);
                write!(out, "  chunk type {}, checksum valid {valid}", c.chunk_type).unwrap();
                match crate::chunk::Change::parse(&inner.data)
                    .filter(|_| inner.chunk_type == CHANGE)
                {
                    Some(ch) => writeln!(
                        out,
                        ": change {:02x?} deps {:02x?} actor {:02x?} seq {} start_op {} {} columns",
                        &ch.hash()[..4],
                        ch.deps.iter().map(|d| &d[..4]).collect::<Vec<_>>(),
                        ch.actor,
                        ch.seq,
                        ch.start_op,
                        ch.columns.len()
                    )
                    .unwrap(),
                    None => writeln!(out, ", {} bytes", inner.data.len()).unwrap(),
                }
            }
        }
    };
    match case {
        Case::Room { data, prefix, peer, peers, .. } => {
            writeln!(out, "room: from peer {peer} of {peers:?}, after {} messages", prefix.len())
                .unwrap();
            match Message::decode(data) {
                Err(e) => writeln!(out, "  not a sync message: {e}").unwrap(),
                Ok(m) => {
                    writeln!(out, "  heads {:?} need {:?}", m.heads, m.need).unwrap();
                    for c in m.changes.iter() {
                        chunks(&mut out, c);
                    }
                }
            }
        }
        Case::Load(bytes) => chunks(&mut out, bytes),
        Case::LoadIncremental { data, .. } => chunks(&mut out, data),
        Case::ClientFrame(f) | Case::ServerFrame(f) => {
            writeln!(out, "frame of {} bytes", f.len()).unwrap();
        }
    }
    out
}
