//! What can go wrong in the store: refusals the caller caused (mapped to 4xx by the API) and
//! failures of the databases themselves (logged, never shown to a client).

/// A store failure or refusal.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such list (or account) for this caller; never says whether it exists for others.
    #[error("not found")]
    NotFound,
    /// The caller's role does not allow the action.
    #[error("{0}")]
    Forbidden(String),
    /// The action conflicts with the current state (email taken, stale version, ...).
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but not allowed by the rules (share with the owner, ...).
    #[error("{0}")]
    Invalid(String),
    /// A change's Automerge actor is bound to another user on this list: its changes are not
    /// the sender's to make. The save that carried it wrote nothing.
    #[error("actor {actor} belongs to another user on list {list}")]
    ActorTaken {
        /// The list.
        list: tandem_protocol::ListId,
        /// The actor id, in hexadecimal.
        actor: String,
    },
    /// The shard map or a database URL in the config is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// A physical database could not be opened or created.
    #[error("opening database {database}")]
    Open {
        /// The database, without password.
        database: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A physical database's migrations failed.
    #[error("migrating database {database}")]
    Migrate {
        /// The database, without password.
        database: String,
        /// What the migrator said.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A SQLite database is not configured to keep acknowledged writes through a power cut.
    #[error("database {database} is not durable: {detail}")]
    NotDurable {
        /// The database, without password.
        database: String,
        /// The settings found.
        detail: String,
    },
    /// A row holds a value this release does not understand.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A query failed.
    #[error("database query failed")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the failure is the server's (a database problem), not the caller's.
    pub fn is_internal(&self) -> bool {
        !matches!(
            self,
            StoreError::NotFound
                | StoreError::Forbidden(_)
                | StoreError::Conflict(_)
                | StoreError::Invalid(_)
                | StoreError::ActorTaken { .. }
        )
    }
}
