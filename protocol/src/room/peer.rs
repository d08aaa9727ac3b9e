//! One peer of a room: its Automerge sync state, who it is and what it may do, and what the
//! room holds for it between two of its messages.

use automerge::ChangeHash;
use automerge::sync::State;

use crate::intake::Incoming;
use crate::{Role, UserId};

/// A peer (one socket's subscription to this list).
pub type PeerId = u64;

/// Refusals and dropped changes in a row after which a peer is cut off.
pub(super) const MAX_STRIKES: u32 = 3;

pub(super) struct Peer {
    pub(super) state: State,
    pub(super) user: UserId,
    pub(super) role: Role,
    /// The peer's changes were merged since it was last sent a message: it must hear the
    /// room's heads once they are saved, even when Automerge thinks it already knows them.
    pub(super) owes_ack: bool,
    /// Changes whose dependencies were missing when they came, kept until the peer's next
    /// message (see [`super::held`]).
    pub(super) held: Vec<Incoming>,
    /// Refused messages and dropped changes since the peer's last clean message.
    pub(super) strikes: u32,
    /// The peer speaks protocol version 2: once in step it takes saved batches as frames.
    pub(super) streams: bool,
    /// The heads the peer is known to hold exactly (it said so, or it was sent every batch
    /// since); `None` while it catches up.
    pub(super) at: Option<Vec<ChangeHash>>,
}

impl Peer {
    pub(super) fn new(user: UserId, role: Role, streams: bool) -> Self {
        Self {
            state: state_for(role),
            user,
            role,
            owes_ack: false,
            held: Vec::new(),
            strikes: 0,
            streams,
            at: None,
        }
    }

    /// The dependencies of the held changes that neither the document (`has`) nor the held
    /// changes themselves provide: what to ask the peer for.
    pub(super) fn held_needs(&self, has: impl Fn(&ChangeHash) -> bool) -> Vec<ChangeHash> {
        let held: Vec<ChangeHash> = self.held.iter().map(|i| i.change.hash()).collect();
        let mut needs: Vec<ChangeHash> = self
            .held
            .iter()
            .flat_map(|i| i.change.deps().iter().copied())
            .filter(|dep| !held.contains(dep) && !has(dep))
            .collect();
        needs.sort_unstable();
        needs.dedup();
        needs
    }
}

/// A fresh sync state for a role. A viewer's changes are never applied: the read-only state
/// ignores them.
pub(super) fn state_for(role: Role) -> State {
    if role.can_edit() { State::new() } else { State::new_read_only() }
}
