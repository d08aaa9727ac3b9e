//! The recorded sessions turned into first inputs for each target, and into donors (the
//! byte strings mutations splice in).

use serde_bytes::ByteBuf;
use tandem_protocol::automerge::sync::Message;
use tandem_protocol::wire::{
    ClientMessage, ErrorCode, ListAccess, ListErrorCode, RemovalReason, ServerMessage,
};
use tandem_protocol::{ListId, Role, UserId};

use crate::chunk::Chunk;
use crate::corpus::Session;
use crate::mutate::Donors;
use crate::targets::Case;

const LIST: ListId = ListId(245_550_786_809_856);

/// Every message, frame and single chunk of the sessions.
pub fn donors(sessions: &[Session]) -> Donors {
    let mut messages = Vec::new();
    let mut chunks = Vec::new();
    for s in sessions {
        for data in s.steps.iter().map(|s| &s.data).chain(&s.replies) {
            messages.push(data.to_vec());
            if let Ok(m) = Message::decode(data) {
                for bytes in m.changes.iter() {
                    chunks
                        .extend(Chunk::parse_all(bytes).into_iter().flatten().map(|c| c.encode()));
                }
            }
        }
        for bytes in s.chunks.iter().chain([&s.snapshot, &s.base]) {
            chunks.extend(Chunk::parse_all(bytes).into_iter().flatten().map(|c| c.encode()));
        }
    }
    Donors { messages, chunks }
}

/// The first inputs of `target` ("wire", "loader" or "room").
pub fn cases(target: &str, sessions: &[Session]) -> Vec<Case> {
    match target {
        "wire" => wire(sessions),
        "loader" => loader(sessions),
        "room" => room(sessions),
        other => panic!("no fuzz target {other}"),
    }
}

fn wire(sessions: &[Session]) -> Vec<Case> {
    let mut cases = vec![
        Case::ClientFrame(ClientMessage::hello().encode().into()),
        Case::ClientFrame(ClientMessage::Hello { min_version: 0, max_version: 9 }.encode().into()),
        Case::ClientFrame(ClientMessage::Unsubscribe { list: LIST }.encode().into()),
    ];
    let server = [
        ServerMessage::Welcome {
            version: 1,
            user: UserId(3),
            lists: vec![
                ListAccess { list: LIST, role: Role::Owner },
                ListAccess { list: ListId(9), role: Role::Viewer },
            ],
        },
        ServerMessage::Access(ListAccess { list: LIST, role: Role::Editor }),
        ServerMessage::Removed { list: LIST, reason: RemovalReason::Unshared },
        ServerMessage::ListError {
            list: LIST,
            code: ListErrorCode::InvalidDocument,
            message: "invalid list document: title must be text".into(),
        },
        ServerMessage::Error { code: ErrorCode::SlowReader, message: "too slow".into() },
    ];
    cases.extend(server.iter().map(|m| Case::ServerFrame(m.encode().into())));
    for s in sessions {
        for step in &s.steps {
            let frame = ClientMessage::Sync { list: LIST, data: step.data.to_vec() }.encode();
            cases.push(Case::ClientFrame(frame.into()));
        }
        for reply in &s.replies {
            let frame = ServerMessage::Sync { list: LIST, data: reply.to_vec() }.encode();
            cases.push(Case::ServerFrame(frame.into()));
        }
    }
    cases
}

fn loader(sessions: &[Session]) -> Vec<Case> {
    let mut cases = Vec::new();
    for s in sessions {
        cases.push(Case::Load(s.snapshot.clone()));
        let stored: Vec<u8> =
            [&s.base].into_iter().chain(&s.chunks).flat_map(|c| c.to_vec()).collect();
        cases.push(Case::Load(ByteBuf::from(stored)));
        let base = if s.base.is_empty() { s.snapshot.clone() } else { s.base.clone() };
        if !s.base.is_empty() {
            for chunk in &s.chunks {
                cases.push(Case::LoadIncremental { base: base.clone(), data: chunk.clone() });
            }
        }
        for step in &s.steps {
            let Ok(m) = Message::decode(&step.data) else { continue };
            if !m.changes.is_empty() {
                let data: Vec<u8> = m.changes.iter().flatten().copied().collect();
                cases.push(Case::LoadIncremental { base: base.clone(), data: data.into() });
            }
        }
    }
    cases
}

fn room(sessions: &[Session]) -> Vec<Case> {
    let mut cases = Vec::new();
    for s in sessions {
        for (k, step) in s.steps.iter().enumerate() {
            cases.push(Case::Room {
                base: s.base.clone(),
                peers: s.peers.clone(),
                prefix: s.steps[..k].iter().map(|p| (p.peer, p.data.clone())).collect(),
                peer: step.peer,
                data: step.data.clone(),
            });
        }
    }
    cases
}
