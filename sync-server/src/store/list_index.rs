//! The per-user index of lists (`user_list_index`, on the user's shard).
//!
//! It answers "which lists might this user see" without visiting every list shard. It is a
//! cache: written after the list shard commits, read only to find candidates (which are then
//! checked against the list shard), and rebuilt from the list shards by
//! [`Store::repair_list_index`].

use sqlx::Row;
use tandem_protocol::{ListId, Role, UserId};

use super::{Store, StoreError, now_ms};

/// What [`Store::repair_list_index`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Index rows added or corrected to match a membership on a list shard.
    pub upserted: u64,
    /// Index rows removed because no live membership backs them.
    pub removed: u64,
}

impl Store {
    /// Records that `user` holds `role` on `list`.
    pub async fn index_put(
        &self,
        user: UserId,
        list: ListId,
        role: Role,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_list_index (user_id, list_id, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, list_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user.as_i64())
        .bind(list.as_i64())
        .bind(role.code())
        .bind(now_ms())
        .execute(self.shards.for_user(user).writer())
        .await?;
        Ok(())
    }

    /// Forgets that `user` is a member of `list`.
    pub async fn index_remove(&self, user: UserId, list: ListId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM user_list_index WHERE user_id = $1 AND list_id = $2")
            .bind(user.as_i64())
            .bind(list.as_i64())
            .execute(self.shards.for_user(user).writer())
            .await?;
        Ok(())
    }

    /// The lists the index names for `user`, oldest first. Candidates only: check each
    /// against its list shard ([`Store::accessible_lists`]).
    pub async fn indexed_lists(&self, user: UserId) -> Result<Vec<ListId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT list_id FROM user_list_index WHERE user_id = $1 ORDER BY list_id",
        )
        .bind(user.as_i64())
        .fetch_all(self.shards.for_user(user).pool())
        .await?;
        Ok(ids.into_iter().map(|id| ListId(id as u64)).collect())
    }

    /// Rebuilds every user's list index from the list shards: adds what is missing, fixes
    /// roles, removes entries no live membership backs. Safe to run while serving; run it
    /// after a crash or a failed index write (`tandem-server repair-index`).
    pub async fn repair_list_index(&self) -> Result<RepairReport, StoreError> {
        let mut report = RepairReport::default();
        let mut live = std::collections::HashSet::new();
        for db in self.shards.databases() {
            let rows = sqlx::query(
                "SELECT c.user_id, c.list_id, c.role FROM list_collaborators c
                 JOIN todo_lists l ON l.list_id = c.list_id WHERE l.is_deleted = 0",
            )
            .fetch_all(db.pool())
            .await?;
            for row in rows {
                let user = UserId(row.try_get::<i64, _>(0)? as u64);
                let list = ListId(row.try_get::<i64, _>(1)? as u64);
                // Rows of logical shards this database no longer holds (left behind by a move)
                // are not memberships.
                if !std::ptr::eq(self.shards.for_list(list), db.as_ref()) {
                    continue;
                }
                let role = super::lists::role_from(row.try_get(2)?)?;
                let indexed: Option<i64> = sqlx::query_scalar(
                    "SELECT role FROM user_list_index WHERE user_id = $1 AND list_id = $2",
                )
                .bind(user.as_i64())
                .bind(list.as_i64())
                .fetch_optional(self.shards.for_user(user).pool())
                .await?;
                if indexed != Some(i64::from(role.code())) {
                    self.index_put(user, list, role).await?;
                    report.upserted += 1;
                }
                live.insert((user, list));
            }
        }
        for db in self.shards.databases() {
            let rows = sqlx::query("SELECT user_id, list_id FROM user_list_index")
                .fetch_all(db.pool())
                .await?;
            for row in rows {
                let user = UserId(row.try_get::<i64, _>(0)? as u64);
                let list = ListId(row.try_get::<i64, _>(1)? as u64);
                if !std::ptr::eq(self.shards.for_user(user), db.as_ref())
                    || live.contains(&(user, list))
                {
                    continue;
                }
                // Checked again: the membership may have been created since the scan above.
                match self.access(list, user).await {
                    Ok(_) => {}
                    Err(StoreError::NotFound) => {
                        self.index_remove(user, list).await?;
                        report.removed += 1;
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(report)
    }
}
