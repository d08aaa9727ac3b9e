//! Just enough of the Automerge binary format to mutate what a peer sends *inside* it.
//!
//! Every chunk carries a checksum (the first 4 bytes of a SHA-256 over its type, length and
//! data), so a random bit flip is almost always refused at the door and never reaches the
//! column decoders behind it. This module splits a sync message's chunks into header and
//! data, a change chunk's data into its fields and op columns, and writes them back with a
//! correct checksum, so that mutations of the inner fields (run lengths, counts, actors,
//! sequence numbers) get as far as a real peer's bytes would. It also writes compressed
//! change chunks (chunk type 2, raw deflate), the form Automerge inflates without a bound.
//!
//! Layout (see the storage docs linked from the README, and `automerge/src/storage/`):
//! `magic(4) checksum(4) type(1) uleb(len) data(len)`; a change's data is
//! `uleb(n) hash(32)*n uleb(len) actor uleb(seq) uleb(start_op) sleb(time) uleb(len) message
//! uleb(n) (uleb(len) actor)*n uleb(ncols) (uleb(spec) uleb(len))*ncols columns... extra`.

use std::io::{Read as _, Write as _};

use flate2::Compression;
use sha2::{Digest, Sha256};

/// The 4 bytes every Automerge chunk starts with.
pub const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// One change.
pub const CHANGE: u8 = 1;
/// One change, deflated; the checksum is the one of the inflated change.
pub const COMPRESSED: u8 = 2;

/// Appends `value` as unsigned LEB128.
pub fn put_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `value` as signed LEB128.
pub fn put_sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads unsigned LEB128 at `*at`, moving past it.
pub fn get_uleb(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Reads signed LEB128 at `*at`, moving past it.
pub fn get_sleb(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value = 0i64;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(*at)?;
        *at += 1;
        if shift < 64 {
            value |= i64::from(byte & 0x7f) << shift;
        }
        shift += 7;
        if byte & 0x80 == 0 {
            if shift < 64 && byte & 0x40 != 0 {
                value |= -1i64 << shift;
            }
            return Some(value);
        }
        if shift > 70 {
            return None;
        }
    }
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(n)?;
    let slice = bytes.get(*at..end)?;
    *at = end;
    Some(slice)
}

/// The checksum Automerge expects for a chunk of `chunk_type` holding `data`.
pub fn checksum(chunk_type: u8, data: &[u8]) -> [u8; 4] {
    let mut header = vec![chunk_type];
    put_uleb(&mut header, data.len() as u64);
    let digest = Sha256::new().chain_update(&header).chain_update(data).finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// One chunk, split at its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// As found (a mutation may keep a stale one on purpose).
    pub checksum: [u8; 4],
    /// 0 document, 1 change, 2 compressed change, 3 bundle; anything else is refused.
    pub chunk_type: u8,
    /// What follows the header.
    pub data: Vec<u8>,
}

impl Chunk {
    /// A chunk of `chunk_type` around `data`, with the right checksum.
    pub fn new(chunk_type: u8, data: Vec<u8>) -> Self {
        Self { checksum: checksum(chunk_type, &data), chunk_type, data }
    }

    /// Reads one chunk at `*at`.
    pub fn parse(bytes: &[u8], at: &mut usize) -> Option<Self> {
        if take(bytes, at, 4)? != MAGIC {
            return None;
        }
        let checksum = take(bytes, at, 4)?.try_into().ok()?;
        let chunk_type = *take(bytes, at, 1)?.first()?;
        let len = usize::try_from(get_uleb(bytes, at)?).ok()?;
        let data = take(bytes, at, len)?.to_vec();
        Some(Self { checksum, chunk_type, data })
    }

    /// All the chunks of `bytes`, if it is nothing but chunks.
    pub fn parse_all(bytes: &[u8]) -> Option<Vec<Self>> {
        let mut at = 0;
        let mut chunks = Vec::new();
        while at < bytes.len() {
            chunks.push(Self::parse(bytes, &mut at)?);
        }
        Some(chunks)
    }

    /// The chunk's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend(self.checksum);
        out.push(self.chunk_type);
        put_uleb(&mut out, self.data.len() as u64);
        out.extend(&self.data);
        out
    }

    /// The same chunk with the checksum its data calls for.
    pub fn fix_checksum(&mut self) {
        self.checksum = checksum(self.chunk_type, &self.data);
    }

    /// A change chunk as Automerge compresses it: the change's own checksum, the data deflated.
    pub fn compressed(&self) -> Self {
        Self { checksum: self.checksum, chunk_type: COMPRESSED, data: deflate(&self.data) }
    }

    /// A compressed chunk inflated back into a change chunk, if it inflates.
    pub fn inflated(&self) -> Option<Self> {
        let mut data = Vec::new();
        flate2::read::DeflateDecoder::new(&self.data[..]).read_to_end(&mut data).ok()?;
        Some(Self { checksum: self.checksum, chunk_type: CHANGE, data })
    }
}

/// Raw deflate, as Automerge writes it.
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

