//! Each list's Automerge document, kept beside its rows on the list's shard: a snapshot plus
//! incremental change chunks appended after it, compacted back into a snapshot from time to
//! time. Saving a chunk also brings `todo_lists` and `todo_items` in step with the document,
//! in the same transaction, so REST reads and SQL see what sync clients see, and records the
//! new actor bindings and the accepted changes of the list's [`history`](super::history): a
//! save that fails leaves none of them.

use sqlx::Row as _;
use tandem_protocol::{ItemId, ListId, Role, UserId};

use super::history::{AcceptedChange, ActorBinding, bind_actors, load_actors, record_accepted};
use super::lists::{ItemRecord, access_in, insert_collaborator};
use super::{Store, StoreError, now_ms};

/// A list's document as stored.
#[derive(Debug, Clone, Default)]
pub struct StoredDocument {
    /// The snapshot followed by every chunk after it, in order: load them in turn.
    pub parts: Vec<Vec<u8>>,
    /// The sequence number of the last chunk (0 if none).
    pub last_seq: i64,
    /// Chunks after the snapshot.
    pub chunks: usize,
    /// Total stored bytes.
    pub bytes: usize,
    /// Every actor bound on the list, read in the same transaction as the document.
    pub actors: Vec<ActorBinding>,
}

/// Where a save left its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// The sequence number of the chunk appended (restarts after compaction).
    pub seq: i64,
    /// The list's version now: one more than before the save, for good (protocol version 2
    /// numbers its frames with it).
    pub version: i64,
}

/// One room's save: the change chunk and what the relational rows must become.
#[derive(Debug, Clone)]
pub struct Save {
    /// The list.
    pub list: ListId,
    /// The changes since the last save, as one chunk.
    pub chunk: Vec<u8>,
    /// The document's title.
    pub title: String,
    /// Items new or changed since the last save.
    pub upserts: Vec<ItemRecord>,
    /// Items removed since the last save.
    pub removed: Vec<ItemId>,
    /// Every item row is dropped first, and `upserts` holds every item: for a merge that
    /// changed the document's top level (say, two replicas each created the items map).
    pub replace_all: bool,
    /// Actors first seen in this chunk, each bound to the user who sent it. One already bound
    /// to the same user is a no-op; to another user it fails the whole save
    /// ([`StoreError::ActorTaken`]).
    pub new_actors: Vec<ActorBinding>,
    /// The changes of this chunk, for the list's history; accepted at the server's clock when
    /// the save is written.
    pub accepted: Vec<AcceptedChange>,
}

