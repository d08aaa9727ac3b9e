//! What a peer's sync message carries, decoded under limits before Automerge sees a byte of
//! it. Automerge trusts its input: it inflates compressed chunks without a bound, expands
//! run-length-encoded columns into as many operations as they claim, and sizes some buffers
//! from numbers on the wire (a Bloom filter's probe count becomes an allocation; a filter with
//! no bits divides by zero). So the room hands Automerge only what passed here:
//!
//! - [`check_message`]: the heads, needs and Bloom filters of a message are few and sane;
//! - [`decode_changes`]: every chunk is a change (a whole document from a peer is refused),
//!   compressed changes are inflated with a cap, each change's operations are counted from
//!   its action column before Automerge decodes them, and the message's decoded bytes and
//!   each change's operations are held to [`SyncLimits`].
//!
//! The chunk format is Automerge's binary format
//! (<https://alexjg.github.io/automerge-storage-docs/>): magic bytes, checksum, chunk type,
//! length, then for a change: dependencies, actor, sequence number, start op, time, message,
//! other actors, column metadata and the columns.

use std::io::Read as _;

use automerge::Change;
use automerge::sync::Message;
use sha2::{Digest as _, Sha256};

use crate::limits::SyncLimits;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED: u8 = 2;
const BUNDLE: u8 = 3;

/// The action column of a change (column id 4, unsigned-integer RLE, not deflated): one entry
/// per operation.
const ACTION_COLUMN: u32 = (4 << 4) | 2;

/// Most heads or needs one message may name (honest peers name a handful).
pub const MAX_HASHES: usize = 4096;
/// Most Bloom filters one message may carry (Automerge sends at most one).
pub const MAX_HAVES: usize = 4;
/// Most probes per hash a peer's Bloom filter may ask for (Automerge uses 7).
pub const MAX_BLOOM_PROBES: u64 = 64;
/// Most bits per entry a peer's Bloom filter may have (Automerge uses 10).
pub const MAX_BLOOM_BITS_PER_ENTRY: u64 = 64;

/// Why a message's contents were refused before Automerge saw them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Bytes that are not what they claim.
    #[error("malformed change: {0}")]
    Malformed(String),
    /// A document or bundle chunk: peers send changes.
    #[error("whole documents are not accepted; send changes")]
    NotAChange,
    /// More heads, needs or Bloom filters than any peer sends.
    #[error("the message names too many {0}")]
    TooMany(&'static str),
    /// A Bloom filter whose parameters would make checking it costly or impossible.
    #[error("the message's Bloom filter is malformed")]
    BadBloom,
    /// The changes inflate to more than the limit.
    #[error("the changes decode to more than {0} bytes")]
    TooLarge(usize),
    /// A change holds more operations than the limit.
    #[error("a change holds more than {0} operations")]
    TooManyOps(usize),
}

/// One change that passed [`decode_changes`].
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The change, as Automerge parsed it (from its uncompressed bytes).
    pub change: Change,
    /// Its operations, as counted from its action column.
    pub ops: usize,
}

impl Incoming {
    /// Its decoded size in bytes.
    pub fn bytes(&self) -> usize {
        self.change.raw_bytes().len()
    }
}

/// Checks the parts of a message other than its changes.
pub fn check_message(message: &Message) -> Result<(), IntakeError> {
    if message.heads.len() > MAX_HASHES {
        return Err(IntakeError::TooMany("heads"));
    }
    if message.need.len() > MAX_HASHES {
        return Err(IntakeError::TooMany("needs"));
    }
    if message.have.len() > MAX_HAVES {
        return Err(IntakeError::TooMany("Bloom filters"));
    }
    for have in &message.have {
        if have.last_sync.len() > MAX_HASHES {
            return Err(IntakeError::TooMany("heads"));
        }
        check_bloom(&have.bloom.to_bytes())?;
    }
    // Automerge writes hash lists sorted, without repeats, and asserts as much when it
    // echoes a peer's list back.
    let sorted = |hashes: &[automerge::ChangeHash]| hashes.windows(2).all(|w| w[0] < w[1]);
    let lists = [&message.heads, &message.need]
        .into_iter()
        .chain(message.have.iter().map(|h| &h.last_sync));
    if !lists.into_iter().all(|l| sorted(l)) {
        return Err(IntakeError::Malformed("hash lists must be sorted, without repeats".into()));
    }
    Ok(())
}

