//! Which physical database holds which logical shard.
//!
//! Logical shards are fixed from day one: `user_id % 1024` for users and their list index,
//! `list_id % 4096` for lists. The shard map (from config) assigns ranges of them to physical
//! databases; growing means moving logical shards and changing the map, never the rows.

use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tandem_protocol::{ListId, UserId};

use super::{Database, StoreError};
use crate::auth::email::Email;

/// Number of logical user shards (`users`, `user_list_index`, and the email index).
pub const USER_SHARDS: u16 = 1024;
/// Number of logical list shards (`todo_lists`, `todo_items`, `list_collaborators`).
pub const LIST_SHARDS: u16 = 4096;

/// One physical database and the logical shards it holds, as written in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    /// `sqlite:PATH` (relative paths are taken from the data folder) or `postgres://...`.
    pub url: String,
    /// Half-open range `[start, end)` of logical user shards, within `0..1024`.
    #[serde(default)]
    pub users: Option<[u16; 2]>,
    /// Half-open range `[start, end)` of logical list shards, within `0..4096`.
    #[serde(default)]
    pub lists: Option<[u16; 2]>,
}

/// The logical user shard of a user.
pub fn user_shard(user: UserId) -> u16 {
    (user.get() % u64::from(USER_SHARDS)) as u16
}

/// The logical list shard of a list.
pub fn list_shard(list: ListId) -> u16 {
    (list.get() % u64::from(LIST_SHARDS)) as u16
}

/// The logical user shard that holds an email's entry in the email index: the first 8 bytes of
/// the SHA-256 of the normalised email, modulo 1024 (stable across releases and platforms).
pub fn email_shard(normalised_email: &str) -> u16 {
    let digest = Sha256::digest(normalised_email.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(USER_SHARDS)) as u16
}

/// Routes a logical shard to its physical database.
#[derive(Debug, Clone)]
pub struct ShardMap {
    databases: Vec<Arc<Database>>,
    /// Index into `databases` for each logical user shard.
    user_routes: Vec<usize>,
    /// Index into `databases` for each logical list shard.
    list_routes: Vec<usize>,
}

impl ShardMap {
    /// Builds the map, checking that every logical shard of both kinds is held by exactly one
    /// database. `databases[i]` is the database opened for `specs[i]`.
    pub fn new(specs: &[ShardSpec], databases: Vec<Arc<Database>>) -> Result<Self, StoreError> {
        let user_routes = routes(specs, USER_SHARDS, "users", |s| s.users)?;
        let list_routes = routes(specs, LIST_SHARDS, "lists", |s| s.lists)?;
        Ok(Self { databases, user_routes, list_routes })
    }

    /// Checks a shard map without opening anything.
    pub fn validate(specs: &[ShardSpec]) -> Result<(), StoreError> {
        routes(specs, USER_SHARDS, "users", |s| s.users)?;
        routes(specs, LIST_SHARDS, "lists", |s| s.lists)?;
        Ok(())
    }

    /// Every physical database, in config order.
    pub fn databases(&self) -> &[Arc<Database>] {
        &self.databases
    }

    /// The database holding a user's account and list index.
    pub fn for_user(&self, user: UserId) -> &Database {
        &self.databases[self.user_routes[usize::from(user_shard(user))]]
    }

    /// The database holding an email's entry in the email index and its pending invitations.
    pub fn for_email(&self, email: &Email) -> &Database {
        &self.databases[self.user_routes[usize::from(email_shard(email.as_str()))]]
    }

    /// The database holding a list, its items and its collaborators.
    pub fn for_list(&self, list: ListId) -> &Database {
        &self.databases[self.list_routes[usize::from(list_shard(list))]]
    }

    /// The position in [`Self::databases`] of the database holding a list.
    pub fn list_database_index(&self, list: ListId) -> usize {
        self.list_routes[usize::from(list_shard(list))]
    }
}

fn routes(
    specs: &[ShardSpec],
    count: u16,
    kind: &str,
    range_of: impl Fn(&ShardSpec) -> Option<[u16; 2]>,
) -> Result<Vec<usize>, StoreError> {
    let mut routes: Vec<Option<usize>> = vec![None; usize::from(count)];
    for (index, spec) in specs.iter().enumerate() {
        let Some([start, end]) = range_of(spec) else { continue };
        if start >= end || end > count {
            return Err(StoreError::Config(format!(
                "shard {index} ({}): {kind} range [{start}, {end}) must be non-empty and within [0, {count})",
                super::database::redact(&spec.url)
            )));
        }
        let held = usize::from(start)..usize::from(end);
        for (shard, route) in routes.iter_mut().enumerate().take(held.end).skip(held.start) {
            if let Some(other) = route.replace(index) {
                return Err(StoreError::Config(format!(
                    "logical {kind} shard {shard} is assigned to both shard {other} and shard {index}"
                )));
            }
        }
    }
    routes
        .into_iter()
        .enumerate()
        .map(|(shard, route)| {
            route.ok_or_else(|| {
                StoreError::Config(format!(
                    "logical {kind} shard {shard} is not assigned to any database"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: Option<[u16; 2]>, lists: Option<[u16; 2]>) -> ShardSpec {
        ShardSpec { url: "sqlite:x.db".into(), users, lists }
    }

    #[test]
    fn a_map_must_cover_every_shard_once() {
        assert!(ShardMap::validate(&[spec(Some([0, 1024]), Some([0, 4096]))]).is_ok());
        assert!(
            ShardMap::validate(&[
                spec(Some([0, 512]), Some([0, 2048])),
                spec(Some([512, 1024]), Some([2048, 4096])),
            ])
            .is_ok()
        );
        // A gap.
        let err = ShardMap::validate(&[spec(Some([0, 1000]), Some([0, 4096]))]).unwrap_err();
        assert!(err.to_string().contains("users shard 1000 is not assigned"), "{err}");
        // An overlap.
        let err = ShardMap::validate(&[
            spec(Some([0, 1024]), Some([0, 4096])),
            spec(None, Some([4000, 4096])),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("assigned to both"), "{err}");
        // Out of range.
        assert!(ShardMap::validate(&[spec(Some([0, 2000]), Some([0, 4096]))]).is_err());
    }

    #[test]
    fn shards_follow_the_seed() {
        assert_eq!(user_shard(UserId(1024 * 7 + 5)), 5);
        assert_eq!(list_shard(ListId(4096 * 3 + 4095)), 4095);
        // Stable across releases: the email index must never move by itself.
        assert_eq!(email_shard("alice@example.com"), email_shard("alice@example.com"));
        assert!(email_shard("bob@example.com") < USER_SHARDS);
    }
}
