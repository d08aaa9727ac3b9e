//! One physical database (SQLite file or PostgreSQL database) behind one connection pool.
//!
//! Queries are written once for both engines through sqlx's `Any` driver: `$1` placeholders
//! (SQLite accepts them too), integers and text only, `ON CONFLICT` and `RETURNING` (both
//! engines have them).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, AnyPool, Connection, Executor, Row, Transaction};

use super::StoreError;
use super::documents::Save;
use super::group_commit::{self, Committer};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for a free connection before the call fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// One database as `/readyz` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// It answered a trivial query.
    pub answers: bool,
    /// Migrations this build expects that the database has not applied successfully (all of
    /// them when the migrations table cannot be read; none when it does not answer).
    pub missing_migrations: Vec<i64>,
}

/// The engine behind a physical database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file, in WAL mode with `synchronous=FULL`.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// A physical database: its pool and what it is, for logs and health checks.
#[derive(Debug)]
pub struct Database {
    /// The URL with any password removed: safe to log and to show in `/healthz`.
    label: String,
    engine: Engine,
    pool: AnyPool,
    /// Where writes go. SQLite has one writer at a time: a one-connection pool makes writers
    /// queue here, asynchronously and in order, instead of sleeping in SQLite's busy handler
    /// (which backs off by up to 100 ms). PostgreSQL writes use the main pool.
    writer: AnyPool,
    /// Writes the rooms' saves, many in one transaction.
    committer: Committer,
}

impl Database {
    /// Connects to `url` (`sqlite:PATH` or `postgres://...`), creating the database if it does
    /// not exist, checks its durability settings and runs the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = engine_of(url)?;
        let label = redact(url);
        let open_err = |source| StoreError::Open { database: label.clone(), source };

        if !Any::database_exists(url).await.map_err(open_err)? {
            Any::create_database(url).await.map_err(open_err)?;
        }

        let options = AnyConnectOptions::from_str(url).map_err(open_err)?;
        let pool_of = |max_connections| {
            AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if engine == Engine::Sqlite {
                            let busy = format!(
                                "PRAGMA busy_timeout = {}",
                                SQLITE_BUSY_TIMEOUT.as_millis()
                            );
                            conn.execute(sqlx::AssertSqlSafe(busy)).await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                        }
                        Ok(())
                    })
                })
        };
        let (pool, writer) = match engine {
            // Readers beside the single writer, in WAL mode.
            Engine::Sqlite => {
                let pool = pool_of(4).connect_with(options.clone()).await.map_err(open_err)?;
                let writer = pool_of(1).connect_with(options).await.map_err(open_err)?;
                (pool, writer)
            }
            Engine::Postgres => {
                let pool = pool_of(10).connect_with(options).await.map_err(open_err)?;
                (pool.clone(), pool)
            }
        };

        let committer = Committer::spawn(writer.clone(), engine);
        let db = Self { label, engine, pool, writer, committer };
        if engine == Engine::Sqlite {
            db.check_sqlite_durability().await?;
        }
        db.migrator()
            .run(&db.writer)
            .await
            .map_err(|source| StoreError::Migrate { database: db.label.clone(), source })?;
        Ok(db)
    }

    /// Refuses to serve from a SQLite file that is not in WAL mode with `synchronous=FULL`:
    /// an acknowledged write must survive a power cut.
    async fn check_sqlite_durability(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mode: String =
            sqlx::query("PRAGMA journal_mode").fetch_one(&mut *conn).await?.try_get(0)?;
        let sync: i64 =
            sqlx::query("PRAGMA synchronous").fetch_one(&mut *conn).await?.try_get(0)?;
        // synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
        if !mode.eq_ignore_ascii_case("wal") || sync < 2 {
            return Err(StoreError::NotDurable {
                database: self.label.clone(),
                detail: format!("journal_mode={mode}, synchronous={sync}; need wal and FULL (2)"),
            });
        }
        Ok(())
    }

    /// The migrations of this database's engine, as built into this binary.
    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Whether the database answers and has every migration this build expects. It may have
    /// more (a newer release migrated it).
    pub async fn readiness(&self) -> Readiness {
        let Ok(mut conn) = self.pool.acquire().await else {
            return Readiness { answers: false, missing_migrations: Vec::new() };
        };
        if conn.ping().await.is_err() {
            return Readiness { answers: false, missing_migrations: Vec::new() };
        }
        // sqlx's own bookkeeping table; `success` is false for a migration that failed midway.
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_default();
        let missing_migrations = self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
            .map(|m| m.version)
            .collect();
        Readiness { answers: true, missing_migrations }
    }

    /// The URL without its password.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The pool, for reads and single statements.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for single statements that write.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so that a transaction which reads before it writes waits for
    /// other writers instead of failing when it upgrades.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        group_commit::begin_write(&self.writer, self.engine).await
    }

    /// Saves a room's changes, sharing a transaction with other rooms' saves that wait.
    pub async fn save(&self, save: Save) -> Result<super::documents::Saved, StoreError> {
        self.committer.save(save).await
    }

    /// Answers whether the database responds to a trivial query.
    pub async fn ping(&self) -> bool {
        match self.pool.acquire().await {
            Ok(mut conn) => conn.ping().await.is_ok(),
            Err(_) => false,
        }
    }

    /// Connections open and, of those, idle, across this database's pools (SQLite has a
    /// reader pool and a one-connection writer pool; PostgreSQL one pool for both).
    pub fn connections(&self) -> (u32, usize) {
        match self.engine {
            Engine::Sqlite => (
                self.pool.size() + self.writer.size(),
                self.pool.num_idle() + self.writer.num_idle(),
            ),
            Engine::Postgres => (self.pool.size(), self.pool.num_idle()),
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

fn engine_of(url: &str) -> Result<Engine, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Engine::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Engine::Postgres)
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL {:?}: expected sqlite:PATH or postgres://...",
            redact(url)
        )))
    }
}

/// Builds the SQLite URL of a file, creating the file if missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Removes the password from a URL of the form `scheme://user:password@host/...`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_labels() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/tandem"),
            "postgres://app:***@db:5432/tandem"
        );
        assert_eq!(redact("postgres://postgres@127.0.0.1/t"), "postgres://postgres@127.0.0.1/t");
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn only_sqlite_and_postgres_are_engines() {
        assert_eq!(engine_of("sqlite://a.db").unwrap(), Engine::Sqlite);
        assert_eq!(engine_of("postgres://h/db").unwrap(), Engine::Postgres);
        assert!(engine_of("mysql://h/db").is_err());
    }
}