impl Store {
    /// The stored document of a live list (`NotFound` if it does not exist or is deleted).
    pub async fn load_document(&self, list: ListId) -> Result<StoredDocument, StoreError> {
        let mut tx = self.shards.for_list(list).pool().begin().await?;
        ensure_live(&mut tx, list).await?;
        let mut doc = StoredDocument::default();
        let snapshot: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT snapshot FROM list_documents WHERE list_id = $1")
                .bind(list.as_i64())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(snapshot) = snapshot {
            doc.bytes += snapshot.len();
            doc.parts.push(snapshot);
        }
        for row in sqlx::query("SELECT seq, data FROM list_changes WHERE list_id = $1 ORDER BY seq")
            .bind(list.as_i64())
            .fetch_all(&mut *tx)
            .await?
        {
            doc.last_seq = row.try_get(0)?;
            let data: Vec<u8> = row.try_get(1)?;
            doc.bytes += data.len();
            doc.chunks += 1;
            doc.parts.push(data);
        }
        doc.actors = load_actors(&mut tx, list).await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// Appends a chunk of changes to a live list's document and brings its rows in step, in
    /// one transaction; bumps the list's version. Returns the chunk's sequence number. Saves
    /// of many lists arriving together share one transaction and one commit (see
    /// [`group_commit`](super::group_commit)).
    pub async fn save_changes(&self, save: Save) -> Result<Saved, StoreError> {
        self.shards.for_list(save.list).save(save).await
    }

    /// Renames a list for `user` (OWNER or EDITOR) with the document change that sets the
    /// title, its actor bindings and its history, in one transaction. With
    /// `expected_version`, `Conflict` unless the list is at it.
    #[allow(clippy::too_many_arguments)] // the rename, its check and its change, written at once
    pub async fn rename_with_change(
        &self,
        list: ListId,
        user: UserId,
        title: &str,
        expected_version: Option<i64>,
        chunk: &[u8],
        new_actors: &[ActorBinding],
        accepted: &[AcceptedChange],
    ) -> Result<(i64, i64), StoreError> {
        let mut tx = self.shards.for_list(list).begin_write().await?;
        let access = access_in(&mut tx, list, user).await?;
        if !access.role.can_edit() {
            return Err(StoreError::Forbidden("Viewers cannot change a list.".into()));
        }
        if let Some(expected) = expected_version.filter(|&v| v != access.list.version) {
            return Err(StoreError::Conflict(format!(
                "The list is at version {}, not {expected}; read it again and retry.",
                access.list.version
            )));
        }
        touch_list(&mut tx, list, title).await?;
        bind_actors(&mut tx, list, new_actors).await?;
        let seq = append_chunk(&mut tx, list, chunk).await?;
        record_accepted(&mut tx, list, accepted).await?;
        tx.commit().await?;
        Ok((seq, access.list.version + 1))
    }

    /// Replaces the snapshot with `snapshot` and drops the chunks it includes (`seq <=
    /// through_seq`).
    pub async fn compact_document(
        &self,
        list: ListId,
        snapshot: &[u8],
        through_seq: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.shards.for_list(list).begin_write().await?;
        upsert_snapshot(&mut tx, list, snapshot).await?;
        sqlx::query("DELETE FROM list_changes WHERE list_id = $1 AND seq <= $2")
            .bind(list.as_i64())
            .bind(through_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `user` reserved `list` and it is not yet created.
    pub async fn is_reserved(&self, list: ListId, user: UserId) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM reserved_list_ids WHERE list_id = $1 AND user_id = $2",
        )
        .bind(list.as_i64())
        .bind(user.as_i64())
        .fetch_optional(self.shards.for_list(list).pool())
        .await?;
        Ok(found.is_some())
    }

    /// Creates a list first seen through sync, under an id that `owner` reserved earlier, with
    /// its document, rows, actor bindings and history. `NotFound` if the id was not reserved
    /// by `owner`.
    #[allow(clippy::too_many_arguments)] // each is one part of the new list, all written at once
    pub async fn create_list_from_sync(
        &self,
        list: ListId,
        owner: UserId,
        owner_email: &str,
        snapshot: &[u8],
        title: &str,
        items: &[ItemRecord],
        new_actors: &[ActorBinding],
        accepted: &[AcceptedChange],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.shards.for_list(list).begin_write().await?;
        let reserved =
            sqlx::query("DELETE FROM reserved_list_ids WHERE list_id = $1 AND user_id = $2")
                .bind(list.as_i64())
                .bind(owner.as_i64())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if reserved == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO todo_lists (list_id, owner_id, title, version, is_deleted, created_at, updated_at)
             VALUES ($1, $2, $3, 1, 0, $4, $4)",
        )
        .bind(list.as_i64())
        .bind(owner.as_i64())
        .bind(title)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_collaborator(&mut tx, list, owner, owner_email, Role::Owner, now).await?;
        upsert_snapshot(&mut tx, list, snapshot).await?;
        write_item_rows(&mut tx, list, items, &[], false).await?;
        bind_actors(&mut tx, list, new_actors).await?;
        record_accepted(&mut tx, list, accepted).await?;
        tx.commit().await?;
        self.index_put(owner, list, Role::Owner).await?;
        Ok(())
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// `NotFound` unless the list exists and is not deleted.
async fn ensure_live(tx: &mut Tx, list: ListId) -> Result<(), StoreError> {
    let deleted: Option<i64> =
        sqlx::query_scalar("SELECT is_deleted FROM todo_lists WHERE list_id = $1")
            .bind(list.as_i64())
            .fetch_optional(&mut **tx)
            .await?;
    if deleted == Some(0) { Ok(()) } else { Err(StoreError::NotFound) }
}

/// Writes one save inside `tx`: `NotFound` (and nothing written) if the list is gone. Any
/// other error may leave part of the save written: the caller must not commit `tx`.
pub(super) async fn write_save(tx: &mut Tx, save: &Save) -> Result<Saved, StoreError> {
    // First: it writes nothing when the list is gone, and takes the list's row lock.
    let version = touch_list(tx, save.list, &save.title).await?;
    bind_actors(tx, save.list, &save.new_actors).await?;
    let seq = append_chunk(tx, save.list, &save.chunk).await?;
    write_item_rows(tx, save.list, &save.upserts, &save.removed, save.replace_all).await?;
    record_accepted(tx, save.list, &save.accepted).await?;
    Ok(Saved { seq, version })
}

/// Sets the title and bumps the version of a live list, returning the new version;
/// `NotFound` if it is not live.
async fn touch_list(tx: &mut Tx, list: ListId, title: &str) -> Result<i64, StoreError> {
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE todo_lists SET title = $2, version = version + 1, updated_at = $3
         WHERE list_id = $1 AND is_deleted = 0
         RETURNING version",
    )
    .bind(list.as_i64())
    .bind(title)
    .bind(now_ms())
    .fetch_optional(&mut **tx)
    .await?;
    version.ok_or(StoreError::NotFound)
}

pub(super) async fn upsert_snapshot(
    tx: &mut Tx,
    list: ListId,
    snapshot: &[u8],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO list_documents (list_id, snapshot, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (list_id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
    )
    .bind(list.as_i64())
    .bind(snapshot)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn append_chunk(tx: &mut Tx, list: ListId, chunk: &[u8]) -> Result<i64, StoreError> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO list_changes (list_id, seq, data, created_at)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM list_changes WHERE list_id = $1
         RETURNING seq",
    )
    .bind(list.as_i64())
    .bind(chunk)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    Ok(seq)
}

async fn write_item_rows(
    tx: &mut Tx,
    list: ListId,
    upserts: &[ItemRecord],
    removed: &[ItemId],
    replace_all: bool,
) -> Result<(), StoreError> {
    let now = now_ms();
    if replace_all {
        sqlx::query("DELETE FROM todo_items WHERE list_id = $1")
            .bind(list.as_i64())
            .execute(&mut **tx)
            .await?;
    }
    for item in removed {
        sqlx::query("DELETE FROM todo_items WHERE list_id = $1 AND item_id = $2")
            .bind(list.as_i64())
            .bind(item.as_i64())
            .execute(&mut **tx)
            .await?;
    }
    for item in upserts {
        sqlx::query(
            "INSERT INTO todo_items (list_id, item_id, content, is_done, sort_rank, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (list_id, item_id) DO UPDATE SET content = excluded.content,
                 is_done = excluded.is_done, sort_rank = excluded.sort_rank, updated_at = excluded.updated_at",
        )
        .bind(list.as_i64())
        .bind(item.id.as_i64())
        .bind(&item.content)
        .bind(i16::from(item.done))
        .bind(&item.sort_rank)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
