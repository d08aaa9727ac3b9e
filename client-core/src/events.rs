//! Change events: which list changed and how, delivered to subscribers after the change is
//! committed to the store.
//!
//! Listeners run on the thread that made the change, after the store lock is released, so a
//! listener may call back into the [`crate::Client`]. Keep them quick: hand the event to the
//! UI's own queue (a channel, a main-thread dispatch) rather than doing work inline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tandem_protocol::ListId;

/// What happened to a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
    /// The list's id changed from `old` (a provisional id the server did not keep).
    IdRemapped {
        /// The id the list had until now.
        old: ListId,
    },
    /// This user's role on the list changed.
    RoleChanged,
    /// The server refused something for this list (a change from a viewer, a malformed or
    /// too large document, a list it does not know, ...). `code` is the protocol's
    /// `ListErrorCode` in snake case (`forbidden`, `not_found`, `invalid_document`,
    /// `too_large`, `rate_limited`, `internal`).
    SyncError {
        /// What kind of problem, e.g. `forbidden`.
        code: String,
        /// For people.
        message: String,
    },
}

/// One change of one list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeEvent {
    /// The list, under its current id.
    pub list_id: ListId,
    /// What happened.
    #[serde(flatten)]
    pub kind: ChangeKind,
}

/// Identifies a subscription, to end it with [`crate::Client::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

type Listener = Arc<dyn Fn(&ChangeEvent) + Send + Sync>;

/// The registered listeners.
#[derive(Default)]
pub(crate) struct Listeners {
    next: AtomicU64,
    all: Mutex<Vec<(SubscriptionId, Listener)>>,
}

impl Listeners {
    pub(crate) fn add(&self, listener: Listener) -> SubscriptionId {
        let id = SubscriptionId(self.next.fetch_add(1, Ordering::Relaxed));
        self.lock().push((id, listener));
        id
    }

    pub(crate) fn remove(&self, id: SubscriptionId) -> bool {
        let mut all = self.lock();
        let before = all.len();
        all.retain(|(sid, _)| *sid != id);
        all.len() != before
    }

    /// Calls every listener with `event`, outside the registry lock.
    pub(crate) fn emit(&self, event: ChangeEvent) {
        let listeners: Vec<Listener> = self.lock().iter().map(|(_, l)| Arc::clone(l)).collect();
        for listener in listeners {
            listener(&event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(SubscriptionId, Listener)>> {
        self.all.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
