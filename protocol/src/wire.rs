//! The sync socket's messages: one enum each way, sent as binary WebSocket frames in CBOR.
//!
//! A connection opens with the client's [`ClientMessage::Hello`], naming the protocol versions
//! it speaks; the server answers [`ServerMessage::Welcome`] with the version it picked (so a
//! newer server keeps serving older clients during a rollout) and the lists the user can see.
//! From then on both sides exchange Automerge sync messages per list
//! ([`ClientMessage::Sync`], [`ServerMessage::Sync`]); a problem with one list is a
//! [`ServerMessage::ListError`] for that list alone, and the socket carries on. A problem
//! with the connection is a [`ServerMessage::Error`], after which the server closes the socket
//! with that error's close code ([`ErrorCode::close_code`], 4000-4999) and a short reason.
//!
//! **Version 2** keeps all of that for catching up (a new device, a reconnect, a peer that
//! fell behind) and adds streaming once a list is in step: each batch of changes the server
//! saves goes out as one [`ServerMessage::Changes`] frame (the saved change chunk, the list's
//! version after it and its heads), encoded once and shared by every peer that was in step;
//! and a client that is in step sends its new changes as [`ClientMessage::Changes`]. Applying
//! raw changes costs a peer much less than receiving a sync message and answering it. A
//! client that cannot apply a frame (a dependency missing: it missed one) goes back to sync
//! messages, and so does the server for a client whose changes it cannot apply yet. A client
//! knows its change is saved (acknowledged) when a frame or sync message advertises heads
//! that include it. Version 1 clients never see the new messages.

use serde::{Deserialize, Serialize};

use crate::{ListId, Role, UserId};

/// The newest protocol version this code speaks.
pub const PROTOCOL_VERSION: u16 = 2;
/// The oldest protocol version this code still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// Client to server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// The first message on a socket: the range of protocol versions the client speaks.
    Hello {
        /// Oldest version spoken.
        min_version: u16,
        /// Newest version spoken.
        max_version: u16,
    },
    /// An Automerge sync message for one list. The first one for a list subscribes the socket
    /// to it (a list id reserved by this user and not yet on the server is created, with the
    /// user as owner).
    Sync {
        /// The list.
        list: ListId,
        /// The encoded `automerge::sync::Message`.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Stop receiving a list's changes on this socket.
    Unsubscribe {
        /// The list.
        list: ListId,
    },
    /// Version 2: new changes of a list this socket is in step with, as Automerge change
    /// chunks (`automerge::Change::raw_bytes`, one after another).
    Changes {
        /// The list.
        list: ListId,
        /// The change chunks.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

/// Server to client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The answer to `Hello`.
    Welcome {
        /// The protocol version both sides now speak.
        version: u16,
        /// Who the token names.
        user: UserId,
        /// Every list the user can see, with the user's role.
        lists: Vec<ListAccess>,
    },
    /// An Automerge sync message for one list. Its heads include a client's change only once
    /// that change is durably stored: this is the acknowledgement.
    Sync {
        /// The list.
        list: ListId,
        /// The encoded `automerge::sync::Message`.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Version 2: a batch of changes the server saved, to a socket that held the list as it
    /// was before the batch. Apply the chunk (`load_incremental`); if a dependency is
    /// missing, go back to sync messages for the list.
    Changes {
        /// The list.
        list: ListId,
        /// The list's version once the batch is saved: one more than the batch before it
        /// (renames through REST count too), so a gap shows a missed batch.
        seq: u64,
        /// The list's heads after the batch: 32-byte change hashes, one after another. The
        /// acknowledgement of a client's change, as a sync message's heads are.
        #[serde(with = "serde_bytes")]
        heads: Vec<u8>,
        /// The saved change chunks.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The user's role on a list is new or changed (shared, re-shared with another role).
    Access(ListAccess),
    /// The user can no longer see a list: the client should drop it.
    Removed {
        /// The list.
        list: ListId,
        /// Why.
        reason: RemovalReason,
    },
    /// Something went wrong with one list; other lists are unaffected.
    ListError {
        /// The list.
        list: ListId,
        /// What kind of problem.
        code: ListErrorCode,
        /// For people.
        message: String,
    },
    /// Something went wrong with the connection; the server closes it after this.
    Error {
        /// What kind of problem.
        code: ErrorCode,
        /// For people.
        message: String,
    },
}

/// A list and the user's role on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListAccess {
    /// The list.
    pub list: ListId,
    /// The user's role.
    pub role: Role,
}

/// Why a list went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// The owner deleted it.
    Deleted,
    /// The user was removed from it, or left.
    Unshared,
}

/// Problems with one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListErrorCode {
    /// The user's role does not allow this (a viewer's change): nothing of it was applied.
    Forbidden,
    /// No such list for this user.
    NotFound,
    /// The change would make the document malformed, or the bytes are not a sync message:
    /// nothing of it was applied.
    InvalidDocument,
    /// The message or the document would be larger than allowed.
    TooLarge,
    /// Too many messages; slow down.
    RateLimited,
    /// The server failed; retry later.
    Internal,
}

