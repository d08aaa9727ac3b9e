//! Lists, their items and their members' roles, all on the list's shard.
//!
//! Every method that acts for a user reads that user's role in the same transaction as its
//! write. A deleted list, or a list the user is not a member of, is `NotFound`: callers never
//! learn that a list they cannot see exists.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tandem_protocol::{ItemId, ListId, Role, UserId};

use super::{Store, StoreError, now_ms};

/// A list's own row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRecord {
    /// The list's id.
    pub id: ListId,
    /// Who created it.
    pub owner: UserId,
    /// Its title.
    pub title: String,
    /// Bumped by every change.
    pub version: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// A list as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The list.
    pub list: ListRecord,
    /// The member's role on it.
    pub role: Role,
}

/// One item of a list, as kept in `todo_items`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    /// The item's id, unique within the list.
    pub id: ItemId,
    /// Its text.
    pub content: String,
    /// Whether it is done.
    pub done: bool,
    /// Its fractional-index position.
    pub sort_rank: String,
}

impl From<tandem_protocol::Item> for ItemRecord {
    fn from(item: tandem_protocol::Item) -> Self {
        Self { id: item.id, content: item.content, done: item.done, sort_rank: item.sort_rank }
    }
}

/// A member of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collaborator {
    /// The member's account.
    pub user: UserId,
    /// The member's email.
    pub email: String,
    /// The member's role.
    pub role: Role,
}

/// Everything `read?id=` shows of a list.
#[derive(Debug, Clone)]
pub struct ListDetail {
    /// The list and the caller's role.
    pub access: Access,
    /// Items in display order (`sort_rank`, then item id).
    pub items: Vec<ItemRecord>,
    /// Members, owner first.
    pub collaborators: Vec<Collaborator>,
}

const ACCESS_SQL: &str = "SELECT l.list_id, l.owner_id, l.title, l.version, l.created_at,
                                 l.updated_at, c.role
                          FROM todo_lists l
                          JOIN list_collaborators c ON c.list_id = l.list_id AND c.user_id = $2
                          WHERE l.list_id = $1 AND l.is_deleted = 0";

