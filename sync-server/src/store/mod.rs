//! Durable state, sharded per SPEC section 4 over one or many physical databases.
//!
//! - [`shard_map`]: logical shard -> physical database, from config.
//! - [`database`]: one physical database (SQLite or PostgreSQL) and its migrations.
//! - [`accounts`]: users and the email index (uniqueness of emails across user shards).
//! - [`lists`]: lists, their items and who may do what with them; the list shard is the
//!   authority on membership.
//! - [`documents`]: each list's Automerge document (snapshot + chunks), saved together with
//!   the rows derived from it.
//! - [`group_commit`]: one writer task per database that saves many rooms' changes in one
//!   transaction.
//! - [`history`]: who each Automerge actor belongs to, and the changes the server accepted
//!   (who, when, what): a list's verified history.
//! - [`sharing`]: collaborators and pending invitations.
//! - [`list_index`]: the per-user index of lists, a repairable cache of the list shards.
//! - [`email_migration`]: rewriting emails stored before the current normal form.
//!
//! # Writes across two databases
//! A list's shard and a user's index shard may be different databases, so no transaction
//! spans both. The rule: the list shard is authoritative and is written first; the user's
//! `user_list_index` is written after it, read only to find candidate lists (every candidate
//! is checked against the list shard), and rebuilt by [`Store::repair_list_index`] if a crash
//! fell between the two writes.

pub mod accounts;
pub mod database;
pub mod documents;
pub mod email_migration;
mod error;
pub mod group_commit;
pub mod history;
pub mod list_index;
pub mod lists;
pub mod shard_map;
pub mod sharing;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use database::{Database, Engine, Readiness};
pub use error::StoreError;
pub use history::{AcceptedChange, ActorBinding};
pub use shard_map::{ShardMap, ShardSpec};

/// The sharded store. Cheap to clone; every clone shares the same pools.
///
/// No access checks happen at this level unless a method says so: methods that act for a
/// user on a list (`rename_list`, `share`, ...) check that user's role inside the list
/// shard's transaction, so the check and the write cannot be separated by a concurrent change.
#[derive(Debug, Clone)]
pub struct Store {
    shards: Arc<ShardMap>,
}

impl Store {
    /// Opens every physical database of the shard map (creating and migrating as needed).
    /// Relative SQLite paths are taken from `data_dir`.
    pub async fn open(specs: &[ShardSpec], data_dir: &Path) -> Result<Self, StoreError> {
        ShardMap::validate(specs)?;
        let mut databases = Vec::with_capacity(specs.len());
        for spec in specs {
            let url = resolve_sqlite_path(&spec.url, data_dir);
            databases.push(Arc::new(Database::open(&url).await?));
        }
        Ok(Self { shards: Arc::new(ShardMap::new(specs, databases)?) })
    }

    /// The shard map, for tests and operations that walk every database.
    pub fn shards(&self) -> &ShardMap {
        &self.shards
    }

    /// Whether each physical database answers, by label.
    pub async fn health(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for db in self.shards.databases() {
            out.push((db.label().to_owned(), db.ping().await));
        }
        out
    }

    /// Each physical database's readiness, by label, checked at once; a database that does
    /// not answer within `within` counts as not answering.
    pub async fn readiness(&self, within: std::time::Duration) -> Vec<(String, Readiness)> {
        let checks = self.shards.databases().iter().map(|db| async move {
            let readiness = tokio::time::timeout(within, db.readiness())
                .await
                .unwrap_or(Readiness { answers: false, missing_migrations: Vec::new() });
            (db.label().to_owned(), readiness)
        });
        futures_util::future::join_all(checks).await
    }

    /// Each physical database's pool connections, for `/metrics`.
    pub fn pool_stats(&self) -> Vec<crate::metrics::PoolStats> {
        self.shards
            .databases()
            .iter()
            .map(|db| {
                let (size, idle) = db.connections();
                crate::metrics::PoolStats { database: db.label().to_owned(), size, idle }
            })
            .collect()
    }

    /// Closes every pool.
    pub async fn close(&self) {
        for db in self.shards.databases() {
            db.close().await;
        }
    }
}

/// `sqlite:relative.db` becomes a URL under `data_dir`; other URLs are returned unchanged.
fn resolve_sqlite_path(url: &str, data_dir: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else { return url.to_owned() };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let path = Path::new(path);
    let full = if path.is_absolute() { path.to_path_buf() } else { data_dir.join(path) };
    let mut url = database::sqlite_url(&full);
    if let Some(query) = query {
        url.push('&');
        url.push_str(query);
    }
    url
}

/// Now, in Unix milliseconds: the unit of every timestamp column.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_live_in_the_data_folder() {
        let dir = Path::new("/srv/tandem");
        assert_eq!(
            resolve_sqlite_path("sqlite:tandem.db", dir),
            "sqlite:///srv/tandem/tandem.db?mode=rwc"
        );
        assert_eq!(resolve_sqlite_path("sqlite:///abs/a.db", dir), "sqlite:///abs/a.db?mode=rwc");
        assert_eq!(resolve_sqlite_path("postgres://h/db", dir), "postgres://h/db");
    }
}
