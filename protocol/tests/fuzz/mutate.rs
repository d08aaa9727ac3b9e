//! Mutations, from blind to structure-aware, each reachable from every seed:
//!
//! - bytes: bit flips, interesting bytes, insertions, deletions, duplicated ranges,
//!   truncation, splices from other seeds, LEB128 numbers (lengths, counts, run lengths)
//!   replaced by boundary values, CBOR headers that claim huge or endless lengths;
//! - sync messages (decoded and encoded again): heads, needs and haves made up, multiplied or
//!   cleared; changes dropped, duplicated, reordered, taken from other messages, split or
//!   joined into one chunk, or mutated as chunks;
//! - chunks (through [`crate::chunk`], checksum fixed so the mutation gets inside): a change's
//!   dependencies, actor, sequence number, first op, time, message and each op column (its
//!   LEB128 run lengths and values, its bytes, its spec), then optionally deflated into a
//!   compressed chunk; a document chunk's bytes;
//! - frames: the list id, and the sync payload as above.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_bytes::ByteBuf;
use tandem_protocol::ListId;
use tandem_protocol::automerge::ChangeHash;
use tandem_protocol::automerge::sync::{
    BloomFilter, ChunkList, Have, Message, MessageFlags, MessageVersion,
};
use tandem_protocol::wire::ClientMessage;

use crate::chunk::{self, CHANGE, COMPRESSED, Chunk, get_sleb, get_uleb, put_sleb, put_uleb};
use crate::targets::Case;

/// Byte strings that other mutations splice in: every message, frame and chunk of the seeds.
pub struct Donors {
    /// Encoded sync messages.
    pub messages: Vec<Vec<u8>>,
    /// Single chunks (changes, compressed changes, documents).
    pub chunks: Vec<Vec<u8>>,
}

const INTERESTING_U64: [u64; 18] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    1_000,
    0xffff,
    1 << 20,
    1 << 24,
    (1 << 31) - 1,
    1 << 32,
    u32::MAX as u64,
    1 << 53,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX,
];

const INTERESTING_I64: [i64; 12] =
    [0, 1, -1, -2, 2, 127, -128, 1 << 20, -(1 << 20), 1 << 40, i64::MIN, i64::MAX];

fn interesting_u64(rng: &mut StdRng, old: u64) -> u64 {
    match rng.gen_range(0..4) {
        0 => old.wrapping_add(rng.gen_range(1..4)),
        1 => old.wrapping_sub(rng.gen_range(1..4)),
        2 => old.saturating_mul(rng.gen_range(2..10_000)),
        _ => *INTERESTING_U64.choose(rng).unwrap(),
    }
}

fn interesting_i64(rng: &mut StdRng, old: i64) -> i64 {
    match rng.gen_range(0..4) {
        0 => old.wrapping_add(rng.gen_range(1..4)),
        1 => old.wrapping_neg(),
        2 => old.saturating_mul(rng.gen_range(2..100_000)),
        _ => *INTERESTING_I64.choose(rng).unwrap(),
    }
}

/// Replaces the LEB128 number at a random place with a boundary value (signed or not).
pub fn leb(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        put_uleb(bytes, *INTERESTING_U64.choose(rng).unwrap());
        return;
    }
    // A number starts after a byte without the continuation bit.
    let starts: Vec<usize> =
        (0..bytes.len()).filter(|&i| i == 0 || bytes[i - 1] & 0x80 == 0).collect();
    let start = *starts.choose(rng).unwrap();
    let mut end = start;
    let mut replacement = Vec::new();
    if rng.gen_bool(0.5) {
        let Some(old) = get_uleb(bytes, &mut end) else { return };
        put_uleb(&mut replacement, interesting_u64(rng, old));
    } else {
        let Some(old) = get_sleb(bytes, &mut end) else { return };
        put_sleb(&mut replacement, interesting_i64(rng, old));
    }
    bytes.splice(start..end, replacement);
}