/// A Bloom filter as encoded: empty (no entries), or entries, bits per entry, probes, bits.
fn check_bloom(encoded: &[u8]) -> Result<(), IntakeError> {
    if encoded.is_empty() {
        return Ok(());
    }
    let mut r = Reader(encoded);
    let bad = |_| IntakeError::BadBloom;
    let entries = r.uleb().map_err(bad)?;
    let bits_per_entry = r.uleb().map_err(bad)?;
    let probes = r.uleb().map_err(bad)?;
    let sane = entries > 0
        && (1..=MAX_BLOOM_BITS_PER_ENTRY).contains(&bits_per_entry)
        && (1..=MAX_BLOOM_PROBES).contains(&probes)
        && !r.0.is_empty();
    if sane { Ok(()) } else { Err(IntakeError::BadBloom) }
}

/// Decodes the changes of a message (each entry of its chunk list may hold several chunks
/// back to back), inflating compressed ones, within `limits`.
pub fn decode_changes<'a>(
    chunks: impl Iterator<Item = &'a [u8]>,
    limits: &SyncLimits,
) -> Result<Vec<Incoming>, IntakeError> {
    let mut out = Vec::new();
    let mut decoded = 0usize;
    for entry in chunks {
        let mut rest = entry;
        while !rest.is_empty() {
            let chunk = Chunk::split(&mut rest)?;
            let bytes = match chunk.kind {
                CHANGE => chunk.whole.to_vec(),
                COMPRESSED => {
                    let budget = limits.max_decoded_message_bytes.saturating_sub(decoded);
                    uncompressed_chunk(&inflate(chunk.data, budget)?)
                }
                DOCUMENT | BUNDLE => return Err(IntakeError::NotAChange),
                other => return Err(IntakeError::Malformed(format!("chunk type {other}"))),
            };
            // Automerge skips a chunk whose checksum is wrong without a word; refuse it here,
            // so that what is accepted is what gets applied. (A compressed chunk carries the
            // checksum of the change it inflates to.)
            if checksum(&bytes[header_len(&bytes)?..]) != chunk.checksum {
                return Err(IntakeError::Malformed("bad checksum".into()));
            }
            decoded = decoded.saturating_add(bytes.len());
            if decoded > limits.max_decoded_message_bytes {
                return Err(IntakeError::TooLarge(limits.max_decoded_message_bytes));
            }
            let ops = count_ops(&bytes[header_len(&bytes)?..], limits.max_change_ops)?;
            let change = Change::from_bytes(bytes).map_err(|e| malformed(&e))?;
            if change.len() != ops {
                return Err(IntakeError::Malformed("operation columns disagree".into()));
            }
            out.push(Incoming { change, ops });
        }
    }
    Ok(out)
}

fn malformed(e: &dyn std::fmt::Display) -> IntakeError {
    IntakeError::Malformed(e.to_string())
}

/// One chunk's header fields and bytes.
struct Chunk<'a> {
    checksum: [u8; 4],
    kind: u8,
    /// The chunk's data (after the header).
    data: &'a [u8],
    /// The whole chunk, header included.
    whole: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// Splits the first chunk off `rest`.
    fn split(rest: &mut &'a [u8]) -> Result<Self, IntakeError> {
        let start = *rest;
        let mut r = Reader(start);
        if r.take(4)? != MAGIC {
            return Err(IntakeError::Malformed("bad magic bytes".into()));
        }
        let checksum = r.take(4)?.try_into().expect("four bytes");
        let kind = r.take(1)?[0];
        let len = usize::try_from(r.uleb()?).map_err(|_| truncated())?;
        let header = start.len() - r.0.len();
        let data = r.take(len)?;
        *rest = r.0;
        Ok(Self { checksum, kind, data, whole: &start[..header + len] })
    }
}

/// The length of a chunk's header.
fn header_len(chunk: &[u8]) -> Result<usize, IntakeError> {
    let mut r = Reader(chunk);
    r.take(9)?;
    r.uleb()?;
    Ok(chunk.len() - r.0.len())
}

/// Inflates a compressed change's data, refusing to go beyond `budget` bytes.
fn inflate(data: &[u8], budget: usize) -> Result<Vec<u8>, IntakeError> {
    let mut out = Vec::new();
    let limit = u64::try_from(budget).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::DeflateDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| malformed(&e))?;
    if out.len() > budget {
        return Err(IntakeError::TooLarge(budget));
    }
    Ok(out)
}

