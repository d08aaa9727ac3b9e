//! Newtype ids. Every id is a positive integer at most [`MAX_ID`] (2^53 - 1), the largest
//! integer a JSON number carries exactly in every language.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest id Tandem ever issues or accepts: 2^53 - 1.
pub const MAX_ID: u64 = (1 << 53) - 1;

/// Whether `raw` is a valid id: positive and at most [`MAX_ID`].
pub const fn is_valid_id(raw: u64) -> bool {
    raw > 0 && raw <= MAX_ID
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw integer, as stored in SQL and sent in JSON.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// The id as a signed SQL `BIGINT`; lossless because ids stay below 2^53.
            pub const fn as_i64(self) -> i64 {
                self.0 as i64
            }

            /// Whether this id is in the valid range (1..=2^53-1).
            pub const fn is_valid(self) -> bool {
                is_valid_id(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }
    };
}

id_type!(
    /// A person's account.
    UserId
);
id_type!(
    /// A TODO list; also the sharding key of the list's rows and document.
    ListId
);
id_type!(
    /// One item of a list; unique within its list.
    ItemId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_plain_numbers() {
        let json = serde_json::to_string(&ListId(1001)).unwrap();
        assert_eq!(json, "1001");
        let back: UserId = serde_json::from_str("101").unwrap();
        assert_eq!(back, UserId(101));
    }

    #[test]
    fn validity_is_positive_and_within_53_bits() {
        assert!(!ListId(0).is_valid());
        assert!(ListId(1).is_valid());
        assert!(ListId(MAX_ID).is_valid());
        assert!(!ListId(MAX_ID + 1).is_valid());
        assert_eq!(ListId(MAX_ID).as_i64(), 9_007_199_254_740_991);
    }
}
