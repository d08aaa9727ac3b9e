//! Change events as the bindings deliver them: which list changed and how, passed to a
//! [`ChangeListener`] the app implements in its own language.
//!
//! Threading: a listener runs on the thread that made the change, after the change is
//! committed: the caller's thread for local edits, the background sync thread for remote
//! changes (`REMOTE_CHANGED`). It may call back into the client, but it should return
//! quickly: hand the event to the UI's own queue (main-thread dispatch, a channel).

use tandem_client as core;

/// What happened to a list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ChangeKind {
    /// The list was created on this device or first seen from the server.
    Created,
    /// Its title changed here.
    Renamed,
    /// It was deleted (here, or the server says it is gone or no longer shared with us).
    Deleted,
    /// Its items changed here (added, edited, checked, moved, removed).
    ItemsChanged,
    /// Changes from other devices or people were merged in (title and/or items).
    RemoteChanged,
    /// The list's id changed from `old` (a provisional id the server did not keep); the
    /// event's `list_id` is the new one.
    IdRemapped {
        /// The id the list had until now.
        old: u64,
    },
    /// This user's role on the list changed.
    RoleChanged,
    /// The server refused something for this list (e.g. a viewer's change). `code` is one
    /// of `forbidden`, `not_found`, `invalid_document`, `too_large`, `rate_limited`,
    /// `internal`, `delete_failed`.
    SyncError {
        /// What kind of problem, e.g. `forbidden`.
        code: String,
        /// For people.
        message: String,
    },
}

/// One change of one list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChangeEvent {
    /// The list, under its current id.
    pub list_id: u64,
    /// What happened.
    pub kind: ChangeKind,
}

impl From<&core::ChangeEvent> for ChangeEvent {
    fn from(event: &core::ChangeEvent) -> Self {
        use core::ChangeKind as K;
        let kind = match &event.kind {
            K::Created => ChangeKind::Created,
            K::Renamed => ChangeKind::Renamed,
            K::Deleted => ChangeKind::Deleted,
            K::ItemsChanged => ChangeKind::ItemsChanged,
            K::RemoteChanged => ChangeKind::RemoteChanged,
            K::IdRemapped { old } => ChangeKind::IdRemapped { old: old.get() },
            K::RoleChanged => ChangeKind::RoleChanged,
            K::SyncError { code, message } => {
                ChangeKind::SyncError { code: code.clone(), message: message.clone() }
            }
        };
        Self { list_id: event.list_id.get(), kind }
    }
}

/// Implemented by the app (a Swift class, a Kotlin object, a Python class with an
/// `on_change` method) to hear about changes; pass it to `TandemClient.subscribe`.
#[uniffi::export(callback_interface)]
pub trait ChangeListener: Send + Sync {
    /// Called once per committed change; see the module docs for the thread it runs on.
    fn on_change(&self, event: ChangeEvent);
}
