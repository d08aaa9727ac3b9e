//! The one error type the bindings throw. It mirrors [`tandem_client::Error`] variant for
//! variant so that apps can act on the kind (sign in again, go online, tell the user), and it
//! is flat: each variant carries only its message, which every language shows as the
//! exception's message (Python `str(e)`, Swift `localizedDescription` via `Error`, Kotlin
//! `message`).

/// Everything a [`crate::TandemClient`] call can fail with. Python: `TandemError.Forbidden`
/// etc.; Swift: `TandemError.Forbidden`; Kotlin: `TandemException.Forbidden`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum TandemError {
    /// The server could not be reached (no network, server down, timeout).
    #[error("{0}")]
    Offline(String),
    /// Not signed in, or the token was refused; sign in again.
    #[error("{0}")]
    Unauthorized(String),
    /// The user's role does not allow this (e.g. editing a list shared as VIEWER).
    #[error("{0}")]
    Forbidden(String),
    /// No such list or item (for this user).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (empty title, bad email, id out of range, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// It clashes with existing state (e.g. email already registered).
    #[error("{0}")]
    Conflict(String),
    /// The server asks to slow down; retry later.
    #[error("{0}")]
    RateLimited(String),
    /// The local store failed (disk full, corrupt file, newer schema, ...).
    #[error("{0}")]
    Storage(String),
    /// A bug or an unexpected answer; the message says where.
    #[error("{0}")]
    Internal(String),
    /// The server no longer speaks this app's sync protocol: update the app.
    #[error("{0}")]
    UpdateRequired(String),
}

impl From<tandem_client::Error> for TandemError {
    fn from(e: tandem_client::Error) -> Self {
        use tandem_client::Error as E;
        match e {
            E::Offline(m) => Self::Offline(m),
            E::Unauthorized(m) => Self::Unauthorized(m),
            E::Forbidden(m) => Self::Forbidden(m),
            E::NotFound(m) => Self::NotFound(m),
            E::InvalidInput(m) => Self::InvalidInput(m),
            E::Conflict(m) => Self::Conflict(m),
            E::RateLimited(m) => Self::RateLimited(m),
            E::Storage(m) => Self::Storage(m),
            E::Internal(m) => Self::Internal(m),
            E::UpdateRequired(m) => Self::UpdateRequired(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_their_kind_and_message() {
        let e: TandemError = tandem_client::Error::Forbidden("viewer".into()).into();
        assert_eq!(e, TandemError::Forbidden("viewer".into()));
        assert_eq!(e.to_string(), "viewer");
    }
}
