//! The one error type of the client: a flat enum whose variants are what an app can act on
//! (go online, sign in again, tell the user, retry later). Each carries a one-line message
//! for people; the FFI maps it one to one onto its `TandemError`.

use tandem_protocol::EditError;

/// Everything a client call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server could not be reached (no network, server down, timeout).
    #[error("offline: {0}")]
    Offline(String),
    /// Not signed in, or the token was refused; sign in again.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The user's role does not allow this (e.g. editing a list held as VIEWER).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such list or item (for this user).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request itself is wrong (empty title, bad email, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// It clashes with existing state (e.g. email already registered, id taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The server asks to slow down; retry later.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// The local store failed (disk full, corrupt file, newer schema, ...).
    #[error("storage error: {0}")]
    Storage(String),
    /// A bug or an unexpected answer; the message says where.
    #[error("internal error: {0}")]
    Internal(String),
    /// The server no longer speaks this app's sync protocol: the app must be updated.
    /// Background sync stops instead of retrying; local edits are kept.
    #[error("update required: {0}")]
    UpdateRequired(String),
}

/// The result type of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        tracing::warn!(error = %e, "store error");
        Error::Storage(e.to_string())
    }
}

impl From<EditError> for Error {
    fn from(e: EditError) -> Self {
        match e {
            EditError::NoSuchItem(_) => Error::NotFound(e.to_string()),
            EditError::DuplicateItem(_) => Error::Conflict(e.to_string()),
            EditError::InvalidItemId(_) | EditError::MoveAfterItself(_) | EditError::Rule(_) => {
                Error::InvalidInput(e.to_string())
            }
            EditError::Invalid(_) | EditError::NoRankBetween(_) | EditError::Automerge(_) => {
                tracing::error!(error = %e, "document edit failed");
                Error::Internal(e.to_string())
            }
        }
    }
}
