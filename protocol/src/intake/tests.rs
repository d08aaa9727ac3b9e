//! Real changes pass and count right; bombs and malformed filters are refused before
//! Automerge sees them.

use automerge::sync::{Have, Message};
use automerge::{ActorId, ChangeHash};

use super::*;
use crate::{ItemId, ListDoc};

fn limits() -> SyncLimits {
    SyncLimits::default()
}

/// Every change of a list that had some of everything done to it.
fn real_changes() -> Vec<Change> {
    let mut doc = ListDoc::new("Groceries").unwrap();
    doc.add_item(ItemId(1), "milk").unwrap();
    doc.add_item(ItemId(2), &"long text ".repeat(200)).unwrap();
    doc.edit_content(ItemId(1), "oat milk").unwrap();
    doc.set_done(ItemId(1), true).unwrap();
    doc.move_to_first(ItemId(2)).unwrap();
    doc.remove_item(ItemId(1)).unwrap();
    doc.set_title("Shopping").unwrap();
    doc.automerge_mut().get_changes(&[])
}

#[test]
fn real_changes_pass_with_their_operations_counted() {
    for change in real_changes() {
        let decoded = decode_changes([change.raw_bytes()].into_iter(), &limits()).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].ops, change.len());
        assert_eq!(decoded[0].change.hash(), change.hash());
    }
}

#[test]
fn compressed_changes_are_inflated_to_the_same_change() {
    let mut changes = real_changes();
    let big = changes.iter_mut().max_by_key(|c| c.len()).unwrap();
    let hash = big.hash();
    let compressed = big.bytes().into_owned();
    assert_eq!(compressed[8], COMPRESSED, "a change this big is sent compressed");
    let decoded = decode_changes([&compressed[..]].into_iter(), &limits()).unwrap();
    assert_eq!(decoded[0].change.hash(), hash);
    assert_eq!(decoded[0].ops, big.len());
    assert_eq!(decoded[0].change.raw_bytes()[8], CHANGE, "handed on uncompressed");
}

#[test]
fn chunks_sent_back_to_back_in_one_entry_are_all_read() {
    let changes = real_changes();
    let joined: Vec<u8> = changes.iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    let decoded = decode_changes([&joined[..]].into_iter(), &limits()).unwrap();
    let hashes: Vec<ChangeHash> = decoded.iter().map(|i| i.change.hash()).collect();
    assert_eq!(hashes, changes.iter().map(Change::hash).collect::<Vec<_>>());
}

/// A compressed chunk whose data inflates to `size` zero bytes (1 KiB of deflate holds about
/// 1 MiB of zeros).
fn deflate_bomb(size: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..size / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let data = encoder.finish().unwrap();
    let mut chunk = MAGIC.to_vec();
    chunk.extend_from_slice(&[0, 0, 0, 0, COMPRESSED]);
    write_uleb(&mut chunk, data.len() as u64);
    chunk.extend_from_slice(&data);
    chunk
}

#[test]
fn a_decompression_bomb_is_refused_at_the_cap() {
    let bomb = deflate_bomb(64 * 1024 * 1024);
    assert!(bomb.len() < 256 * 1024, "{} bytes on the wire", bomb.len());
    let refused = decode_changes([&bomb[..]].into_iter(), &limits()).unwrap_err();
    assert_eq!(refused, IntakeError::TooLarge(limits().max_decoded_message_bytes));
}

/// A change chunk whose action column claims `ops` operations in a few bytes.
fn rle_bomb(ops: i64) -> Vec<u8> {
    let mut body = Vec::new();
    write_uleb(&mut body, 0); // no dependencies
    let actor = ActorId::random();
    write_uleb(&mut body, actor.to_bytes().len() as u64);
    body.extend_from_slice(actor.to_bytes());
    write_uleb(&mut body, 1); // seq
    write_uleb(&mut body, 1); // start op
    body.push(0); // time
    body.push(0); // no message
    body.push(0); // no other actors
    let mut action = Vec::new();
    write_sleb(&mut action, ops);
    action.push(1); // "put"
    write_uleb(&mut body, 1);
    write_uleb(&mut body, u64::from(ACTION_COLUMN));
    write_uleb(&mut body, action.len() as u64);
    body.extend_from_slice(&action);
    // A valid checksum: the attacker computes it like anyone.
    uncompressed_chunk(&body)
}

