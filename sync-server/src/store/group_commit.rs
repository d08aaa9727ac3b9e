//! Group commit: one task per physical database writes the saves of every room that are
//! waiting, in one transaction with one commit (one fsync on SQLite), and then answers each.
//!
//! A durable commit costs a disk flush, about a millisecond here; saving each room's batch in
//! its own transaction would cap a database at about a thousand saves a second however many
//! lists are busy. Queued saves are taken together, so the cost of a flush is shared by all
//! the rooms that were waiting for it, and nobody waits for a timer: a lone save is written at
//! once. A save that fails on its own (its list was deleted meanwhile) is answered `NotFound`
//! without disturbing the others; if the transaction as a whole fails (a database error, or a
//! save whose actor another node just bound to another user, see
//! [`history`](super::history)), each save of the group is tried again alone, so one bad save
//! never fails its neighbours and writes nothing of its own.

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::database::Engine;
use super::documents::{Save, Saved, write_save};

/// Most saves written in one transaction.
const MAX_GROUP: usize = 256;
/// Saves that may wait for the committer before senders wait too.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<Saved, StoreError>>;

/// The handle rooms send their saves to.
#[derive(Debug)]
pub struct Committer {
    inbox: mpsc::Sender<(Save, Reply)>,
}

impl Committer {
    /// Starts the committer of one database, writing through `pool` (its writer pool).
    pub fn spawn(pool: AnyPool, engine: Engine) -> Self {
        let (inbox, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, engine, queue));
        Self { inbox }
    }

    /// Writes `save` durably; returns its chunk's sequence number and the list's version.
    pub async fn save(&self, save: Save) -> Result<Saved, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Database(sqlx::Error::PoolClosed);
        self.inbox.send((save, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(pool: AnyPool, engine: Engine, mut queue: mpsc::Receiver<(Save, Reply)>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let saves: Vec<&Save> = group.iter().map(|(save, _)| save).collect();
        match write_group(&pool, engine, &saves).await {
            Ok(results) => {
                for ((_, reply), result) in group.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) if group.len() == 1 => {
                let (_, reply) = group.pop().expect("one save");
                let _ = reply.send(Err(err));
            }
            Err(err) => {
                if err.is_internal() {
                    tracing::warn!(error = ?err, saves = group.len(), "a group commit failed; saving one by one");
                } else {
                    tracing::debug!(error = %err, saves = group.len(), "a save of the group was refused; saving one by one");
                }
                for (save, reply) in group.drain(..) {
                    let result = match write_group(&pool, engine, &[&save]).await {
                        Ok(mut results) => results.pop().expect("one result"),
                        Err(err) => Err(err),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// Writes the saves in one transaction: each one's own result, or the error that failed the
/// transaction (then nothing was written).
async fn write_group(
    pool: &AnyPool,
    engine: Engine,
    saves: &[&Save],
) -> Result<Vec<Result<Saved, StoreError>>, StoreError> {
    let mut tx = begin_write(pool, engine).await?;
    let mut results = Vec::with_capacity(saves.len());
    for save in saves {
        match write_save(&mut tx, save).await {
            // The list is gone: nothing of this save was written.
            Err(StoreError::NotFound) => results.push(Err(StoreError::NotFound)),
            Err(err) => return Err(err),
            Ok(seq) => results.push(Ok(seq)),
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Starts a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`), so that a transaction which reads before it writes waits for other
/// writers instead of failing when it upgrades.
pub(super) async fn begin_write(
    pool: &AnyPool,
    engine: Engine,
) -> Result<Transaction<'static, Any>, StoreError> {
    Ok(match engine {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Engine::Postgres => pool.begin().await?,
    })
}