/// The checksum of a change chunk holding `data`: the start of its hash, which Automerge
/// computes over the chunk type, the data's length and the data.
fn checksum(data: &[u8]) -> [u8; 4] {
    let mut len = Vec::with_capacity(10);
    write_uleb(&mut len, data.len() as u64);
    let hash =
        Sha256::new().chain_update([CHANGE]).chain_update(&len).chain_update(data).finalize();
    [hash[0], hash[1], hash[2], hash[3]]
}

/// An uncompressed change chunk holding `data`, under the checksum of the uncompressed change,
/// as Automerge computes it for a compressed one.
fn uncompressed_chunk(data: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(19 + data.len());
    chunk.extend_from_slice(&MAGIC);
    chunk.extend_from_slice(&checksum(data));
    chunk.push(CHANGE);
    write_uleb(&mut chunk, data.len() as u64);
    chunk.extend_from_slice(data);
    chunk
}

/// Counts the operations of a change from its body (the chunk after its header): the
/// entries of its action column, read run by run without decoding the runs. Refuses more than
/// `max`.
fn count_ops(body: &[u8], max: usize) -> Result<usize, IntakeError> {
    let mut r = Reader(body);
    let deps = r.uleb()?;
    for _ in 0..deps {
        r.take(32)?;
    }
    r.bytes()?; // actor
    r.uleb()?; // seq
    r.uleb()?; // start op
    r.sleb()?; // time
    r.bytes()?; // message
    let others = r.uleb()?;
    for _ in 0..others {
        r.bytes()?;
    }
    let columns = r.uleb()?;
    let mut specs = Vec::new();
    for _ in 0..columns {
        let spec = u32::try_from(r.uleb()?).map_err(|_| truncated())?;
        let len = usize::try_from(r.uleb()?).map_err(|_| truncated())?;
        specs.push((spec, len));
    }
    let mut ops = 0;
    for (spec, len) in specs {
        let data = r.take(len)?;
        if spec == ACTION_COLUMN {
            ops = count_rle(data, max)?;
        }
    }
    Ok(ops)
}

/// Counts the entries of an unsigned-integer RLE column: runs (a positive count and one
/// value), literals (a negative count and that many values) and null runs (zero and a count).
fn count_rle(column: &[u8], max: usize) -> Result<usize, IntakeError> {
    let mut r = Reader(column);
    let mut count: u64 = 0;
    while !r.0.is_empty() {
        let n = r.sleb()?;
        let entries = if n > 0 {
            r.uleb()?;
            n.unsigned_abs()
        } else if n < 0 {
            let literals = n.unsigned_abs();
            if literals > max as u64 {
                return Err(IntakeError::TooManyOps(max));
            }
            for _ in 0..literals {
                r.uleb()?;
            }
            literals
        } else {
            r.uleb()?
        };
        count = count.saturating_add(entries);
        if count > max as u64 {
            return Err(IntakeError::TooManyOps(max));
        }
    }
    Ok(count as usize)
}

fn truncated() -> IntakeError {
    IntakeError::Malformed("truncated or oversized field".into())
}

/// A cursor over bytes, every read checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IntakeError> {
        if n > self.0.len() {
            return Err(truncated());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    /// A length-prefixed byte string.
    fn bytes(&mut self) -> Result<&'a [u8], IntakeError> {
        let len = usize::try_from(self.uleb()?).map_err(|_| truncated())?;
        self.take(len)
    }

    fn uleb(&mut self) -> Result<u64, IntakeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            let part = u64::from(byte & 0x7f);
            if shift == 63 && part > 1 {
                return Err(truncated());
            }
            value |= part << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(truncated())
    }

    fn sleb(&mut self) -> Result<i64, IntakeError> {
        let mut value: i64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.take(1)?[0];
            if shift == 63 && byte != 0 && byte != 0x7f {
                return Err(truncated());
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1 << shift;
                }
                return Ok(value);
            }
            if shift >= 64 {
                return Err(truncated());
            }
        }
    }
}

fn write_uleb(out: &mut Vec<u8>, mut value: u64) {
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

#[cfg(test)]
mod tests;