/// A change chunk's data, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The hashes of the changes it depends on.
    pub deps: Vec<[u8; 32]>,
    /// Its author's actor id.
    pub actor: Vec<u8>,
    /// Its sequence number for that actor.
    pub seq: u64,
    /// The counter of its first operation.
    pub start_op: u64,
    /// Milliseconds since the epoch.
    pub time: i64,
    /// The commit message.
    pub message: Vec<u8>,
    /// Other actors its ops refer to.
    pub other_actors: Vec<Vec<u8>>,
    /// `(spec, data)` per op column: spec = column id << 4 | deflate bit (8) | type.
    pub columns: Vec<(u32, Vec<u8>)>,
    /// Bytes after the columns (ignored by readers of this version).
    pub extra: Vec<u8>,
}

impl Change {
    /// Splits a change chunk's data.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let at = &mut 0;
        let deps = (0..get_uleb(data, at)?)
            .map(|_| take(data, at, 32)?.try_into().ok())
            .collect::<Option<Vec<[u8; 32]>>>()?;
        let actor_len = usize::try_from(get_uleb(data, at)?).ok()?;
        let actor = take(data, at, actor_len)?.to_vec();
        let seq = get_uleb(data, at)?;
        let start_op = get_uleb(data, at)?;
        let time = get_sleb(data, at)?;
        let message_len = usize::try_from(get_uleb(data, at)?).ok()?;
        let message = take(data, at, message_len)?.to_vec();
        let other_actors = (0..get_uleb(data, at)?)
            .map(|_| {
                let len = usize::try_from(get_uleb(data, at)?).ok()?;
                Some(take(data, at, len)?.to_vec())
            })
            .collect::<Option<Vec<_>>>()?;
        let specs = (0..get_uleb(data, at)?)
            .map(|_| Some((u32::try_from(get_uleb(data, at)?).ok()?, get_uleb(data, at)?)))
            .collect::<Option<Vec<_>>>()?;
        let mut columns = Vec::with_capacity(specs.len());
        for (spec, len) in specs {
            columns.push((spec, take(data, at, usize::try_from(len).ok()?)?.to_vec()));
        }
        let extra = data[*at..].to_vec();
        Some(Self { deps, actor, seq, start_op, time, message, other_actors, columns, extra })
    }

    /// The chunk data again (column lengths recomputed from the columns).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_uleb(&mut out, self.deps.len() as u64);
        for dep in &self.deps {
            out.extend(dep);
        }
        put_uleb(&mut out, self.actor.len() as u64);
        out.extend(&self.actor);
        put_uleb(&mut out, self.seq);
        put_uleb(&mut out, self.start_op);
        put_sleb(&mut out, self.time);
        put_uleb(&mut out, self.message.len() as u64);
        out.extend(&self.message);
        put_uleb(&mut out, self.other_actors.len() as u64);
        for actor in &self.other_actors {
            put_uleb(&mut out, actor.len() as u64);
            out.extend(actor);
        }
        put_uleb(&mut out, self.columns.len() as u64);
        for (spec, data) in &self.columns {
            put_uleb(&mut out, u64::from(*spec));
            put_uleb(&mut out, data.len() as u64);
        }
        for (_, data) in &self.columns {
            out.extend(data);
        }
        out.extend(&self.extra);
        out
    }

    /// A change chunk holding this change, with its checksum.
    pub fn to_chunk(&self) -> Chunk {
        Chunk::new(CHANGE, self.encode())
    }

    /// The hash other changes name this one by.
    pub fn hash(&self) -> [u8; 32] {
        let data = self.encode();
        let mut header = vec![CHANGE];
        put_uleb(&mut header, data.len() as u64);
        Sha256::new().chain_update(&header).chain_update(&data).finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use tandem_protocol::automerge::sync::Message;
    use tandem_protocol::{ItemId, ListDoc};

    use super::*;

    #[test]
    fn leb128_round_trips() {
        for v in [0u64, 1, 63, 64, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            put_uleb(&mut out, v);
            assert_eq!(get_uleb(&out, &mut 0), Some(v));
        }
        for v in [0i64, 1, -1, 63, -64, 64, -65, 1 << 40, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_sleb(&mut out, v);
            assert_eq!(get_sleb(&out, &mut 0), Some(v), "{v}");
        }
    }

    /// The codec reads real changes and writes them back byte for byte, and Automerge takes
    /// what it writes (so a mutation through it reaches past the checksum).
    #[test]
    fn real_changes_round_trip_and_load() {
        let mut doc = ListDoc::new("Codec").unwrap();
        doc.add_item(ItemId(1), "milk").unwrap();
        for change in doc.automerge_mut().get_changes(&[]) {
            let raw = change.raw_bytes().to_vec();
            let chunk = Chunk::parse_all(&raw).unwrap().pop().unwrap();
            assert_eq!(chunk.encode(), raw);
            let parsed = Change::parse(&chunk.data).unwrap();
            assert_eq!(parsed.encode(), chunk.data);
            assert_eq!(parsed.hash(), change.hash().0);
            assert_eq!(parsed.to_chunk().encode(), raw);
        }
        let mut copy = ListDoc::empty();
        let changes: Vec<Vec<u8>> = doc
            .automerge_mut()
            .get_changes(&[])
            .iter()
            .map(|c| Chunk::parse_all(c.raw_bytes()).unwrap()[0].compressed().encode())
            .collect();
        copy.load_incremental(&changes.concat()).unwrap();
        assert_eq!(copy.heads(), doc.heads(), "compressed changes load");
        assert!(Message::decode(&[]).is_err());
    }
}
