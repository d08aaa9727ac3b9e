//! What can go wrong with a list document: a shape that is not a list ([`ValidationError`]),
//! or an edit that does not apply to this list ([`EditError`]).

use automerge::AutomergeError;

use super::rules::RuleError;
use crate::ItemId;

/// The document is not a well-formed Tandem list. `path` names the offending place, e.g.
/// `items/42/done`. The server answers `invalid_document` with this error's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A required field is absent.
    #[error("invalid list document: {path} is missing")]
    Missing {
        /// Where the field should be.
        path: String,
    },
    /// A field holds the wrong kind of value.
    #[error("invalid list document: {path} must be {expected}")]
    WrongType {
        /// The field.
        path: String,
        /// What it must hold, e.g. "text" or "a boolean".
        expected: &'static str,
    },
    /// A key that the schema does not have.
    #[error("invalid list document: unexpected key {path}")]
    UnexpectedKey {
        /// The key's full path.
        path: String,
    },
    /// An item key that is not the canonical decimal form of a valid item id.
    #[error("invalid list document: item key {key:?} is not an id between 1 and 2^53-1")]
    BadItemKey {
        /// The key as found.
        key: String,
    },
    /// A `sort_rank` that is not a fractional-index string.
    #[error("invalid list document: items/{item}/sort_rank {value:?} is not a sort rank")]
    BadSortRank {
        /// The item holding it.
        item: ItemId,
        /// The value as found.
        value: String,
    },
    /// Automerge could not read the document.
    #[error("invalid list document: {0}")]
    Unreadable(String),
    /// An operation no list change makes (a mark, a counter, a change to the top level of an
    /// existing list, ...).
    #[error("invalid list change: {what} at {path}")]
    Unsupported {
        /// Where.
        path: String,
        /// What, for people.
        what: &'static str,
    },
    /// A value the rules of what a list may hold refuse.
    #[error("invalid list change: {0}")]
    Rule(#[from] RuleError),
}

/// An edit that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The document itself is not a list (see [`ValidationError`]).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The edit would break a rule of what a list may hold (see [`super::rules`]).
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// No item with this id is in the list.
    #[error("no item {0} in this list")]
    NoSuchItem(ItemId),
    /// The id is already used by an item of this list.
    #[error("item id {0} is already used in this list")]
    DuplicateItem(ItemId),
    /// The id is outside 1..=2^53-1.
    #[error("item id {0} is not between 1 and 2^53-1")]
    InvalidItemId(ItemId),
    /// `move_after(x, x)`.
    #[error("item {0} cannot be moved after itself")]
    MoveAfterItself(ItemId),
    /// No free sort rank between two neighbours (only possible if the document holds ranks
    /// the generator never makes).
    #[error("no sort rank fits between the neighbours of item {0}")]
    NoRankBetween(ItemId),
    /// Automerge refused the operation.
    #[error("document operation failed: {0}")]
    Automerge(#[from] AutomergeError),
}

/// Bytes that are not an Automerge document or change set.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Automerge refused them.
    #[error("cannot load list document: {0}")]
    Automerge(#[from] AutomergeError),
    /// Automerge panicked on them (malformed bytes that its checks let through).
    #[error("cannot load list document: the bytes are malformed")]
    Malformed,
}
