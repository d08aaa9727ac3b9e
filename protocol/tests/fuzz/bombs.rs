//! The two attacks issue 11 names as getting through today, built by hand from a recorded
//! session so the fuzzer's findings folder holds them as inputs (the mutations reach neither
//! reliably in a short run): a compressed change chunk that inflates to hundreds of MiB, and
//! a change of a few dozen bytes whose run-length encoded columns claim millions of ops.

use serde_bytes::ByteBuf;
use tandem_protocol::ListDoc;
use tandem_protocol::automerge::sync::{ChunkList, Message, MessageVersion};
use tandem_protocol::automerge::transaction::Transactable as _;
use tandem_protocol::automerge::{ActorId, ObjType, ROOT, ScalarValue};

use crate::chunk::{COMPRESSED, Chunk, deflate};
use crate::corpus::Session;
use crate::mutate::encode_message;
use crate::targets::Case;

/// How far the decompression bomb inflates.
pub const INFLATED_BYTES: usize = 128 << 20;
/// How many ops the RLE bomb's change claims.
pub const RLE_OPS: usize = 300_000;

/// A room case in `session` after all its steps, `data` sent by the session's first peer.
fn after_session(session: &Session, data: Vec<u8>) -> Case {
    Case::Room {
        base: session.base.clone(),
        peers: session.peers.clone(),
        prefix: session.steps.iter().map(|s| (s.peer, s.data.clone())).collect(),
        peer: session.peers[0].0,
        data: ByteBuf::from(data),
    }
}

fn message(heads: Vec<tandem_protocol::automerge::ChangeHash>, change: Vec<u8>) -> Vec<u8> {
    encode_message(&Message {
        heads,
        need: Vec::new(),
        have: Vec::new(),
        changes: ChunkList::from(vec![change]),
        flags: None,
        version: MessageVersion::V1,
    })
}

/// An editor's sync message carrying one compressed chunk of zeros that inflates to
/// [`INFLATED_BYTES`]; Automerge inflates it whole before it looks at the checksum.
pub fn decompression_bomb(session: &Session) -> Case {
    let compressed =
        Chunk { checksum: [0; 4], chunk_type: COMPRESSED, data: deflate(&vec![0; INFLATED_BYTES]) };
    let mut end = ListDoc::load(&session.snapshot).unwrap();
    after_session(session, message(end.heads(), compressed.encode()))
}

/// An editor's sync message carrying one valid change, on top of the room's heads, that
/// makes a list and inserts [`RLE_OPS`] nulls into it: every op column is one run, so the
/// change is a few dozen bytes.
pub fn rle_op_bomb(session: &Session) -> Case {
    let mut doc = ListDoc::load(&session.snapshot).unwrap();
    let heads = doc.heads();
    let am = doc.automerge_mut();
    am.set_actor(ActorId::from(b"rle op bomb 0001".to_vec()));
    let list = am.put_object(ROOT, "bomb", ObjType::List).unwrap();
    am.splice(&list, 0, 0, vec![ScalarValue::Null; RLE_OPS]).unwrap();
    am.commit();
    let change = am.get_last_local_change().unwrap().raw_bytes().to_vec();
    after_session(session, message(heads, change))
}
