//! How the server ended a sync connection, as the app is told. The server sends an `Error`
//! frame and then closes with that error's close code (4000-4999) and a short reason; either
//! may be missing (a proxy may drop the frame, an older server sends no code), so both are
//! read and combined here, and turned into the [`Error`] that says what to do: update the
//! app, sign in again, or retry later.

use std::fmt;

use serde::Serialize;
use tandem_protocol::wire::ErrorCode;

use crate::Error;

/// Why the server closed a sync connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncClose {
    /// The WebSocket close code: 4000-4999 for the server's own reasons (listed in the
    /// README), 1000 for a plain close; `None` when the connection ended without a close
    /// frame.
    pub code: Option<u16>,
    /// The protocol's error code in snake case (`unsupported_version`, `shutting_down`,
    /// `slow_reader`, ...), when the server named one.
    pub kind: Option<String>,
    /// For people: the server's message.
    pub reason: String,
}

impl SyncClose {
    /// Combines the `Error` frame (if one came) with the close frame (if one came).
    pub(crate) fn new(error: Option<(ErrorCode, String)>, frame: Option<(u16, String)>) -> Self {
        let code = frame.as_ref().map(|(code, _)| *code);
        let named = error
            .as_ref()
            .map(|(code, _)| *code)
            .or_else(|| code.and_then(ErrorCode::from_close_code));
        // The Error frame's message is whole; the close reason may have been cut to fit.
        let reason = match (error, frame) {
            (Some((_, message)), _) if !message.is_empty() => message,
            (_, Some((_, reason))) => reason,
            _ => String::new(),
        };
        Self { code, kind: named.map(|c| c.name().to_owned()), reason }
    }

    /// The protocol's error code, when the server named one this client knows.
    pub fn error_code(&self) -> Option<ErrorCode> {
        let kind = self.kind.as_deref()?;
        ErrorCode::ALL.into_iter().find(|c| c.name() == kind)
    }

    /// The server no longer speaks this app's protocol: retrying cannot help.
    pub fn update_required(&self) -> bool {
        self.error_code() == Some(ErrorCode::UnsupportedVersion)
    }

    /// The error a sync call fails with.
    pub(crate) fn to_error(&self) -> Error {
        let text = self.to_string();
        match self.error_code() {
            Some(ErrorCode::UnsupportedVersion) => Error::UpdateRequired(text),
            Some(ErrorCode::Unauthorized) => Error::Unauthorized(text),
            Some(ErrorCode::RateLimited) => Error::RateLimited(text),
            Some(ErrorCode::BadMessage) => Error::Internal(text),
            // Shutting down, slow reader, timeouts, codes of a newer server: retry later.
            _ => Error::Offline(text),
        }
    }
}

impl fmt::Display for SyncClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server closed the sync connection")?;
        match (self.code, &self.kind) {
            (Some(code), Some(kind)) => write!(f, " ({code} {kind})")?,
            (Some(code), None) => write!(f, " ({code})")?,
            (None, Some(kind)) => write!(f, " ({kind})")?,
            (None, None) => {}
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_close_code_names_the_problem_when_the_error_frame_is_missing() {
        let close = SyncClose::new(None, Some((4001, "update the app".into())));
        assert!(close.update_required());
        let err = close.to_error();
        assert_eq!(
            err,
            Error::UpdateRequired(
                "the server closed the sync connection (4001 unsupported_version): update the app"
                    .into()
            )
        );
    }

    #[test]
    fn the_error_frame_gives_the_whole_message_and_the_kind_decides_the_error() {
        let long = "x".repeat(300);
        let close = SyncClose::new(
            Some((ErrorCode::ShuttingDown, long.clone())),
            Some((4005, long[..123].into())),
        );
        assert_eq!(close.reason, long);
        assert!(matches!(close.to_error(), Error::Offline(_)));
        let limited = SyncClose::new(Some((ErrorCode::RateLimited, "slow down".into())), None);
        assert!(matches!(limited.to_error(), Error::RateLimited(_)));
        assert_eq!(
            limited.to_string(),
            "the server closed the sync connection (rate_limited): slow down"
        );
    }

    #[test]
    fn unknown_codes_are_shown_and_retried() {
        let close = SyncClose::new(None, Some((4999, "something new".into())));
        assert_eq!(close.kind, None);
        assert!(!close.update_required());
        assert_eq!(
            close.to_error(),
            Error::Offline("the server closed the sync connection (4999): something new".into())
        );
    }
}