impl Store {
    /// Creates a list owned by `owner` with its initial document (`snapshot`, whose title is
    /// `title`), then adds it to the owner's list index.
    pub async fn create_list(
        &self,
        id: ListId,
        owner: UserId,
        owner_email: &str,
        title: &str,
        snapshot: &[u8],
    ) -> Result<ListRecord, StoreError> {
        let now = now_ms();
        let mut tx = self.shards.for_list(id).begin_write().await?;
        sqlx::query(
            "INSERT INTO todo_lists (list_id, owner_id, title, version, is_deleted, created_at, updated_at)
             VALUES ($1, $2, $3, 1, 0, $4, $4)",
        )
        .bind(id.as_i64())
        .bind(owner.as_i64())
        .bind(title)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_collaborator(&mut tx, id, owner, owner_email, Role::Owner, now).await?;
        super::documents::upsert_snapshot(&mut tx, id, snapshot).await?;
        tx.commit().await?;
        self.index_put(owner, id, Role::Owner).await?;
        Ok(ListRecord {
            id,
            owner,
            title: title.to_owned(),
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// The list as `user` sees it, or `NotFound`.
    pub async fn access(&self, list: ListId, user: UserId) -> Result<Access, StoreError> {
        let row = sqlx::query(ACCESS_SQL)
            .bind(list.as_i64())
            .bind(user.as_i64())
            .fetch_optional(self.shards.for_list(list).pool())
            .await?;
        row.as_ref().map(access_from_row).transpose()?.ok_or(StoreError::NotFound)
    }

    /// The list with its items and members, as `user` sees it, read in one transaction.
    pub async fn list_detail(&self, list: ListId, user: UserId) -> Result<ListDetail, StoreError> {
        let mut tx = self.shards.for_list(list).pool().begin().await?;
        let access = access_in(&mut tx, list, user).await?;
        let items = sqlx::query(
            "SELECT item_id, content, is_done, sort_rank FROM todo_items
             WHERE list_id = $1 ORDER BY sort_rank, item_id",
        )
        .bind(list.as_i64())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok(ItemRecord {
                id: ItemId(row.try_get::<i64, _>(0)? as u64),
                content: row.try_get(1)?,
                done: row.try_get::<i64, _>(2)? != 0,
                sort_rank: row.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let collaborators = collaborators_in(&mut tx, list).await?;
        tx.commit().await?;
        Ok(ListDetail { access, items, collaborators })
    }

    /// The lists `user` can see among `candidates`, in the order given. Candidates on one
    /// database are checked with one query.
    pub async fn accessible_lists(
        &self,
        user: UserId,
        candidates: &[ListId],
    ) -> Result<Vec<Access>, StoreError> {
        let mut by_db: Vec<Vec<ListId>> = vec![Vec::new(); self.shards.databases().len()];
        for &list in candidates {
            by_db[self.shards.list_database_index(list)].push(list);
        }
        let mut found = Vec::new();
        for (db, lists) in self.shards.databases().iter().zip(by_db) {
            for chunk in lists.chunks(500) {
                let placeholders: Vec<String> =
                    (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
                let sql = format!(
                    "SELECT l.list_id, l.owner_id, l.title, l.version, l.created_at, l.updated_at, c.role
                     FROM todo_lists l
                     JOIN list_collaborators c ON c.list_id = l.list_id AND c.user_id = $1
                     WHERE l.is_deleted = 0 AND l.list_id IN ({})",
                    placeholders.join(", ")
                );
                // The statement text depends only on the number of candidates.
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.as_i64());
                for list in chunk {
                    query = query.bind(list.as_i64());
                }
                for row in query.fetch_all(db.pool()).await? {
                    found.push(access_from_row(&row)?);
                }
            }
        }
        let position = |id: ListId| candidates.iter().position(|&c| c == id);
        found.sort_by_key(|a| position(a.list.id));
        Ok(found)
    }

    /// Soft-deletes a list (OWNER only), then removes it from every member's list index.
    /// Returns the members it had.
    pub async fn delete_list(&self, list: ListId, user: UserId) -> Result<Vec<UserId>, StoreError> {
        let mut tx = self.shards.for_list(list).begin_write().await?;
        let access = access_in(&mut tx, list, user).await?;
        if !access.role.can_delete() {
            return Err(StoreError::Forbidden("Only the owner can delete a list.".into()));
        }
        sqlx::query(
            "UPDATE todo_lists SET is_deleted = 1, version = version + 1, updated_at = $2 WHERE list_id = $1",
        )
        .bind(list.as_i64())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let members = collaborators_in(&mut tx, list).await?;
        tx.commit().await?;
        for member in &members {
            self.index_remove(member.user, list).await?;
        }
        Ok(members.into_iter().map(|m| m.user).collect())
    }

    /// Reserves list ids for `user`, so that lists the user creates offline keep their ids,
    /// unless the user would then hold more than `cap` reserved ids not yet used (`Invalid`,
    /// and nothing is reserved). An id stops counting when its list is created.
    ///
    /// The ids are inserted, one transaction per database, between two counts. The first
    /// count refuses without writing anything. The second catches concurrent calls of the same
    /// user: of any two calls, the one that finishes inserting last counts the other's ids too,
    /// so the calls that keep their ids never hold more than `cap` together; a call over the
    /// cap deletes its own ids again. Calls that race past the cap together may all be
    /// refused (no lock is held across databases); a later call then succeeds.
    pub async fn reserve_list_ids(
        &self,
        user: UserId,
        ids: &[ListId],
        cap: usize,
    ) -> Result<(), StoreError> {
        let refuse = |held: usize| {
            StoreError::Invalid(format!(
                "You hold {held} reserved list ids not used yet; at most {cap} may be held. \
                 Sync the lists made offline under them before reserving more."
            ))
        };
        let held = self.reserved_id_count(user).await?;
        if held + ids.len() > cap {
            return Err(refuse(held));
        }
        let now = now_ms();
        for (db, ids) in self.group_by_list_database(ids) {
            let mut tx = db.begin_write().await?;
            for id in ids {
                sqlx::query(
                    "INSERT INTO reserved_list_ids (list_id, user_id, created_at)
                     VALUES ($1, $2, $3)",
                )
                .bind(id.as_i64())
                .bind(user.as_i64())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        let held = self.reserved_id_count(user).await?;
        if held > cap {
            for (db, ids) in self.group_by_list_database(ids) {
                let mut tx = db.begin_write().await?;
                for id in ids {
                    sqlx::query(
                        "DELETE FROM reserved_list_ids WHERE list_id = $1 AND user_id = $2",
                    )
                    .bind(id.as_i64())
                    .bind(user.as_i64())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            return Err(refuse(held - ids.len()));
        }
        Ok(())
    }

    /// How many list ids `user` holds reserved and not yet used, over every database (one
    /// indexed count each).
    pub async fn reserved_id_count(&self, user: UserId) -> Result<usize, StoreError> {
        let mut held = 0;
        for db in self.shards.databases() {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM reserved_list_ids WHERE user_id = $1")
                    .bind(user.as_i64())
                    .fetch_one(db.pool())
                    .await?;
            held += usize::try_from(n).unwrap_or(0);
        }
        Ok(held)
    }

    /// `ids` grouped by the database holding their list shard.
    fn group_by_list_database<'a>(
        &'a self,
        ids: &[ListId],
    ) -> Vec<(&'a super::Database, Vec<ListId>)> {
        let databases = self.shards.databases();
        let mut groups: Vec<Vec<ListId>> = vec![Vec::new(); databases.len()];
        for &id in ids {
            groups[self.shards.list_database_index(id)].push(id);
        }
        databases
            .iter()
            .zip(groups)
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(db, ids)| (db.as_ref(), ids))
            .collect()
    }
}

/// The list as `user` sees it, inside a transaction on the list's shard.
pub(super) async fn access_in(
    tx: &mut Transaction<'static, Any>,
    list: ListId,
    user: UserId,
) -> Result<Access, StoreError> {
    let row = sqlx::query(ACCESS_SQL)
        .bind(list.as_i64())
        .bind(user.as_i64())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(access_from_row).transpose()?.ok_or(StoreError::NotFound)
}

/// Every member of a list, owner first, then by email.
pub(super) async fn collaborators_in(
    tx: &mut Transaction<'static, Any>,
    list: ListId,
) -> Result<Vec<Collaborator>, StoreError> {
    sqlx::query("SELECT user_id, email, role FROM list_collaborators WHERE list_id = $1 ORDER BY role, email")
        .bind(list.as_i64())
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| {
            Ok(Collaborator {
                user: UserId(row.try_get::<i64, _>(0)? as u64),
                email: row.try_get(1)?,
                role: role_from(row.try_get(2)?)?,
            })
        })
        .collect()
}

/// Adds a member, or changes the role of an existing one.
pub(super) async fn insert_collaborator(
    tx: &mut Transaction<'static, Any>,
    list: ListId,
    user: UserId,
    email: &str,
    role: Role,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO list_collaborators (list_id, user_id, email, role, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (list_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(list.as_i64())
    .bind(user.as_i64())
    .bind(email)
    .bind(role.code())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) fn role_from(code: i64) -> Result<Role, StoreError> {
    Role::from_code(code).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn access_from_row(row: &AnyRow) -> Result<Access, StoreError> {
    Ok(Access {
        list: ListRecord {
            id: ListId(row.try_get::<i64, _>(0)? as u64),
            owner: UserId(row.try_get::<i64, _>(1)? as u64),
            title: row.try_get(2)?,
            version: row.try_get(3)?,
            created_at: row.try_get(4)?,
            updated_at: row.try_get(5)?,
        },
        role: role_from(row.try_get(6)?)?,
    })
}
