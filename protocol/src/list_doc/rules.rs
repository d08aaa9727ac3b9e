//! What a list may hold: the one rule set that REST, the server's rooms and the client all
//! apply, so that the client refuses locally what the server would refuse, and nothing
//! stored through sync is something the REST API would have refused.
//!
//! - a title: 1 to [`MAX_TITLE_CHARS`] characters, not only white space, no control
//!   characters;
//! - an item's text: at most [`MAX_ITEM_CHARS`] characters, no control characters but line
//!   feed and tab;
//! - a `sort_rank`: at most [`MAX_SORT_RANK_CHARS`] characters (the data model's
//!   `VARCHAR(64)`), in the canonical form of [`SortRank`](crate::SortRank);
//! - at most [`MAX_ITEMS`] items in a list.
//!
//! Characters are Unicode scalar values (Rust `char`s), the unit in which Automerge counts
//! text here. Every rule is about the set of characters a text holds, never their order, so
//! the server can check a change from its operations before it applies it (see `check`).

use crate::ItemId;

/// Longest title, in characters (the seed's `VARCHAR(255)`).
pub const MAX_TITLE_CHARS: usize = 255;
/// Longest item text, in characters.
pub const MAX_ITEM_CHARS: usize = 10_000;
/// Longest `sort_rank`, in characters (the data model's `VARCHAR(64)`).
pub const MAX_SORT_RANK_CHARS: usize = 64;
/// Most items one list may hold.
pub const MAX_ITEMS: usize = 10_000;

/// A value the rules refuse. The text is what a person reads (REST answers 422 with it, the
/// server's sync answers `invalid_document`, the client `InvalidInput`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// An empty or blank title.
    #[error("the title must not be empty")]
    EmptyTitle,
    /// A title over [`MAX_TITLE_CHARS`].
    #[error("the title must be at most {MAX_TITLE_CHARS} characters")]
    LongTitle,
    /// A control character in a title.
    #[error("the title must not contain control characters")]
    TitleControl,
    /// An item's text over [`MAX_ITEM_CHARS`].
    #[error("item {0}'s text must be at most {MAX_ITEM_CHARS} characters")]
    LongItem(ItemId),
    /// A control character other than line feed or tab in an item's text.
    #[error("item {0}'s text must not contain control characters")]
    ItemControl(ItemId),
    /// A `sort_rank` over [`MAX_SORT_RANK_CHARS`].
    #[error("item {0}'s sort_rank must be at most {MAX_SORT_RANK_CHARS} characters")]
    LongSortRank(ItemId),
    /// More than [`MAX_ITEMS`] items.
    #[error("a list holds at most {MAX_ITEMS} items")]
    TooManyItems,
}

/// Whether `c` may appear in a title.
pub fn title_char_allowed(c: char) -> bool {
    !c.is_control()
}

/// Whether `c` may appear in an item's text.
pub fn item_char_allowed(c: char) -> bool {
    !c.is_control() || c == '\n' || c == '\t'
}

/// Checks a title from the characters it holds, in any order.
pub fn check_title_chars(chars: impl IntoIterator<Item = char>) -> Result<(), RuleError> {
    let mut count = 0;
    let mut blank = true;
    for c in chars {
        if !title_char_allowed(c) {
            return Err(RuleError::TitleControl);
        }
        blank &= c.is_whitespace();
        count += 1;
    }
    if blank {
        Err(RuleError::EmptyTitle)
    } else if count > MAX_TITLE_CHARS {
        Err(RuleError::LongTitle)
    } else {
        Ok(())
    }
}

/// Checks a title.
pub fn check_title(title: &str) -> Result<(), RuleError> {
    check_title_chars(title.chars())
}

/// Checks an item's text from the characters it holds, in any order.
pub fn check_item_chars(
    item: ItemId,
    chars: impl IntoIterator<Item = char>,
) -> Result<(), RuleError> {
    let mut count = 0;
    for c in chars {
        if !item_char_allowed(c) {
            return Err(RuleError::ItemControl(item));
        }
        count += 1;
    }
    if count > MAX_ITEM_CHARS { Err(RuleError::LongItem(item)) } else { Ok(()) }
}

/// Checks an item's text.
pub fn check_item_text(item: ItemId, text: &str) -> Result<(), RuleError> {
    check_item_chars(item, text.chars())
}

/// Checks the length of a `sort_rank` (its form is [`SortRank::parse`](crate::SortRank)'s).
pub fn check_sort_rank_len(item: ItemId, rank: &str) -> Result<(), RuleError> {
    if rank.chars().count() > MAX_SORT_RANK_CHARS {
        Err(RuleError::LongSortRank(item))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_follow_the_rest_rules() {
        assert!(check_title("Groceries").is_ok());
        assert!(check_title(&"x".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(check_title(&"é".repeat(MAX_TITLE_CHARS)).is_ok(), "characters, not bytes");
        assert_eq!(check_title(""), Err(RuleError::EmptyTitle));
        assert_eq!(check_title(" \t "), Err(RuleError::TitleControl));
        assert_eq!(check_title("   "), Err(RuleError::EmptyTitle));
        assert_eq!(check_title(&"x".repeat(MAX_TITLE_CHARS + 1)), Err(RuleError::LongTitle));
        assert_eq!(check_title("a\u{0}b"), Err(RuleError::TitleControl));
        assert_eq!(check_title("a\u{1b}[31mb"), Err(RuleError::TitleControl));
    }

    #[test]
    fn item_texts_may_hold_lines_and_tabs_but_no_other_controls() {
        let id = ItemId(3);
        assert!(check_item_text(id, "").is_ok());
        assert!(check_item_text(id, "milk\n\teggs").is_ok());
        assert_eq!(check_item_text(id, "bell\u{7}"), Err(RuleError::ItemControl(id)));
        assert!(check_item_text(id, &"x".repeat(MAX_ITEM_CHARS)).is_ok());
        assert_eq!(
            check_item_text(id, &"x".repeat(MAX_ITEM_CHARS + 1)),
            Err(RuleError::LongItem(id))
        );
    }

    #[test]
    fn sort_ranks_are_bounded() {
        let id = ItemId(1);
        assert!(check_sort_rank_len(id, &"a".repeat(MAX_SORT_RANK_CHARS)).is_ok());
        assert_eq!(
            check_sort_rank_len(id, &"a".repeat(MAX_SORT_RANK_CHARS + 1)),
            Err(RuleError::LongSortRank(id))
        );
    }
}