/// Blind byte mutations, 1 to 4 stacked.
pub fn havoc(rng: &mut StdRng, bytes: &mut Vec<u8>, donors: &Donors) {
    for _ in 0..rng.gen_range(1..=4) {
        let len = bytes.len();
        match rng.gen_range(0..11) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                bytes[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                bytes[i] = *[0, 1, 0x7f, 0x80, 0xff, 0x40, 0x3f].choose(rng).unwrap();
            }
            2 if len > 0 => {
                let i = rng.gen_range(0..len);
                bytes[i] = rng.r#gen();
            }
            3 => {
                let at = rng.gen_range(0..=len);
                let n = rng.gen_range(1..=16);
                let insert: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
                bytes.splice(at..at, insert);
            }
            4 if len > 0 => {
                let at = rng.gen_range(0..len);
                let end = (at + rng.gen_range(1..=32)).min(len);
                bytes.drain(at..end);
            }
            5 if len > 0 => {
                let at = rng.gen_range(0..len);
                let end = (at + rng.gen_range(1..=64)).min(len);
                let copy = bytes[at..end].to_vec();
                let to = rng.gen_range(0..=len);
                bytes.splice(to..to, copy);
            }
            6 if len > 0 => bytes.truncate(rng.gen_range(0..len)),
            7 => {
                let donor = donors.messages.choose(rng).or(donors.chunks.first()).cloned();
                if let Some(donor) = donor.filter(|d| !d.is_empty()) {
                    let from = rng.gen_range(0..donor.len());
                    let to = rng.gen_range(from..=donor.len());
                    let at = rng.gen_range(0..=len);
                    bytes.splice(at..at, donor[from..to].iter().copied());
                }
            }
            8 => cbor(rng, bytes),
            _ => leb(rng, bytes),
        }
    }
}