fn write_sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return;
        }
    }
}

#[test]
fn a_run_claiming_billions_of_operations_is_refused_unread() {
    for ops in [1 << 40, i64::MAX, 100_001] {
        let bomb = rle_bomb(ops);
        assert!(bomb.len() < 64);
        let refused = decode_changes([&bomb[..]].into_iter(), &limits()).unwrap_err();
        assert_eq!(refused, IntakeError::TooManyOps(limits().max_change_ops), "{ops}");
    }
    let literal_bomb = {
        let mut chunk = rle_bomb(1);
        let at = chunk.len() - 2;
        chunk[at] = 0x40; // a literal run of 64 values with none following
        chunk
    };
    assert!(decode_changes([&literal_bomb[..]].into_iter(), &limits()).is_err());
}

#[test]
fn whole_documents_are_refused() {
    let mut doc = ListDoc::new("Mine").unwrap();
    let saved = doc.save();
    let refused = decode_changes([&saved[..]].into_iter(), &limits()).unwrap_err();
    assert_eq!(refused, IntakeError::NotAChange);
}

#[test]
fn a_chunk_whose_checksum_is_wrong_is_refused() {
    let change = real_changes().remove(1);
    let mut bytes = change.raw_bytes().to_vec();
    bytes[5] ^= 1;
    let refused = decode_changes([&bytes[..]].into_iter(), &limits()).unwrap_err();
    assert_eq!(refused, IntakeError::Malformed("bad checksum".into()));
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let change = real_changes().remove(1);
    let bytes = change.raw_bytes();
    for cut in [1, 5, 9, 12, bytes.len() / 2, bytes.len() - 1] {
        assert!(decode_changes([&bytes[..cut]].into_iter(), &limits()).is_err(), "cut {cut}");
    }
    for junk in
        [&b"\x85\x6f\x4a\x83\0\0\0\0\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"[..], b"xyz"]
    {
        assert!(decode_changes([junk].into_iter(), &limits()).is_err());
    }
}

fn message_with_bloom(bloom: &[u8]) -> Message {
    Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: vec![Have { last_sync: Vec::new(), bloom: bloom.try_into().unwrap() }],
        changes: Vec::<Vec<u8>>::new().into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
}

#[test]
fn bloom_filters_that_would_divide_by_zero_or_allocate_gigabytes_are_refused() {
    // One entry, zero bits per entry: no bits, so a probe is taken modulo zero.
    assert_eq!(check_message(&message_with_bloom(&[1, 0, 7])), Err(IntakeError::BadBloom));
    // Four billion probes per hash: Automerge reserves 16 GiB for them.
    let mut huge = vec![1, 10];
    write_uleb(&mut huge, u64::from(u32::MAX));
    huge.extend_from_slice(&[0xff, 0xff]);
    assert_eq!(check_message(&message_with_bloom(&huge)), Err(IntakeError::BadBloom));
    // What Automerge itself sends passes.
    let mut doc = ListDoc::new("x").unwrap();
    let mut state = automerge::sync::State::new();
    use automerge::sync::SyncDoc as _;
    let real = doc.automerge_mut().sync().generate_sync_message(&mut state).unwrap();
    check_message(&real).unwrap();
    assert!(check_message(&message_with_bloom(&[])).is_ok(), "an empty filter");
}

#[test]
fn messages_naming_too_many_hashes_are_refused() {
    let mut message = message_with_bloom(&[]);
    message.heads = vec![ChangeHash([7; 32]); MAX_HASHES + 1];
    assert_eq!(check_message(&message), Err(IntakeError::TooMany("heads")));
}
