//! The display position of an item: a fractional-index string.
//!
//! A `SortRank` is the string form of a [`fractional_index::FractionalIndex`]: lower-case hex
//! of bytes that end with the terminator byte `0x80`. Comparing two ranks as plain strings
//! (Rust `Ord`, SQL `ORDER BY sort_rank`) gives the same order as comparing the indexes, so the
//! server's `todo_items` rows sort exactly like the document. Between any two distinct ranks
//! there is always another one, so moving an item rewrites only that item's rank.
//!
//! Two replicas that place items concurrently can produce equal ranks; the display order then
//! breaks the tie by item id (see [`crate::ListDoc::items`]).
//!
//! The crate is wrapped rather than used directly because its parser and its `new_between`
//! assume well-formed, ordered input (non-hex or non-ASCII strings make it panic, and a shared
//! prefix containing a zero byte makes `new_between` overflow). Everything here checks its
//! input first, so a hostile document can never make us panic.

use std::fmt;

use fractional_index::FractionalIndex;

/// The byte every fractional index ends with.
const TERMINATOR: u8 = 0x80;

/// A validated fractional-index string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortRank(String);

/// A string that is not a canonical fractional-index string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sort rank {0:?}: expected lower-case hex bytes ending with the terminator \"80\"")]
pub struct InvalidSortRank(pub String);

impl SortRank {
    /// The rank of the first item placed in an empty list.
    pub fn initial() -> Self {
        Self::from_index(&FractionalIndex::default())
    }

    /// Parses `s`, accepting only the canonical form that [`SortRank::as_str`] produces.
    pub fn parse(s: &str) -> Result<Self, InvalidSortRank> {
        let invalid = || InvalidSortRank(s.to_owned());
        let well_formed = !s.is_empty()
            && s.len().is_multiple_of(2)
            && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.ends_with("80");
        if !well_formed {
            return Err(invalid());
        }
        FractionalIndex::from_string(s).map_err(|_| invalid())?;
        Ok(Self(s.to_owned()))
    }

    /// The string stored in the document and in SQL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A rank that sorts before `self`.
    pub fn before(&self) -> Self {
        Self::from_index(&FractionalIndex::new_before(&self.index()))
    }

    /// A rank that sorts after `self`.
    pub fn after(&self) -> Self {
        Self::from_index(&FractionalIndex::new_after(&self.index()))
    }

    /// The `index`-th of `count` ranks spread evenly over a short range (two bytes and the
    /// terminator: six characters), for re-ranking a whole list when repeated moves made its
    /// ranks long. Ranks grow in `index`; `count` may be up to 16,129.
    pub fn spread(index: usize, count: usize) -> Self {
        const DIGITS: usize = 127; // bytes 0x01..=0x7f, below the terminator
        let slot = (index + 1) * (DIGITS * DIGITS - 1) / (count + 1);
        let bytes = vec![(1 + slot / DIGITS) as u8, (1 + slot % DIGITS) as u8, TERMINATOR];
        Self::from_index(&FractionalIndex::from_bytes(bytes).expect("ends with the terminator"))
    }

    /// A rank strictly between `lower` and `upper`, or after `lower` when `upper` is `None`.
    /// Returns `None` when `upper` is not greater than `lower`.
    pub fn between(lower: &SortRank, upper: Option<&SortRank>) -> Option<Self> {
        let Some(upper) = upper else {
            return Some(lower.after());
        };
        if upper <= lower {
            return None;
        }
        let (lo, hi) = (lower.bytes(), upper.bytes());
        // Strip the common prefix (keeping at least one byte on each side), so that the two
        // inputs differ in their first byte: that is the case `new_between` handles without
        // arithmetic on equal bytes.
        let max_prefix = lo.len().min(hi.len()) - 1;
        let prefix = lo.iter().zip(&hi).take(max_prefix).take_while(|(a, b)| a == b).count();
        let lo_rest = FractionalIndex::from_bytes(lo[prefix..].to_vec()).ok()?;
        let hi_rest = FractionalIndex::from_bytes(hi[prefix..].to_vec()).ok()?;
        let middle = FractionalIndex::new_between(&lo_rest, &hi_rest)?;
        let mut bytes = lo[..prefix].to_vec();
        bytes.extend_from_slice(middle.as_bytes());
        let rank = Self::from_index(&FractionalIndex::from_bytes(bytes).ok()?);
        (lower < &rank && &rank < upper).then_some(rank)
    }

    fn index(&self) -> FractionalIndex {
        FractionalIndex::from_bytes(self.bytes()).expect("a SortRank is validated on creation")
    }

    fn bytes(&self) -> Vec<u8> {
        let hex = self.0.as_bytes();
        let digit = |c: u8| if c.is_ascii_digit() { c - b'0' } else { c - b'a' + 10 };
        let bytes: Vec<u8> = hex.chunks(2).map(|p| (digit(p[0]) << 4) | digit(p[1])).collect();
        debug_assert_eq!(bytes.last(), Some(&TERMINATOR));
        bytes
    }

    fn from_index(index: &FractionalIndex) -> Self {
        Self(index.to_string())
    }
}

impl fmt::Display for SortRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_the_canonical_form() {
        assert_eq!(SortRank::parse("80").unwrap(), SortRank::initial());
        assert!(SortRank::parse("7f80").is_ok());
        for bad in ["", "8", "7F80", "zz80", "8000", "é080", "0x80", " 80"] {
            assert!(SortRank::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn before_after_and_between_keep_order() {
        let a = SortRank::initial();
        let b = a.after();
        let z = a.before();
        assert!(z < a && a < b);
        let m = SortRank::between(&a, Some(&b)).unwrap();
        assert!(a < m && m < b);
        assert_eq!(SortRank::between(&b, Some(&a)), None);
        assert_eq!(SortRank::between(&a, Some(&a)), None);
        assert!(SortRank::between(&a, None).unwrap() > a);
    }

    #[test]
    fn between_handles_shared_prefixes_with_zero_bytes() {
        // 130 moves to the front reach ranks starting with a zero byte; the crate's own
        // `new_between` overflows on such a shared prefix.
        let mut rank = SortRank::initial();
        for _ in 0..130 {
            rank = rank.before();
        }
        let mut upper = rank.clone();
        for _ in 0..5 {
            upper = upper.after();
        }
        assert!(rank.as_str().starts_with("00"), "{rank}");
        let mut lower = rank;
        for _ in 0..200 {
            let mid = SortRank::between(&lower, Some(&upper)).unwrap();
            assert!(lower < mid && mid < upper);
            lower = mid;
        }
    }

    #[test]
    fn spread_ranks_are_short_ordered_and_leave_room_between() {
        let ranks: Vec<SortRank> = (0..10_000).map(|i| SortRank::spread(i, 10_000)).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]));
        assert!(ranks.iter().all(|r| r.as_str().len() == 6 && SortRank::parse(r.as_str()).is_ok()));
        let mid = SortRank::between(&ranks[0], Some(&ranks[1])).unwrap();
        assert!(mid.as_str().len() <= 8);
        assert!(SortRank::spread(0, 1) > SortRank::spread(0, 1).before());
    }

    #[test]
    fn repeated_insertion_between_two_neighbours_never_fails() {
        let lower = SortRank::initial();
        let mut upper = lower.after();
        for _ in 0..500 {
            upper = SortRank::between(&lower, Some(&upper)).unwrap();
            assert!(SortRank::parse(upper.as_str()).is_ok());
        }
    }
}
