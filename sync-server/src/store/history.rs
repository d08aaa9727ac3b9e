//! A list's verified history, on the list's shard: which user each Automerge actor id belongs
//! to (`list_actors`), and every change the server accepted with who made it, when, and what
//! it did (`list_history`, `list_history_actions`).
//!
//! An Automerge change names its actor, and any peer can name any actor; the actor's owner is
//! what the server vouches for. The room binds an actor to the user who first sends a change
//! made by it and refuses that actor from anyone else; this module stores those bindings and
//! the accepted changes in the transaction that saves the changes themselves (see
//! [`documents`](super::documents)), so a change is in the history exactly when it is stored,
//! and serves the history newest first, one page at a time.
//!
//! Two nodes racing to bind one actor to two users: the primary key `(list_id, actor)`
//! decides. The loser's insert finds the winner's row (PostgreSQL waits for the winner's
//! commit first) and its whole save fails with [`StoreError::ActorTaken`].

use std::collections::{HashMap, HashSet};

use sqlx::Row as _;
use sqlx::any::AnyRow;
use tandem_protocol::history::ChangeAction;
use tandem_protocol::{ItemId, ListId, UserId};

use super::lists::access_in;
use super::{Store, StoreError, now_ms};

/// An Automerge actor id bound to the user who first sent a change made by it, on one list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActorBinding {
    /// The actor id's bytes (`automerge::ActorId::to_bytes`).
    pub actor: Vec<u8>,
    /// The user every change made by this actor belongs to.
    pub user: UserId,
}

/// A change the server accepted: its hash, who sent it (the user its actor is bound to) and
/// what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedChange {
    /// The Automerge change hash.
    pub hash: [u8; 32],
    /// The user the change's actor is bound to.
    pub user: UserId,
    /// What it did, in order.
    pub actions: Vec<ChangeAction>,
}

/// Which page of a list's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only the changes that did something to this item.
    pub item: Option<ItemId>,
    /// Only changes older than this cursor ([`HistoryPage::next_before`] of the previous
    /// page); `None` for the newest.
    pub before: Option<i64>,
    /// Most entries on the page.
    pub limit: u32,
}

/// One accepted change as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Its place in the list's history: larger is newer.
    pub seq: i64,
    /// The Automerge change hash.
    pub hash: [u8; 32],
    /// Who made it.
    pub user: UserId,
    /// That user's email (`None` only if the account row cannot be found).
    pub email: Option<String>,
    /// When the server accepted it, Unix ms.
    pub accepted_at: i64,
    /// What it did, in order.
    pub actions: Vec<ChangeAction>,
}

/// A page of a list's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryPage {
    /// The entries, newest first.
    pub entries: Vec<HistoryEntry>,
    /// The cursor for the next (older) page, `None` on the last page.
    pub next_before: Option<i64>,
}

/// Changes written per `INSERT` (five values each).
const CHANGES_PER_INSERT: usize = 100;
/// Action rows written per `INSERT` (five values each).
const ACTIONS_PER_INSERT: usize = 200;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// A page of `list`'s history as `user` (any member) may read it, newest first; `NotFound`
    /// for anyone else, exactly as reading the list. Emails of members come from the list's
    /// shard; those of former members from their accounts.
    pub async fn history(
        &self,
        list: ListId,
        user: UserId,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        let limit = i64::from(query.limit);
        let before = query.before.unwrap_or(i64::MAX);
        let mut tx = self.shards.for_list(list).pool().begin().await?;
        access_in(&mut tx, list, user).await?;
        let item_filter = match query.item {
            // Driven by the item index: only the changes that touched the item are read.
            Some(_) => {
                "AND h.seq IN (SELECT a.seq FROM list_history_actions a
                               WHERE a.list_id = $1 AND a.item_id = $4 AND a.seq < $2)"
            }
            None => "",
        };
        let sql = format!(
            "SELECT h.seq, h.hash, h.user_id, h.accepted_at, c.email
             FROM list_history h
             LEFT JOIN list_collaborators c ON c.list_id = h.list_id AND c.user_id = h.user_id
             WHERE h.list_id = $1 AND h.seq < $2 {item_filter}
             ORDER BY h.seq DESC LIMIT $3"
        );
        // One more than asked: whether an older page exists.
        let mut q =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(list.as_i64()).bind(before).bind(limit + 1);
        if let Some(item) = query.item {
            q = q.bind(item.as_i64());
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut entries = rows.iter().map(entry_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_before = if entries.len() as i64 > limit {
            entries.truncate(query.limit as usize);
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        read_actions(&mut tx, list, &mut entries).await?;
        tx.commit().await?;
        self.fill_former_members_emails(&mut entries).await?;
        Ok(HistoryPage { entries, next_before })
    }

    /// Emails of users who are no longer members, from their accounts (user shards).
    async fn fill_former_members_emails(
        &self,
        entries: &mut [HistoryEntry],
    ) -> Result<(), StoreError> {
        let missing: HashSet<UserId> =
            entries.iter().filter(|e| e.email.is_none()).map(|e| e.user).collect();
        let mut found = HashMap::with_capacity(missing.len());
        for user in missing {
            let email: Option<String> =
                sqlx::query_scalar("SELECT email FROM users WHERE user_id = $1")
                    .bind(user.as_i64())
                    .fetch_optional(self.shards.for_user(user).pool())
                    .await?;
            if let Some(email) = email {
                found.insert(user, email);
            }
        }
        for entry in entries.iter_mut().filter(|e| e.email.is_none()) {
            entry.email = found.get(&entry.user).cloned();
        }
        Ok(())
    }
}

/// Every actor bound on `list`, inside the caller's transaction.
pub(super) async fn load_actors(
    tx: &mut Tx,
    list: ListId,
) -> Result<Vec<ActorBinding>, StoreError> {
    sqlx::query("SELECT actor, user_id FROM list_actors WHERE list_id = $1")
        .bind(list.as_i64())
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| {
            Ok(ActorBinding {
                actor: row.try_get(0)?,
                user: UserId(row.try_get::<i64, _>(1)? as u64),
            })
        })
        .collect()
}

