//! What Tandem's client and server must agree on, and nothing that touches a socket or a
//! database (sans-IO).
//!
//! - [`id`]: the newtype ids (`UserId`, `ListId`, `ItemId`), all below 2^53 so that every
//!   JSON reader, JavaScript included, reads them exactly.
//! - [`snowflake`]: the coordination-free generator of those ids.
//! - [`role`]: the three roles a member of a list can hold and what each may do.
//! - [`list_doc`]: [`ListDoc`], one list as an Automerge document; the only code that knows
//!   the document's shape, and its `validate()`.
//! - [`wire`]: the sync socket's messages, one enum each way, in CBOR.
//! - [`intake`]: what a peer's message carries, decoded under [`limits`] before Automerge
//!   sees it.
//! - [`room`]: the server's side of syncing one list with many peers, sans-IO.
//! - [`sort_rank`]: [`SortRank`], the fractional-index strings that order a list's items.
//! - [`history`]: what one accepted change did, as a list's history shows it.
//!
//! ```
//! use tandem_protocol::{Role, snowflake::Snowflake};
//!
//! let ids = Snowflake::new(3).unwrap();
//! let id = ids.next_id();
//! assert!(id < tandem_protocol::id::MAX_ID);
//! assert!(Role::Editor.can_edit() && !Role::Editor.can_share());
//! ```

pub mod history;
pub mod id;
pub mod intake;
pub mod limits;
pub mod list_doc;
pub mod role;
pub mod room;
pub mod snowflake;
pub mod sort_rank;
pub mod streaming;
pub mod wire;

/// The Automerge version this protocol is written against, so client and server share it.
pub use automerge;
pub use id::{ItemId, ListId, UserId};
pub use list_doc::{EditError, Item, ListDoc, Touched, ValidationError};
pub use role::Role;
pub use sort_rank::SortRank;
