//! What Tandem's client and server must agree on, and nothing that touches a socket or a
//! database (sans-IO).
//!
//! - [`id`]: the newtype ids (`UserId`, `ListId`, `ItemId`), all below 2^53 so that every
//!   JSON reader, JavaScript included, reads them exactly.
//! - [`snowflake`]: the coordination-free generator of those ids.
//! - [`role`]: the three roles a member of a list can hold and what each may do.
//!
//! ```
//! use tandem_protocol::{Role, snowflake::Snowflake};
//!
//! let ids = Snowflake::new(3).unwrap();
//! let id = ids.next_id();
//! assert!(id < tandem_protocol::id::MAX_ID);
//! assert!(Role::Editor.can_edit() && !Role::Editor.can_share());
//! ```

pub mod id;
pub mod role;
pub mod snowflake;

pub use id::{ItemId, ListId, UserId};
pub use role::Role;
