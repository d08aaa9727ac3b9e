//! Protocol version 2 from a peer's side, shared by the client library and the load
//! generator: what a `Changes` frame does to a document and its sync state, and which
//! changes a peer in step sends raw. (The server's side is in [`crate::room`].)
//!
//! A frame is applied without an answer, so the peer's `automerge::sync::State` must be
//! brought to where an exchanged sync message would have left it; otherwise the next
//! `generate_sync_message` would tell the server what it already knows.

use automerge::sync::{BloomFilter, Have, State};
use automerge::{AutoCommit, Change, ChangeHash};

use crate::list_doc::{ListDoc, LoadError};

/// What applying a frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The document now holds every head the frame named. When not, a dependency was missing
    /// (a batch was missed): the peer goes back to sync messages.
    pub complete: bool,
    /// The document holds exactly the frame's heads (nothing of its own left to send).
    pub in_step: bool,
}

/// Applies a frame's change chunks to `doc` and records in `state` that the server holds
/// `heads`. A change whose dependencies are missing is parked by Automerge; callers that
/// store the document should drop it when the result is not `complete`.
pub fn apply_frame(
    doc: &mut ListDoc,
    state: &mut State,
    data: &[u8],
    heads: &[ChangeHash],
) -> Result<Applied, LoadError> {
    doc.load_incremental(data)?;
    Ok(note_frame(doc.automerge_mut(), state, heads))
}

/// Records in `state` that the server holds `heads` after a frame was applied to `doc`.
pub fn note_frame(doc: &mut AutoCommit, state: &mut State, heads: &[ChangeHash]) -> Applied {
    let complete = holds(doc, heads);
    state.their_heads = Some(heads.to_vec());
    state.in_flight = false;
    if !complete {
        return Applied { complete, in_step: false };
    }
    let mut ours = doc.get_heads();
    let mut theirs = heads.to_vec();
    ours.sort_unstable();
    theirs.sort_unstable();
    let in_step = ours == theirs;
    if in_step {
        mark_in_step(state, heads);
    } else {
        // Our own changes are still to go: the next message carries them (and only them).
        state.shared_heads = heads.to_vec();
        state.their_need = Some(Vec::new());
        state.their_have =
            Some(vec![Have { last_sync: heads.to_vec(), bloom: BloomFilter::default() }]);
    }
    Applied { complete, in_step }
}

/// Brings `state` to where a finished sync exchange at `heads` would leave it: both sides
/// hold exactly `heads` and each knows it, so `generate_sync_message` says nothing until
/// something changes. For a frame sent (the server) or applied in step (a client).
pub fn mark_in_step(state: &mut State, heads: &[ChangeHash]) {
    state.their_heads = Some(heads.to_vec());
    state.shared_heads = heads.to_vec();
    state.last_sent_heads = heads.to_vec();
    state.their_need = Some(Vec::new());
    state.their_have =
        Some(vec![Have { last_sync: heads.to_vec(), bloom: BloomFilter::default() }]);
    state.have_responded = true;
    state.in_flight = false;
}

/// Whether `doc` holds every change in `hashes`, with nothing parked for want of a
/// dependency. (Looked up in the change graph: `get_change_by_hash` would rebuild each change
/// from Automerge's columns.)
pub fn holds(doc: &mut AutoCommit, hashes: &[ChangeHash]) -> bool {
    doc.get_missing_deps(hashes).is_empty()
}

/// The changes of `doc` that are not in the history at `heads` (the server's): what a peer in
/// step sends as `ClientMessage::Changes` (their `raw_bytes`, one after another). `None` when
/// `doc` does not hold all of `heads`.
pub fn changes_since(doc: &mut AutoCommit, heads: &[ChangeHash]) -> Option<Vec<Change>> {
    let mut ours = doc.get_heads();
    let mut theirs = heads.to_vec();
    ours.sort_unstable();
    theirs.sort_unstable();
    if ours == theirs {
        // In step (the common case after a frame): no walk of the change graph.
        return Some(Vec::new());
    }
    holds(doc, heads).then(|| doc.get_changes(heads))
}

#[cfg(test)]
mod tests {
    use automerge::sync::SyncDoc as _;

    use super::*;
    use crate::ItemId;

    /// Two replicas in step through sync messages: `(server, client, client state)`.
    fn in_step() -> (ListDoc, ListDoc, State) {
        let mut server = ListDoc::new("groceries").unwrap();
        let mut client = ListDoc::empty();
        let (mut s_state, mut c_state) = (State::new(), State::new());
        for _ in 0..10 {
            let a = server.automerge_mut().sync().generate_sync_message(&mut s_state);
            if let Some(m) = a.clone() {
                client.automerge_mut().sync().receive_sync_message(&mut c_state, m).unwrap();
            }
            let b = client.automerge_mut().sync().generate_sync_message(&mut c_state);
            if let Some(m) = b.clone() {
                server.automerge_mut().sync().receive_sync_message(&mut s_state, m).unwrap();
            }
            if a.is_none() && b.is_none() {
                break;
            }
        }
        (server, client, c_state)
    }

    #[test]
    fn a_frame_leaves_a_peer_in_step_with_nothing_to_say() {
        let (mut server, mut client, mut state) = in_step();
        let before = server.heads();
        server.add_item(ItemId(1), "milk").unwrap();
        let chunk = server.save_after(&before);
        let applied = apply_frame(&mut client, &mut state, &chunk, &server.heads()).unwrap();
        assert_eq!(applied, Applied { complete: true, in_step: true });
        assert_eq!(client.items().unwrap()[0].content, "milk");
        let next = client.automerge_mut().sync().generate_sync_message(&mut state);
        assert!(next.is_none(), "a peer in step after a frame sends nothing: {next:?}");
    }

    #[test]
    fn a_missed_frame_shows_and_sync_asks_for_what_is_missing() {
        let (mut server, mut client, mut state) = in_step();
        let first = server.heads();
        server.add_item(ItemId(1), "milk").unwrap();
        let second = server.heads();
        server.add_item(ItemId(2), "eggs").unwrap();
        // The frame for the first batch never arrives.
        let chunk = server.save_after(&second);
        let applied = apply_frame(&mut client, &mut state, &chunk, &server.heads()).unwrap();
        assert!(!applied.complete);
        let ask = client.automerge_mut().sync().generate_sync_message(&mut state).unwrap();
        assert!(!ask.need.is_empty() || ask.heads != server.heads(), "{ask:?}");
        assert!(ask.heads.iter().all(|h| first.contains(h) || !second.contains(h)));
    }

    #[test]
    fn changes_since_names_only_what_the_server_lacks() {
        let (mut server, mut client, _) = in_step();
        let heads = server.heads();
        client.add_item(ItemId(7), "bread").unwrap();
        let changes = changes_since(client.automerge_mut(), &heads).unwrap();
        assert_eq!(changes.len(), 1);
        assert!(changes_since(client.automerge_mut(), &[ChangeHash([9; 32])]).is_none());
        server.automerge_mut().apply_changes(changes).unwrap();
        assert_eq!(server.items().unwrap()[0].content, "bread");
    }
}
