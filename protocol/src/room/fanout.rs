//! The room's side of the conversation: the sync message each peer needs, made once for every
//! peer in the same state. Automerge makes a peer's message from the document and that peer's
//! sync state alone, so at one set of heads a state always gives the same message and the
//! same next state: the room remembers both ([`Memo`]), which makes a burst of peers that all
//! need the whole list (a hundred devices reconnecting, or one peer that keeps saying it has
//! nothing) cost one `save()`, not one each.
//!
//! Two things are the room's own: a peer holding changes whose dependencies are missing is
//! asked for them (Automerge asks only for heads it lacks, and its queue, which would find
//! the rest, is never used here), and messages go out without Automerge's capability flags,
//! so that peers keep sending changes one by one rather than whole documents, which the room
//! does not accept (see [`crate::intake`]).

use std::collections::HashMap;

use automerge::sync::{Message, State, SyncDoc as _};
use automerge::{ChangeHash, ReadDoc};

use super::peer::{Peer, PeerId};
use crate::ListDoc;

/// Sync messages for many peers, each distinct message made and encoded once.
#[derive(Debug, Default)]
pub struct Fanout {
    /// The distinct encoded messages.
    pub messages: Vec<Vec<u8>>,
    /// Which peer gets which message (an index into `messages`).
    pub to: Vec<(PeerId, usize)>,
}

/// Most states remembered at one set of heads.
const MEMO_ENTRIES: usize = 64;
/// Most message bytes remembered at one set of heads.
const MEMO_BYTES: usize = 32 * 1024 * 1024;

/// What each sync state led to at one set of heads: the next state and the message, if any.
#[derive(Debug, Default)]
pub(super) struct Memo {
    heads: Vec<ChangeHash>,
    /// A state before, the state after and the key of the message made.
    made: HashMap<State, (State, Option<u64>)>,
    messages: HashMap<u64, Vec<u8>>,
    bytes: usize,
    next_key: u64,
}

impl Memo {
    /// Forgets everything when the document moved.
    fn at(&mut self, heads: &[ChangeHash]) {
        if self.heads != heads {
            self.heads = heads.to_vec();
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.made.clear();
        self.messages.clear();
        self.bytes = 0;
    }

    /// Remembers what `before` led to; returns the message's key.
    fn remember(&mut self, before: State, after: State, message: Option<Vec<u8>>) -> Option<u64> {
        let size = message.as_ref().map_or(0, Vec::len);
        if self.made.len() >= MEMO_ENTRIES || self.bytes + size > MEMO_BYTES {
            self.clear();
        }
        self.bytes += size;
        let key = message.map(|message| {
            self.next_key += 1;
            self.messages.insert(self.next_key, message);
            self.next_key
        });
        self.made.insert(before, (after, key));
        key
    }
}

/// Automerge's message for a peer, without its capability flags, and with `needs` added.
fn generate(doc: &mut ListDoc, state: &mut State, needs: &[ChangeHash]) -> Option<Vec<u8>> {
    let mut message: Message = doc.automerge_mut().sync().generate_sync_message(state)?;
    message.flags = None;
    if !needs.is_empty() {
        // Automerge encodes hashes sorted.
        message.need.extend_from_slice(needs);
        message.need.sort_unstable();
        message.need.dedup();
    }
    Some(message.encode())
}

/// The next message of each of `ids` that needs one.
pub(super) fn outgoing(
    doc: &mut ListDoc,
    peers: &mut HashMap<PeerId, Peer>,
    memo: &mut Memo,
    ids: &[PeerId],
) -> Fanout {
    let mut fanout = Fanout::default();
    memo.at(&doc.heads());
    // Memo entry -> index in `fanout.messages`.
    let mut placed: HashMap<u64, usize> = HashMap::new();
    for &id in ids {
        let Some(peer) = peers.get_mut(&id) else { continue };
        if !peer.owes_ack
            && peer.state.have_responded
            && peer.at.as_deref() == Some(memo.heads.as_slice())
        {
            // In step and told so (by a frame, or by our answer to its first message on
            // this socket, which tells it that it is in step).
            continue;
        }
        if std::mem::take(&mut peer.owes_ack) {
            // Automerge stays quiet towards a peer whose last message showed the same heads
            // as ours (say it merged someone else's change while its own was on the way); but
            // that peer has not heard that its change is saved. Forgetting what we last sent
            // makes Automerge send our heads.
            peer.state.last_sent_heads.clear();
        }
        if !peer.held.is_empty() {
            let automerge = doc.automerge();
            let needs =
                peer.held_needs(|hash| ReadDoc::get_missing_deps(automerge, &[*hash]).is_empty());
            if let Some(message) = generate(doc, &mut peer.state, &needs) {
                fanout.messages.push(message);
                fanout.to.push((id, fanout.messages.len() - 1));
            }
            continue;
        }
        let made = match memo.made.get(&peer.state) {
            Some((after, key)) => {
                peer.state = after.clone();
                *key
            }
            None => {
                let before = peer.state.clone();
                let message = generate(doc, &mut peer.state, &[]);
                memo.remember(before, peer.state.clone(), message)
            }
        };
        if let Some(key) = made {
            let index = *placed.entry(key).or_insert_with(|| {
                fanout.messages.push(memo.messages[&key].clone());
                fanout.messages.len() - 1
            });
            fanout.to.push((id, index));
        }
    }
    fanout
}