/// Problems with the whole connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No protocol version in common.
    UnsupportedVersion,
    /// A frame that is not a message of this protocol, or `Hello` missing or repeated.
    BadMessage,
    /// The token is missing, invalid or expired.
    Unauthorized,
    /// Too many messages; the socket is closed.
    RateLimited,
    /// The client read too slowly and fell too far behind.
    SlowReader,
    /// The server is shutting down; reconnect later.
    ShuttingDown,
    /// `Hello` did not come within the server's time limit after the socket opened.
    HelloTimeout,
    /// Nothing at all (not even a pong) came from the client for too long.
    IdleTimeout,
}

/// Longest reason a WebSocket close frame can carry, in bytes (125 bytes of payload less the
/// two of the code).
pub const MAX_CLOSE_REASON: usize = 123;

impl ErrorCode {
    /// Every code, in close code order.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::BadMessage,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
        ErrorCode::SlowReader,
        ErrorCode::ShuttingDown,
        ErrorCode::HelloTimeout,
        ErrorCode::IdleTimeout,
    ];

    /// The WebSocket close code the server closes the socket with after sending this error,
    /// in the application range 4000-4999. Clients read it from the close frame, so they learn
    /// why even when the `Error` frame before it was lost or could not be decoded.
    pub const fn close_code(self) -> u16 {
        match self {
            ErrorCode::BadMessage => 4000,
            ErrorCode::UnsupportedVersion => 4001,
            ErrorCode::Unauthorized => 4002,
            ErrorCode::RateLimited => 4003,
            ErrorCode::SlowReader => 4004,
            ErrorCode::ShuttingDown => 4005,
            ErrorCode::HelloTimeout => 4006,
            ErrorCode::IdleTimeout => 4007,
        }
    }

    /// The error a close code stands for, if it is one of ours.
    pub fn from_close_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.close_code() == code)
    }

    /// The code as it is spelled on the wire (`slow_reader`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::SlowReader => "slow_reader",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::HelloTimeout => "hello_timeout",
            ErrorCode::IdleTimeout => "idle_timeout",
        }
    }
}

/// `message` cut to fit a close frame's reason ([`MAX_CLOSE_REASON`] bytes), at a character
/// boundary.
pub fn close_reason(message: &str) -> &str {
    if message.len() <= MAX_CLOSE_REASON {
        return message;
    }
    let mut end = MAX_CLOSE_REASON;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A frame that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("bad frame: {0}")]
pub struct WireError(String);

fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(message, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

fn decode<T: for<'de> Deserialize<'de>>(frame: &[u8]) -> Result<T, WireError> {
    ciborium::from_reader(frame).map_err(|e| WireError(e.to_string()))
}

impl ClientMessage {
    /// The binary frame.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads a binary frame.
    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        decode(frame)
    }

    /// The `Hello` this code sends.
    pub fn hello() -> Self {
        ClientMessage::Hello { min_version: MIN_PROTOCOL_VERSION, max_version: PROTOCOL_VERSION }
    }
}

impl ServerMessage {
    /// The binary frame.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads a binary frame.
    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        decode(frame)
    }
}