/// Binds each actor of `bindings` to its user on `list`, inside the caller's transaction. An
/// actor already bound to the same user is left as it is; one bound to another user is
/// [`StoreError::ActorTaken`], and the caller must not commit.
pub(super) async fn bind_actors(
    tx: &mut Tx,
    list: ListId,
    bindings: &[ActorBinding],
) -> Result<(), StoreError> {
    let now = now_ms();
    for binding in bindings {
        let inserted = sqlx::query(
            "INSERT INTO list_actors (list_id, actor, user_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (list_id, actor) DO NOTHING",
        )
        .bind(list.as_i64())
        .bind(binding.actor.as_slice())
        .bind(binding.user.as_i64())
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            continue;
        }
        // Bound before (or by a transaction that committed while this insert waited for it).
        let owner: i64 =
            sqlx::query_scalar("SELECT user_id FROM list_actors WHERE list_id = $1 AND actor = $2")
                .bind(list.as_i64())
                .bind(binding.actor.as_slice())
                .fetch_one(&mut **tx)
                .await?;
        if owner != binding.user.as_i64() {
            return Err(StoreError::ActorTaken { list, actor: hex(&binding.actor) });
        }
    }
    Ok(())
}

/// Records `accepted` as the newest changes of `list`'s history, accepted now, inside the
/// caller's transaction. A change already recorded is left as it is.
pub(super) async fn record_accepted(
    tx: &mut Tx,
    list: ListId,
    accepted: &[AcceptedChange],
) -> Result<(), StoreError> {
    if accepted.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    // Callers hold the list's row lock (they updated `todo_lists` first), so no other save of
    // this list numbers its changes at the same time.
    let last: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM list_history WHERE list_id = $1")
            .bind(list.as_i64())
            .fetch_one(&mut **tx)
            .await?;
    let mut recorded: Vec<(i64, &AcceptedChange)> = Vec::with_capacity(accepted.len());
    for (batch_no, batch) in accepted.chunks(CHANGES_PER_INSERT).enumerate() {
        let first_seq = last + 1 + (batch_no * CHANGES_PER_INSERT) as i64;
        let sql = format!(
            "INSERT INTO list_history (list_id, seq, hash, user_id, accepted_at) VALUES {}
             ON CONFLICT (list_id, hash) DO NOTHING RETURNING seq",
            values_placeholders(batch.len(), 5)
        );
        // The statement text depends only on the number of rows.
        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        for (i, change) in batch.iter().enumerate() {
            query = query
                .bind(list.as_i64())
                .bind(first_seq + i as i64)
                .bind(change.hash.as_slice())
                .bind(change.user.as_i64())
                .bind(now);
        }
        for seq in query.fetch_all(&mut **tx).await? {
            recorded.push((seq, &batch[(seq - first_seq) as usize]));
        }
    }
    let rows: Vec<(i64, i32, ChangeAction)> = recorded
        .iter()
        .flat_map(|&(seq, change)| {
            change.actions.iter().enumerate().map(move |(pos, &action)| (seq, pos as i32, action))
        })
        .collect();
    for batch in rows.chunks(ACTIONS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO list_history_actions (list_id, seq, position, action, item_id) VALUES {}",
            values_placeholders(batch.len(), 5)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for &(seq, position, action) in batch {
            let (name, item) = action_parts(action);
            query = query
                .bind(list.as_i64())
                .bind(seq)
                .bind(position)
                .bind(name)
                .bind(item.map(ItemId::as_i64));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `($1, $2, ...), (...)`: `rows` tuples of `columns` placeholders.
fn values_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let params: Vec<String> =
                (1..=columns).map(|col| format!("${}", row * columns + col)).collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the actions of `entries` (all of `list`) into them.
async fn read_actions(
    tx: &mut Tx,
    list: ListId,
    entries: &mut [HistoryEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (0..entries.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT seq, action, item_id FROM list_history_actions
         WHERE list_id = $1 AND seq IN ({}) ORDER BY seq, position",
        placeholders.join(", ")
    );
    // The statement text depends only on the number of entries.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(list.as_i64());
    for entry in entries.iter() {
        query = query.bind(entry.seq);
    }
    let position: HashMap<i64, usize> =
        entries.iter().enumerate().map(|(i, e)| (e.seq, i)).collect();
    for row in query.fetch_all(&mut **tx).await? {
        let seq: i64 = row.try_get(0)?;
        let name: String = row.try_get(1)?;
        let item: Option<i64> = row.try_get(2)?;
        let action = action_from(&name, item.map(|id| ItemId(id as u64)))?;
        if let Some(&i) = position.get(&seq) {
            entries[i].actions.push(action);
        }
    }
    Ok(())
}

fn entry_from_row(row: &AnyRow) -> Result<HistoryEntry, StoreError> {
    let hash: Vec<u8> = row.try_get(1)?;
    Ok(HistoryEntry {
        seq: row.try_get(0)?,
        hash: hash.try_into().map_err(|h: Vec<u8>| {
            StoreError::Corrupt(format!("a change hash of {} bytes", h.len()))
        })?,
        user: UserId(row.try_get::<i64, _>(2)? as u64),
        accepted_at: row.try_get(3)?,
        email: row.try_get(4)?,
        actions: Vec::new(),
    })
}

/// An action as stored: its name (the protocol's JSON tag) and its item.
fn action_parts(action: ChangeAction) -> (&'static str, Option<ItemId>) {
    match action {
        ChangeAction::Created => ("created", None),
        ChangeAction::Renamed => ("renamed", None),
        ChangeAction::Added { item } => ("added", Some(item)),
        ChangeAction::Edited { item } => ("edited", Some(item)),
        ChangeAction::Checked { item } => ("checked", Some(item)),
        ChangeAction::Unchecked { item } => ("unchecked", Some(item)),
        ChangeAction::Moved { item } => ("moved", Some(item)),
        ChangeAction::Removed { item } => ("removed", Some(item)),
    }
}

/// The inverse of [`action_parts`]; `Corrupt` for what this release does not know.
fn action_from(name: &str, item: Option<ItemId>) -> Result<ChangeAction, StoreError> {
    Ok(match (name, item) {
        ("created", None) => ChangeAction::Created,
        ("renamed", None) => ChangeAction::Renamed,
        ("added", Some(item)) => ChangeAction::Added { item },
        ("edited", Some(item)) => ChangeAction::Edited { item },
        ("checked", Some(item)) => ChangeAction::Checked { item },
        ("unchecked", Some(item)) => ChangeAction::Unchecked { item },
        ("moved", Some(item)) => ChangeAction::Moved { item },
        ("removed", Some(item)) => ChangeAction::Removed { item },
        _ => {
            return Err(StoreError::Corrupt(format!("history action {name:?} with item {item:?}")));
        }
    })
}

/// Lower-case hexadecimal, as change hashes and actor ids are shown.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_stored_form() {
        let item = ItemId(7);
        for action in [
            ChangeAction::Created,
            ChangeAction::Renamed,
            ChangeAction::Added { item },
            ChangeAction::Edited { item },
            ChangeAction::Checked { item },
            ChangeAction::Unchecked { item },
            ChangeAction::Moved { item },
            ChangeAction::Removed { item },
        ] {
            let (name, item) = action_parts(action);
            assert_eq!(action_from(name, item).unwrap(), action);
            // The stored name is the protocol's JSON tag.
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json["action"], name);
        }
        assert!(action_from("checked", None).is_err());
        assert!(action_from("exploded", Some(ItemId(1))).is_err());
    }

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(values_placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
