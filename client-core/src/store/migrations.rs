//! Versioned schema migrations: the numbered files of `client-core/migrations/`, applied in
//! order, each in its own `BEGIN IMMEDIATE` transaction together with the bump of
//! `PRAGMA user_version`, so a crash during an upgrade leaves the previous version intact.

use rusqlite::{Connection, TransactionBehavior};

use crate::Error;

/// Every migration, in order; the store's `user_version` is the number of those applied.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial.sql", include_str!("../../migrations/0001_initial.sql")),
    ("0002_device_actor.sql", include_str!("../../migrations/0002_device_actor.sql")),
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the schema to [`LATEST`]. Refuses a store written by a newer build.
pub fn apply(conn: &mut Connection) -> Result<(), Error> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read the version inside the write lock: another process may be migrating too.
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > LATEST {
            return Err(Error::Storage(format!(
                "the store has schema version {version}, newer than this build's {LATEST}; \
                 update Tandem"
            )));
        }
        let Some((name, sql)) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql)
            .map_err(|e| Error::Storage(format!("migration {name} failed: {e}")))?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