/// Heads as a [`ServerMessage::Changes`] frame carries them: 32-byte hashes back to back.
pub fn encode_heads(heads: &[automerge::ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

/// The heads of a [`ServerMessage::Changes`] frame, if its bytes are whole hashes.
pub fn decode_heads(bytes: &[u8]) -> Option<Vec<automerge::ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(bytes.chunks(32).map(|h| automerge::ChangeHash(h.try_into().expect("32 bytes"))).collect())
}

/// The version to speak with a client offering `min..=max`, if any.
pub fn negotiate(min: u16, max: u16) -> Option<u16> {
    negotiate_from(MIN_PROTOCOL_VERSION, min, max)
}

/// [`negotiate`] for a server that accepts no version older than `oldest` (raised to make
/// older apps stop and ask for an update).
pub fn negotiate_from(oldest: u16, min: u16, max: u16) -> Option<u16> {
    let best = max.min(PROTOCOL_VERSION);
    (best >= min.max(oldest).max(MIN_PROTOCOL_VERSION)).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_cbor() {
        let messages = [
            ClientMessage::hello(),
            ClientMessage::Sync { list: ListId(7), data: vec![1, 2, 3] },
            ClientMessage::Unsubscribe { list: ListId(8) },
            ClientMessage::Changes { list: ListId(9), data: vec![4, 5] },
        ];
        for m in messages {
            assert_eq!(ClientMessage::decode(&m.encode()).unwrap(), m);
        }
        let messages = [
            ServerMessage::Welcome {
                version: 1,
                user: UserId(3),
                lists: vec![ListAccess { list: ListId(4), role: Role::Viewer }],
            },
            ServerMessage::Sync { list: ListId(5), data: vec![0; 40] },
            ServerMessage::Changes { list: ListId(5), seq: 9, heads: vec![1; 32], data: vec![2] },
            ServerMessage::Access(ListAccess { list: ListId(6), role: Role::Editor }),
            ServerMessage::Removed { list: ListId(6), reason: RemovalReason::Deleted },
            ServerMessage::ListError {
                list: ListId(9),
                code: ListErrorCode::Forbidden,
                message: "no".into(),
            },
            ServerMessage::Error { code: ErrorCode::BadMessage, message: "eh".into() },
        ];
        for m in messages {
            assert_eq!(ServerMessage::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn sync_payloads_are_byte_strings_not_arrays() {
        let frame = ClientMessage::Sync { list: ListId(1), data: vec![0xAB; 100] }.encode();
        assert!(frame.len() < 130, "100 bytes of payload take about 100 bytes: {}", frame.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for frame in [&b""[..], b"\xff\xff\xff", b"\xa1\x65Hello\xa0", &[0x9f; 64]] {
            assert!(ClientMessage::decode(frame).is_err());
        }
    }

    #[test]
    fn versions_are_negotiated() {
        assert_eq!(negotiate(1, 1), Some(1));
        assert_eq!(negotiate(1, 9), Some(PROTOCOL_VERSION));
        assert_eq!(negotiate(PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 3), None);
        assert_eq!(negotiate(0, 0), None);
        assert_eq!(negotiate_from(PROTOCOL_VERSION + 1, 1, PROTOCOL_VERSION), None);
        assert_eq!(negotiate_from(0, 1, PROTOCOL_VERSION), Some(PROTOCOL_VERSION));
    }

    #[test]
    fn each_error_has_its_own_close_code_in_the_application_range() {
        let mut codes: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.close_code()).collect();
        assert!(codes.iter().all(|c| (4000..5000).contains(c)), "{codes:?}");
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_close_code(code.close_code()), Some(code));
            // The name is the wire spelling.
            let frame = ServerMessage::Error { code, message: String::new() }.encode();
            let text = String::from_utf8_lossy(&frame);
            assert!(text.contains(code.name()), "{} not in {text:?}", code.name());
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::from_close_code(1000), None);
    }

    #[test]
    fn close_reasons_fit_a_close_frame_and_stay_valid_utf8() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = close_reason(&long);
        assert!(cut.len() <= MAX_CLOSE_REASON && cut.len() >= MAX_CLOSE_REASON - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