/// CBOR headers that claim much (a byte string or array of 2^62 elements), never end
/// (indefinite lengths), or nest deeply.
fn cbor(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    let at = rng.gen_range(0..=bytes.len());
    let insert: Vec<u8> = match rng.gen_range(0..6) {
        0 => vec![0x5b, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        1 => vec![0x9b, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        2 => vec![0x5a, 0x7f, 0xff, 0xff, 0xff],
        3 => vec![0x5f, 0x41, 0x00],
        4 => vec![0x81; rng.gen_range(10..2_000)],
        _ => vec![0xbf; rng.gen_range(1..300)],
    };
    bytes.splice(at..at, insert);
}

fn random_hash(rng: &mut StdRng) -> ChangeHash {
    ChangeHash(rng.r#gen())
}

/// A sync message mutated; blind mutations if it does not decode.
pub fn sync_message(rng: &mut StdRng, data: &[u8], donors: &Donors) -> Vec<u8> {
    let Ok(mut message) = Message::decode(data) else {
        let mut bytes = data.to_vec();
        havoc(rng, &mut bytes, donors);
        return bytes;
    };
    let mut changes: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
    match rng.gen_range(0..16) {
        0 => {
            let hashes = if rng.gen_bool(0.5) { &mut message.heads } else { &mut message.need };
            match rng.gen_range(0..4) {
                0 => hashes.clear(),
                1 => hashes.push(random_hash(rng)),
                2 => {
                    let n = *[2, 50, 5_000].choose(rng).unwrap();
                    let h = hashes.first().copied().unwrap_or_else(|| random_hash(rng));
                    hashes.extend(std::iter::repeat_n(h, n));
                }
                _ => hashes.extend((0..rng.gen_range(1..200)).map(|_| random_hash(rng))),
            }
        }
        1 => {
            let n = rng.gen_range(0..3);
            let hashes: Vec<ChangeHash> =
                (0..rng.gen_range(0..50)).map(|_| random_hash(rng)).collect();
            let bloom = BloomFilter::from_hashes(hashes.iter());
            message.have = (0..n)
                .map(|_| Have { last_sync: vec![random_hash(rng)], bloom: bloom.clone() })
                .collect();
        }
        2 if !changes.is_empty() => {
            changes.remove(rng.gen_range(0..changes.len()));
        }
        3 if !changes.is_empty() => {
            let c = changes.choose(rng).unwrap().clone();
            let n = *[1, 2, 20].choose(rng).unwrap();
            changes.extend(std::iter::repeat_n(c, n));
        }
        4 => changes.shuffle(rng),
        5 => {
            if let Some(donor) = donors.chunks.choose(rng) {
                let at = rng.gen_range(0..=changes.len());
                changes.insert(at, donor.clone());
            }
        }
        6 if changes.len() > 1 => changes = vec![changes.concat()],
        7 => {
            let joined = changes.concat();
            changes = Chunk::parse_all(&joined)
                .map(|cs| cs.iter().map(Chunk::encode).collect())
                .unwrap_or(vec![joined]);
        }
        8..=12 if !changes.is_empty() => {
            let i = rng.gen_range(0..changes.len());
            changes[i] = chunks(rng, &changes[i], donors);
        }
        13 => {
            let mut m = Message::decode(donors.messages.choose(rng).unwrap()).unwrap();
            std::mem::swap(&mut m.heads, &mut message.heads);
        }
        _ => {
            let mut bytes = data.to_vec();
            havoc(rng, &mut bytes, donors);
            return bytes;
        }
    }
    message.changes = ChunkList::from(changes);
    encode_message(&message)
}

/// `Message::encode` without its (debug) assertion that hashes are sorted: a peer's bytes
/// need not be.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut out = vec![if m.version == MessageVersion::V1 { 0x42 } else { 0x43 }];
    let hashes = |out: &mut Vec<u8>, hashes: &[ChangeHash]| {
        put_uleb(out, hashes.len() as u64);
        for h in hashes {
            out.extend(h.0);
        }
    };
    hashes(&mut out, &m.heads);
    hashes(&mut out, &m.need);
    put_uleb(&mut out, m.have.len() as u64);
    for have in &m.have {
        hashes(&mut out, &have.last_sync);
        let bloom = have.bloom.to_bytes();
        put_uleb(&mut out, bloom.len() as u64);
        out.extend(bloom);
    }
    put_uleb(&mut out, m.changes.len() as u64);
    for change in m.changes.iter() {
        put_uleb(&mut out, change.len() as u64);
        out.extend(change);
    }
    if let Some(flags) = m.flags {
        let bits =
            [MessageFlags::SYNC_RESET, MessageFlags::READ_ONLY, MessageFlags::SUPPORTS_SYNC_RESET]
                .into_iter()
                .filter(|f| flags.contains(*f))
                .fold(0, |acc, f| acc | f);
        out.extend([2, 0x02, 0x80 | bits]);
    }
    out
}

/// Bytes made of chunks, one of them mutated through the codec; blind mutations otherwise.
pub fn chunks(rng: &mut StdRng, bytes: &[u8], donors: &Donors) -> Vec<u8> {
    let Some(mut parsed) = Chunk::parse_all(bytes).filter(|c| !c.is_empty()) else {
        let mut bytes = bytes.to_vec();
        havoc(rng, &mut bytes, donors);
        return bytes;
    };
    let i = rng.gen_range(0..parsed.len());
    match rng.gen_range(0..10) {
        0 => {
            let copy = parsed[i].clone();
            parsed.insert(rng.gen_range(0..=parsed.len()), copy);
        }
        1 => parsed.shuffle(rng),
        _ => chunk(rng, &mut parsed[i], donors),
    }
    parsed.iter().flat_map(Chunk::encode).collect()
}

/// One chunk mutated inside; its checksum fixed nine times in ten.
pub fn chunk(rng: &mut StdRng, c: &mut Chunk, donors: &Donors) {
    let was_compressed = c.chunk_type == COMPRESSED;
    if was_compressed && let Some(inflated) = c.inflated() {
        *c = inflated;
    }
    if c.chunk_type == CHANGE
        && let Some(mut change) = chunk::Change::parse(&c.data)
    {
        change_fields(rng, &mut change, donors);
        *c = change.to_chunk();
        if was_compressed || rng.gen_bool(0.2) {
            *c = c.compressed();
        }
    } else {
        match rng.gen_range(0..4) {
            0 => c.chunk_type = rng.gen_range(0..6),
            1 => leb(rng, &mut c.data),
            _ => havoc(rng, &mut c.data, donors),
        }
        c.fix_checksum();
    }
    if rng.gen_bool(0.1) {
        c.checksum = rng.r#gen();
    }
}

fn donor_change(rng: &mut StdRng, donors: &Donors) -> Option<chunk::Change> {
    let bytes = donors.chunks.choose(rng)?;
    let c = Chunk::parse_all(bytes)?.pop()?;
    let c = if c.chunk_type == COMPRESSED { c.inflated()? } else { c };
    chunk::Change::parse(&c.data)
}

fn change_fields(rng: &mut StdRng, change: &mut chunk::Change, donors: &Donors) {
    match rng.gen_range(0..14) {
        0 => match rng.gen_range(0..4) {
            0 => change.deps.clear(),
            1 => change.deps.push(rng.r#gen()),
            2 => change.deps.extend(change.deps.clone()),
            _ => {
                if let Some(d) = donor_change(rng, donors) {
                    change.deps.push(d.hash());
                }
            }
        },
        1 => match rng.gen_range(0..3) {
            0 => change.actor = (0..rng.gen_range(0..40)).map(|_| rng.r#gen()).collect(),
            1 => change.actor.clear(),
            _ => {
                if let Some(d) = donor_change(rng, donors) {
                    change.actor = d.actor;
                }
            }
        },
        2 => change.seq = interesting_u64(rng, change.seq),
        3 => change.start_op = interesting_u64(rng, change.start_op),
        4 => change.time = interesting_i64(rng, change.time),
        5 => change.message = vec![b'x'; *[1, 300, 70_000].choose(rng).unwrap()],
        6 => match rng.gen_range(0..3) {
            0 => change.other_actors.push(change.actor.clone()),
            1 => change.other_actors.clear(),
            _ => change.other_actors.push((0..16).map(|_| rng.r#gen()).collect()),
        },
        7 => change.extra.extend((0..rng.gen_range(1..20)).map(|_| rng.r#gen::<u8>())),
        8 if !change.columns.is_empty() => {
            let i = rng.gen_range(0..change.columns.len());
            match rng.gen_range(0..4) {
                0 => {
                    change.columns.remove(i);
                }
                1 => change.columns[i].0 ^= 1 << rng.gen_range(0..8),
                2 => {
                    let copy = change.columns[i].clone();
                    change.columns.insert(i, copy);
                }
                _ => change.columns[i].0 = rng.gen_range(0..200),
            }
        }
        9..=11 if !change.columns.is_empty() => {
            let column = &mut change.columns.choose_mut(rng).unwrap().1;
            leb(rng, column);
        }
        _ if !change.columns.is_empty() => {
            let column = &mut change.columns.choose_mut(rng).unwrap().1;
            havoc(rng, column, donors);
        }
        _ => {
            if let Some(d) = donor_change(rng, donors) {
                change.columns = d.columns;
            }
        }
    }
}

/// A client frame mutated: the list id, or the sync payload, or blind.
pub fn client_frame(rng: &mut StdRng, frame: &[u8], donors: &Donors) -> Vec<u8> {
    match ClientMessage::decode(frame) {
        Ok(ClientMessage::Sync { list, data }) if rng.gen_bool(0.6) => {
            let (list, data) = if rng.gen_bool(0.2) {
                (ListId(interesting_u64(rng, list.0)), data)
            } else {
                (list, sync_message(rng, &data, donors))
            };
            ClientMessage::Sync { list, data }.encode()
        }
        _ => {
            let mut bytes = frame.to_vec();
            havoc(rng, &mut bytes, donors);
            bytes
        }
    }
}

/// A case mutated, for its target.
pub fn case(rng: &mut StdRng, case: &Case, donors: &Donors) -> Case {
    let bytes = |b: Vec<u8>| ByteBuf::from(b);
    match case {
        Case::ClientFrame(f) => Case::ClientFrame(bytes(client_frame(rng, f, donors))),
        Case::ServerFrame(f) => {
            let mut f = f.to_vec();
            havoc(rng, &mut f, donors);
            Case::ServerFrame(bytes(f))
        }
        Case::Load(b) => {
            let mut b = chunks(rng, b, donors);
            if rng.gen_bool(0.1) {
                b.extend(donors.chunks.choose(rng).unwrap());
            }
            Case::Load(bytes(b))
        }
        Case::LoadIncremental { base, data } => {
            let data = if rng.gen_bool(0.5) {
                chunks(rng, data, donors)
            } else {
                let message = Message::decode(donors.messages.choose(rng).unwrap()).unwrap();
                let mut joined: Vec<u8> = message.changes.iter().flatten().copied().collect();
                joined.extend(chunks(rng, data, donors));
                joined
            };
            Case::LoadIncremental { base: base.clone(), data: bytes(data) }
        }
        Case::Room { base, peers, prefix, peer, data } => {
            let mut peer = *peer;
            let data = match rng.gen_range(0..10) {
                // Another member (a viewer, say) sends the same message.
                0 => {
                    peer = peers.choose(rng).map_or(peer, |(p, _)| *p);
                    data.to_vec()
                }
                // A message delivered twice, or out of order.
                1 => prefix.choose(rng).map_or_else(|| data.to_vec(), |(_, m)| m.to_vec()),
                _ => sync_message(rng, data, donors),
            };
            Case::Room {
                base: base.clone(),
                peers: peers.clone(),
                prefix: prefix.clone(),
                peer,
                data: bytes(data),
            }
        }
    }
}
