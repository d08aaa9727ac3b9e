//! Coordination-free 53-bit ids of the Snowflake kind.
//!
//! Layout, high to low: 41 bits of milliseconds since [`EPOCH_MS`] (about 69 years), 5 bits of
//! node id (up to 32 server nodes), 7 bits of sequence (128 ids per millisecond per node). The
//! result is always positive and below 2^53, and ids from one node increase with time.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2025-01-01T00:00:00Z in Unix milliseconds: the zero of the timestamp field.
pub const EPOCH_MS: u64 = 1_735_689_600_000;
/// Bits given to the node id.
pub const NODE_BITS: u32 = 5;
/// Bits given to the per-millisecond sequence.
pub const SEQUENCE_BITS: u32 = 7;
/// The largest node id.
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;

/// A node id outside `0..=MAX_NODE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node id {0} is out of range: it must be between 0 and {MAX_NODE}")]
pub struct NodeOutOfRange(pub u64);

/// Makes unique ids for one node. Cheap to share between threads.
#[derive(Debug)]
pub struct Snowflake {
    node: u64,
    /// The last millisecond used and the next sequence number within it.
    state: Mutex<(u64, u64)>,
}

impl Snowflake {
    /// A generator for `node`, which must be unique among the nodes sharing one database.
    pub fn new(node: u64) -> Result<Self, NodeOutOfRange> {
        if node > u64::from(MAX_NODE) {
            return Err(NodeOutOfRange(node));
        }
        Ok(Self { node, state: Mutex::new((0, 0)) })
    }

    /// The next id. If the clock steps backwards, ids keep increasing from the last millisecond
    /// used rather than repeating; if 128 ids are taken within one millisecond, the generator
    /// moves on to the next millisecond.
    pub fn next_id(&self) -> u64 {
        let now = now_ms().saturating_sub(EPOCH_MS);
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last, seq) = *state;
        let (ms, seq) = if now > last {
            (now, 0)
        } else if seq <= MAX_SEQUENCE {
            (last, seq)
        } else {
            (last + 1, 0)
        };
        *state = (ms, seq + 1);
        (ms << (NODE_BITS + SEQUENCE_BITS)) | (self.node << SEQUENCE_BITS) | seq
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::id::MAX_ID;

    #[test]
    fn ids_are_unique_increasing_and_within_53_bits() {
        let ids = Snowflake::new(7).unwrap();
        let mut seen = HashSet::new();
        let mut last = 0;
        for _ in 0..10_000 {
            let id = ids.next_id();
            assert!(id > last, "ids must increase");
            assert!(id > 0 && id <= MAX_ID);
            assert!(seen.insert(id));
            last = id;
        }
    }

    #[test]
    fn nodes_never_collide() {
        let a = Snowflake::new(1).unwrap();
        let b = Snowflake::new(2).unwrap();
        let from_a: HashSet<u64> = (0..2_000).map(|_| a.next_id()).collect();
        assert!((0..2_000).map(|_| b.next_id()).all(|id| !from_a.contains(&id)));
    }

    #[test]
    fn node_ids_are_bounded() {
        assert!(Snowflake::new(u64::from(MAX_NODE)).is_ok());
        assert_eq!(Snowflake::new(32).unwrap_err(), NodeOutOfRange(32));
    }

    #[test]
    fn ids_stay_below_2_pow_53_until_2094() {
        // 41 bits of milliseconds after the epoch end in the year 2094.
        let last_ms = (1u64 << 41) - 1;
        let id = (last_ms << (NODE_BITS + SEQUENCE_BITS))
            | (u64::from(MAX_NODE) << SEQUENCE_BITS)
            | MAX_SEQUENCE;
        assert_eq!(id, MAX_ID);
    }
}
