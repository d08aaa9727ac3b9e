//! The sync values the bindings hand out: the report of one sync round (`sync_now`) and the
//! connection state of background sync (`sync_status`).

use tandem_client::sync as core;

/// Where one list stands after a sync round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ListSyncStatus {
    /// In step with the server: nothing to send, nothing to get.
    InStep,
    /// Still exchanging when the round ended (it timed out).
    Pending,
    /// The server refused the list (see the report's failures).
    Failed,
    /// Created offline with no server id yet (no reserved id was available).
    NoId,
}

impl From<core::ListSyncStatus> for ListSyncStatus {
    fn from(status: core::ListSyncStatus) -> Self {
        match status {
            core::ListSyncStatus::InStep => Self::InStep,
            core::ListSyncStatus::Pending => Self::Pending,
            core::ListSyncStatus::Failed => Self::Failed,
            core::ListSyncStatus::NoId => Self::NoId,
        }
    }
}

/// One list in a [`SyncReport`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ListSyncReport {
    /// The list.
    pub id: u64,
    /// Where it stands.
    pub status: ListSyncStatus,
}

/// Something the server refused for one list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncFailure {
    /// The list.
    pub list_id: u64,
    /// The protocol's error code in snake case (`forbidden`, `not_found`, ...).
    pub code: String,
    /// For people.
    pub message: String,
}

/// A list whose provisional id (made offline) was replaced by a server id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct IdRemap {
    /// The id it had.
    pub old: u64,
    /// The id it has now.
    pub new: u64,
}

/// The outcome of one sync round (`TandemClient.sync_now`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Every list is in step with the server and nothing was refused.
    pub in_step: bool,
    /// Each list and where it stands.
    pub lists: Vec<ListSyncReport>,
    /// What the server refused.
    pub failures: Vec<SyncFailure>,
    /// Lists whose provisional id was replaced.
    pub remapped: Vec<IdRemap>,
    /// Lists deleted here whose deletion the server confirmed.
    pub deleted: Vec<u64>,
    /// Why the round is not in step, in one line (`None` when it is).
    pub reason: Option<String>,
}

impl From<core::SyncReport> for SyncReport {
    fn from(report: core::SyncReport) -> Self {
        Self {
            in_step: report.in_step,
            lists: report
                .lists
                .into_iter()
                .map(|l| ListSyncReport { id: l.id.get(), status: l.status.into() })
                .collect(),
            failures: report
                .failures
                .into_iter()
                .map(|f| SyncFailure { list_id: f.list.get(), code: f.code, message: f.message })
                .collect(),
            remapped: report
                .remapped
                .into_iter()
                .map(|(old, new)| IdRemap { old: old.get(), new: new.get() })
                .collect(),
            deleted: report.deleted.into_iter().map(|l| l.get()).collect(),
            reason: report.reason,
        }
    }
}

/// The connection state of background sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// Background sync is started (until `stop_sync`, or until it stops because an update
    /// is required).
    pub running: bool,
    /// Connected and welcomed by the server.
    pub connected: bool,
    /// The last connection-level problem, if any since the last successful connection.
    pub last_error: Option<String>,
    /// How many connections were opened so far.
    pub connections: u64,
    /// The server no longer speaks this app's protocol: background sync stopped; ask the
    /// user to update the app.
    pub update_required: bool,
}

impl SyncStatus {
    /// The status of an engine that is running, from the engine's own report.
    pub(crate) fn running(status: core::SyncStatus) -> Self {
        Self {
            running: !status.update_required,
            connected: status.connected,
            last_error: status.last_error,
            connections: status.connections,
            update_required: status.update_required,
        }
    }

    /// The status when background sync is not started.
    pub(crate) fn stopped() -> Self {
        Self {
            running: false,
            connected: false,
            last_error: None,
            connections: 0,
            update_required: false,
        }
    }
}
