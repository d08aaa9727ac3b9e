//! Tandem's client engine: every list the user can see is an Automerge document
//! ([`tandem_protocol::ListDoc`]) kept in a local SQLite store, fully usable with no network.
//! Apps embed it (directly or through the FFI), the `tandem` CLI is a thin shell over it, and
//! the sync engine ([`sync`]) exchanges the documents' changes with the server.
//!
//! Layout:
//! - [`Client`] (in `client`): the API. Open a store, create/rename/delete lists,
//!   add/edit/check/move/remove items, read lists, subscribe to changes; account and sharing
//!   calls over REST; the hooks the sync engine uses (remap ids, remote changes, sync state).
//! - [`store`]: the SQLite schema and its tables; durability and the concurrency contract.
//! - [`events`]: the change events subscribers receive.
//! - [`history`]: a list's verified history (who made each change, accepted when), from the
//!   server.
//! - [`rest`]: the server's REST API as the client calls it.
//! - [`sync`]: the [`SyncEngine`], keeping the lists in step with the server over one
//!   WebSocket (one round, or in the background with reconnects).
//! - [`Error`]: one flat error enum (`Offline`, `Unauthorized`, `Forbidden`, `NotFound`,
//!   `InvalidInput`, `Conflict`, `RateLimited`, `Storage`, `Internal`).
//!
//! ```
//! use tandem_client::{Client, ClientConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let client = Client::open(ClientConfig::new(dir.path())).unwrap();
//! let list = client.create_list("Groceries").unwrap();
//! let milk = client.add_item(list.id, "milk").unwrap();
//! client.set_done(list.id, milk, true).unwrap();
//! let shown = client.list(list.id).unwrap();
//! assert_eq!(shown.items[0].content, "milk");
//! assert!(shown.items[0].done);
//! ```

mod client;
mod error;
pub mod events;
pub mod history;
mod list;
pub mod rest;
pub mod store;
pub mod sync;

pub use client::{Account, Client, ClientConfig, DEFAULT_SERVER_URL, FrameApplied, SyncReceived};
pub use error::{Error, Result};
pub use events::{ChangeEvent, ChangeKind, SubscriptionId};
pub use history::{HistoryEntry, HistoryPage, HistoryQuery};
pub use list::{ListSummary, TodoList};
pub use rest::{RegisterOutcome, User};
pub use sync::{SyncConfig, SyncEngine, SyncHandle, SyncReport, SyncStatus};
pub use tandem_protocol::{Item, ItemId, ListId, Role};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Client>();
    }
}
