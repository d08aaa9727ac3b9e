//! Which user each Automerge actor id of a list belongs to. A change's actor id is only a
//! claim (anyone who has seen the history can copy another member's, with its next sequence
//! number, and so block that member's next real change); the room binds each actor id to the
//! user who first sent a change made by it, and refuses changes whose actor belongs to
//! someone else. The binding is stored on the list's shard with the change, so it also names
//! the verified author of every change.

use std::collections::HashMap;

use automerge::{ActorId, Change};

use crate::UserId;

/// Why a message's actors were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ActorRefusal {
    /// A change made by an actor bound to another user.
    Foreign,
    /// More actor ids than one user may bring to a list.
    TooMany,
}

/// The actor bindings of one list: as stored, plus those made since the last save.
#[derive(Debug, Default)]
pub(super) struct Actors {
    owner: HashMap<ActorId, UserId>,
    per_user: HashMap<UserId, usize>,
    unsaved: Vec<(ActorId, UserId)>,
}

impl Actors {
    /// The bindings as stored.
    pub(super) fn new(bindings: impl IntoIterator<Item = (ActorId, UserId)>) -> Self {
        let mut actors = Self::default();
        for (actor, user) in bindings {
            actors.insert(actor, user);
        }
        actors
    }

    fn insert(&mut self, actor: ActorId, user: UserId) {
        if self.owner.insert(actor, user).is_none() {
            *self.per_user.entry(user).or_default() += 1;
        }
    }

    /// The actor ids of `changes` not bound yet, if every one of them may be `user`'s.
    pub(super) fn check<'a>(
        &self,
        user: UserId,
        changes: impl Iterator<Item = &'a Change>,
        max_per_user: usize,
    ) -> Result<Vec<ActorId>, ActorRefusal> {
        let mut new: Vec<ActorId> = Vec::new();
        for change in changes {
            let actor = change.actor_id();
            match self.owner.get(actor) {
                Some(owner) if *owner == user => {}
                Some(_) => return Err(ActorRefusal::Foreign),
                None if !new.contains(actor) => new.push(actor.clone()),
                None => {}
            }
        }
        let bound = self.per_user.get(&user).copied().unwrap_or(0);
        if bound + new.len() > max_per_user {
            return Err(ActorRefusal::TooMany);
        }
        Ok(new)
    }

    /// Binds `actors` to `user` (they passed [`Actors::check`] and their changes were
    /// applied); they are saved with those changes.
    pub(super) fn bind(&mut self, user: UserId, actors: Vec<ActorId>) {
        for actor in actors {
            if !self.owner.contains_key(&actor) {
                self.insert(actor.clone(), user);
                self.unsaved.push((actor, user));
            }
        }
    }

    /// The user an actor is bound to.
    pub(super) fn owner(&self, actor: &ActorId) -> Option<UserId> {
        self.owner.get(actor).copied()
    }

    /// Bindings made since the last save.
    pub(super) fn unsaved(&self) -> &[(ActorId, UserId)] {
        &self.unsaved
    }

    /// Records that the bindings made so far are saved.
    pub(super) fn mark_saved(&mut self) {
        self.unsaved.clear();
    }
}
