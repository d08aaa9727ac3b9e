//! Counters of what the server did, served in Prometheus text format at `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server's counters. Shared through `AppState` and the sync hub.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sync batches merged and saved.
    pub changes_merged: AtomicU64,
    /// Changes from viewers refused.
    pub viewer_changes_refused: AtomicU64,
    /// Changes refused because they would make a document malformed.
    pub invalid_changes_refused: AtomicU64,
    /// Sync sockets open now.
    pub open_sockets: AtomicU64,
    /// Sockets closed for reading too slowly.
    pub slow_readers_closed: AtomicU64,
    /// Loaded rooms that let go of their document while quiet.
    pub rooms_asleep: AtomicU64,
    /// Changes refused because their Automerge actor belongs to another user.
    pub foreign_actor_changes_refused: AtomicU64,
    /// Changes dropped because their dependencies never arrived.
    pub orphan_changes_dropped: AtomicU64,
    /// Messages refused for exceeding a decoded-size or operation limit.
    pub oversized_messages_refused: AtomicU64,
    /// Requests for a list's whole history refused as too frequent.
    pub full_syncs_throttled: AtomicU64,
    /// Sockets closed because they did not send `Hello` in time.
    pub handshake_timeouts: AtomicU64,
    /// Sockets refused because their user already had the most allowed.
    pub sockets_refused: AtomicU64,
    /// Sockets closed for exceeding a message rate (per socket or per user).
    pub rate_limited_closed: AtomicU64,
    /// Bytes of frames queued for sockets and not yet written, now.
    pub outbound_queued_bytes: AtomicU64,
    /// The most `outbound_queued_bytes` has been since the server started.
    pub outbound_queued_bytes_peak: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, rooms_loaded: usize) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        metric(
            "tandem_changes_merged_total",
            "counter",
            "Sync batches merged and saved.",
            get(&self.changes_merged),
        );
        metric(
            "tandem_viewer_changes_refused_total",
            "counter",
            "Changes sent by viewers and refused.",
            get(&self.viewer_changes_refused),
        );
        metric(
            "tandem_invalid_changes_refused_total",
            "counter",
            "Changes refused because the document would be malformed.",
            get(&self.invalid_changes_refused),
        );
        metric("tandem_open_sockets", "gauge", "Sync sockets open now.", get(&self.open_sockets));
        metric(
            "tandem_slow_readers_closed_total",
            "counter",
            "Sync sockets closed for reading too slowly.",
            get(&self.slow_readers_closed),
        );
        metric(
            "tandem_rooms_loaded",
            "gauge",
            "Lists loaded in memory for sync.",
            rooms_loaded as u64,
        );
        metric(
            "tandem_rooms_asleep",
            "gauge",
            "Loaded lists whose document is out of memory until their next message.",
            get(&self.rooms_asleep),
        );
        metric(
            "tandem_foreign_actor_changes_refused_total",
            "counter",
            "Changes refused because their Automerge actor belongs to another user.",
            get(&self.foreign_actor_changes_refused),
        );
        metric(
            "tandem_orphan_changes_dropped_total",
            "counter",
            "Changes dropped because their dependencies never arrived.",
            get(&self.orphan_changes_dropped),
        );
        metric(
            "tandem_oversized_messages_refused_total",
            "counter",
            "Sync messages refused for exceeding a decoded-size or operation limit.",
            get(&self.oversized_messages_refused),
        );
        metric(
            "tandem_full_syncs_throttled_total",
            "counter",
            "Requests for a list's whole history refused as too frequent.",
            get(&self.full_syncs_throttled),
        );
        metric(
            "tandem_handshake_timeouts_total",
            "counter",
            "Sync sockets closed because Hello did not come in time.",
            get(&self.handshake_timeouts),
        );
        metric(
            "tandem_sockets_refused_total",
            "counter",
            "Sync sockets refused because their user had the most allowed open.",
            get(&self.sockets_refused),
        );
        metric(
            "tandem_rate_limited_closed_total",
            "counter",
            "Sync sockets closed for sending too many messages.",
            get(&self.rate_limited_closed),
        );
        metric(
            "tandem_outbound_queued_bytes",
            "gauge",
            "Bytes of frames queued for sync sockets and not yet written.",
            get(&self.outbound_queued_bytes),
        );
        metric(
            "tandem_outbound_queued_bytes_peak",
            "gauge",
            "The most bytes ever queued for sync sockets at once since the server started.",
            get(&self.outbound_queued_bytes_peak),
        );
        out
    }
}
