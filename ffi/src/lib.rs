//! UniFFI bindings of Tandem's client engine (`tandem-client`) for Swift, Kotlin and Python.
//!
//! App developers on iOS, Android and desktop call Tandem from their own language; this crate
//! is the one place that defines what they see. It is a thin layer with no logic of its own:
//! each export converts its arguments, calls [`tandem_client::Client`] (or its
//! [`tandem_client::SyncEngine`]) and converts the answer back.
//!
//! Layout:
//! - [`TandemClient`] (in `client`): the object apps hold, one per data folder.
//! - `list`, `account`, `sync`, `history`: the plain records and enums it hands out
//!   ([`TodoList`], [`User`], [`SyncReport`], [`HistoryPage`], ...), each with its `From`
//!   conversion from the client's type.
//! - `events`: [`ChangeEvent`] and the [`ChangeListener`] apps implement to hear about changes.
//! - [`TandemError`]: one flat error enum, mapped one to one from [`tandem_client::Error`].
//!
//! Boundary conventions:
//! - Text is UTF-8 on the Rust side; UniFFI converts to and from each language's strings.
//! - Ids (lists, items, users) are `u64` below 2^53, so they survive every language's
//!   numbers (Swift `UInt64`, Kotlin `ULong`, Python `int`).
//! - Every method is blocking and safe from any thread. Local edits take a few SQLite
//!   statements; network calls run on the object's own Tokio runtime while the calling thread
//!   waits, bounded by the client's request timeout (30 s) or `sync_now`'s `timeout_ms`. Call
//!   network methods from a background thread (a Swift `Task`, a Kotlin coroutine on
//!   `Dispatchers.IO`, a Python thread); background sync (`start_sync`) never blocks the
//!   caller.
//!
//! From Python, after generating the bindings (`ffi/generate-bindings.sh bindings`):
//!
//! ```python
//! from tandem import TandemClient
//! client = TandemClient("/tmp/alice", "http://127.0.0.1:8080")
//! groceries = client.create_list("Groceries")
//! milk = client.add_item(groceries.id, "milk")
//! client.set_done(groceries.id, milk, True)
//! ```

mod account;
mod client;
mod error;
mod events;
mod history;
mod list;
mod sync;

pub use account::{Account, RegisterResult, User};
pub use client::TandemClient;
pub use error::TandemError;
pub use events::{ChangeEvent, ChangeKind, ChangeListener};
pub use history::{ChangeAction, HistoryEntry, HistoryPage};
pub use list::{Item, ListSummary, Role, TodoList};
pub use sync::{IdRemap, ListSyncReport, ListSyncStatus, SyncFailure, SyncReport, SyncStatus};

uniffi::setup_scaffolding!("tandem");
