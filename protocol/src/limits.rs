//! How much one peer may make the server decode, hold and build, counted in what is decoded
//! rather than what was sent: a compressed change inflates, and a few bytes of run-length
//! encoding can claim millions of operations. The server's `[sync]` config fills these in;
//! the defaults are the server's.

/// Limits of what a room accepts from one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLimits {
    /// Largest total size of one message's changes once inflated, in bytes.
    pub max_decoded_message_bytes: usize,
    /// Most operations one change may hold (a character typed is one operation).
    pub max_change_ops: usize,
    /// Most operations a document may hold, history included.
    pub max_document_ops: usize,
    /// Changes whose dependencies are missing that a room holds for one peer, until its next
    /// message.
    pub max_held_changes: usize,
    /// The same, in decoded bytes.
    pub max_held_bytes: usize,
    /// Automerge actor ids one user may bring to one list (a device and sign-in each).
    pub max_actors_per_user: usize,
    /// Whole-history sends one user may ask for per minute on one list.
    pub full_syncs_per_minute: u32,
}

impl Default for SyncLimits {
    fn default() -> Self {
        Self {
            max_decoded_message_bytes: 8 * 1024 * 1024,
            max_change_ops: 100_000,
            max_document_ops: 2_000_000,
            max_held_changes: 256,
            max_held_bytes: 1024 * 1024,
            max_actors_per_user: 256,
            full_syncs_per_minute: 6,
        }
    }
}
