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
        out
    }
}
