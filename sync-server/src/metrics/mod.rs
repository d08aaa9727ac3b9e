//! What the server measures, recorded through the `metrics` crate into a Prometheus recorder
//! of this server instance's own, and served in Prometheus text format at `GET /metrics`.
//!
//! Why a recorder per instance and never the process-global one: tests and embedders run
//! many servers in one process, and each must count only what it did. [`Metrics::new`] builds
//! a `PrometheusRecorder`, registers every fixed series on it up front (so each is exposed,
//! at zero, from the first scrape) and keeps the handles; series whose labels are only known
//! later (a route, a database) are registered on the same recorder when first used. Nothing
//! here goes through the global `counter!` macros.
//!
//! Three kinds of values:
//! - counters and histograms, updated where things happen, through the handles held here;
//! - levels that the code updates with read-modify-write (open sockets, rooms asleep, queued
//!   bytes and their peak), kept as atomics and copied into gauges at scrape time;
//! - values read at scrape time ([`Live`]): rooms loaded, active users, pool connections, and
//!   the process's memory, CPU time, descriptors and uptime ([`process`]).
//!
//! Every name the hand-written exposition had is kept; README "Operating Tandem" lists them
//! all.

pub mod process;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Buckets of every `*_seconds` histogram: half a millisecond to ten seconds.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The metadata every series is registered with (the Prometheus recorder ignores it).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The version reported by `tandem_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit reported by `tandem_build_info`: `TANDEM_GIT_SHA` at build time, else what
/// `build.rs` read from git, else `unknown`.
pub const GIT_SHA: &str = match option_env!("TANDEM_GIT_SHA") {
    Some(sha) => sha,
    None => match option_env!("TANDEM_BUILD_GIT_SHA") {
        Some(sha) => sha,
        None => "unknown",
    },
};

/// How a `verify` call ended, for `tandem_verifications_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The account is verified.
    Ok,
    /// The code did not match (or was not six digits).
    WrongCode,
    /// No valid code: expired, used up, or never sent.
    Expired,
}

impl VerifyOutcome {
    const ALL: [Self; 3] = [Self::Ok, Self::WrongCode, Self::Expired];

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::WrongCode => "wrong_code",
            Self::Expired => "expired",
        }
    }
}

/// How a `login` call ended, for `tandem_logins_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A token was issued.
    Ok,
    /// Wrong email or password.
    Failed,
    /// Refused by the rate limit before the password was checked.
    Throttled,
    /// Right password, but the email is not verified yet.
    Unverified,
}

impl LoginOutcome {
    const ALL: [Self; 4] = [Self::Ok, Self::Failed, Self::Throttled, Self::Unverified];

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Throttled => "throttled",
            Self::Unverified => "unverified",
        }
    }
}

/// Values only known when `/metrics` is scraped, gathered by the caller.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Rooms (lists) loaded in memory.
    pub rooms_loaded: usize,
    /// Distinct users with at least one sync socket past `Hello`.
    pub active_users: usize,
    /// Each physical database's pool.
    pub pools: Vec<PoolStats>,
}

/// One connection pool at scrape time.
#[derive(Debug, Clone)]
pub struct PoolStats {
    /// The database's label (URL without password).
    pub database: String,
    /// Connections open.
    pub size: u32,
    /// Of those, idle.
    pub idle: usize,
}

/// The server's metrics. Shared through `AppState` and the sync hub.
#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    started: Instant,

    /// Sync batches merged and saved.
    pub changes_merged: Counter,
    /// Changes from viewers refused.
    pub viewer_changes_refused: Counter,
    /// Changes refused because they would make a document malformed.
    pub invalid_changes_refused: Counter,
    /// Sockets closed for reading too slowly.
    pub slow_readers_closed: Counter,
    /// Changes refused because their Automerge actor belongs to another user.
    pub foreign_actor_changes_refused: Counter,
    /// Changes dropped because their dependencies never arrived.
    pub orphan_changes_dropped: Counter,
    /// Messages refused for exceeding a decoded-size or operation limit.
    pub oversized_messages_refused: Counter,
    /// Requests for a list's whole history refused as too frequent.
    pub full_syncs_throttled: Counter,
    /// Sockets closed because they did not send `Hello` in time.
    pub handshake_timeouts: Counter,
    /// Sockets refused because their user already had the most allowed.
    pub sockets_refused: Counter,
    /// Sockets closed for exceeding a message rate (per socket or per user).
    pub rate_limited_closed: Counter,
    /// Sync frames read from clients.
    pub messages_in: Counter,
    /// Sync frames written to clients.
    pub messages_out: Counter,
    /// Bytes of sync frames read from clients.
    pub bytes_in: Counter,
    /// Bytes of sync frames written to clients.
    pub bytes_out: Counter,
    /// From a change's arrival at its room to the room sending the acknowledgement.
    pub ack_seconds: Histogram,

    /// Sync sockets open now.
    pub open_sockets: AtomicU64,
    /// Loaded rooms that let go of their document while quiet.
    pub rooms_asleep: AtomicU64,
    /// Bytes of frames queued for sockets and not yet written, now.
    pub outbound_queued_bytes: AtomicU64,
    /// The most `outbound_queued_bytes` has been since the server started.
    pub outbound_queued_bytes_peak: AtomicU64,

    /// Registrations whose code was stored and sent.
    pub registrations: Counter,
    /// Lists created (REST `create`; lists born from a reserved id's first sync too).
    pub lists_created: Counter,
    /// Lists deleted.
    pub lists_deleted: Counter,
    /// Successful `sharelist` calls.
    pub shares: Counter,
    /// Successful `unshare` calls.
    pub unshares: Counter,
    /// Pending invitations turned into memberships (at verification or login).
    pub invitations_applied: Counter,
    verifications: [Counter; 3],
    logins: [Counter; 4],

    scraped: ScrapedGauges,
}

/// The gauges set when `/metrics` is scraped.
#[derive(Debug)]
struct ScrapedGauges {
    open_sockets: Gauge,
    rooms_asleep: Gauge,
    rooms_loaded: Gauge,
    active_users: Gauge,
    outbound_queued_bytes: Gauge,
    outbound_queued_bytes_peak: Gauge,
    uptime: Gauge,
    resident_memory: Gauge,
    open_fds: Gauge,
    cpu_seconds: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with every fixed series registered at zero.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let r = Registrar(&recorder);

        let changes_merged =
            r.counter("tandem_changes_merged_total", "Sync batches merged and saved.");
        let viewer_changes_refused = r
            .counter("tandem_viewer_changes_refused_total", "Changes sent by viewers and refused.");
        let invalid_changes_refused = r.counter(
            "tandem_invalid_changes_refused_total",
            "Changes refused because the document would be malformed.",
        );
        let slow_readers_closed = r.counter(
            "tandem_slow_readers_closed_total",
            "Sync sockets closed for reading too slowly.",
        );
        let foreign_actor_changes_refused = r.counter(
            "tandem_foreign_actor_changes_refused_total",
            "Changes refused because their Automerge actor belongs to another user.",
        );
        let orphan_changes_dropped = r.counter(
            "tandem_orphan_changes_dropped_total",
            "Changes dropped because their dependencies never arrived.",
        );
        let oversized_messages_refused = r.counter(
            "tandem_oversized_messages_refused_total",
            "Sync messages refused for exceeding a decoded-size or operation limit.",
        );
        let full_syncs_throttled = r.counter(
            "tandem_full_syncs_throttled_total",
            "Requests for a list's whole history refused as too frequent.",
        );
        let handshake_timeouts = r.counter(
            "tandem_handshake_timeouts_total",
            "Sync sockets closed because Hello did not come in time.",
        );
        let sockets_refused = r.counter(
            "tandem_sockets_refused_total",
            "Sync sockets refused because their user had the most allowed open.",
        );
        let rate_limited_closed = r.counter(
            "tandem_rate_limited_closed_total",
            "Sync sockets closed for sending too many messages.",
        );
        r.describe("tandem_sync_messages_total", "Sync frames, by direction (in: from clients).");
        let messages_in = r.labelled("tandem_sync_messages_total", "direction", "in");
        let messages_out = r.labelled("tandem_sync_messages_total", "direction", "out");
        r.describe("tandem_sync_bytes_total", "Bytes of sync frames, by direction.");
        let bytes_in = r.labelled("tandem_sync_bytes_total", "direction", "in");
        let bytes_out = r.labelled("tandem_sync_bytes_total", "direction", "out");
        let ack_seconds = r.histogram(
            "tandem_sync_ack_duration_seconds",
            "From a change's arrival at its room to the acknowledgement sent after it was saved.",
        );
        r.describe(
            "tandem_save_duration_seconds",
            "Saving one room's batch (group commit), by database.",
        );

        let registrations = r
            .counter("tandem_registrations_total", "Registrations whose code was stored and sent.");
        let lists_created = r.counter("tandem_lists_created_total", "Lists created.");
        let lists_deleted = r.counter("tandem_lists_deleted_total", "Lists deleted.");
        let shares =
            r.counter("tandem_shares_total", "Lists shared (or re-shared with a new role).");
        let unshares = r.counter("tandem_unshares_total", "Members removed from lists (or left).");
        let invitations_applied = r.counter(
            "tandem_invitations_applied_total",
            "Pending invitations turned into memberships.",
        );
        r.describe("tandem_verifications_total", "Email verifications, by outcome.");
        let verifications = VerifyOutcome::ALL
            .map(|o| r.labelled("tandem_verifications_total", "outcome", o.label()));
        r.describe("tandem_logins_total", "Logins, by outcome.");
        let logins =
            LoginOutcome::ALL.map(|o| r.labelled("tandem_logins_total", "outcome", o.label()));
        r.describe(
            "tandem_http_requests_total",
            "REST requests, by matched route and status class.",
        );
        r.describe(
            "tandem_http_request_duration_seconds",
            "REST request latency, by matched route.",
        );
        r.describe(
            "tandem_db_connections",
            "Pool connections, by database and state (in_use, idle).",
        );

        r.describe("tandem_build_info", "Always 1; the labels say which build runs.");
        recorder
            .register_gauge(
                &Key::from_parts(
                    "tandem_build_info",
                    vec![Label::new("version", VERSION), Label::new("git_sha", GIT_SHA)],
                ),
                &METADATA,
            )
            .set(1.0);

        let scraped = ScrapedGauges {
            open_sockets: r.gauge("tandem_open_sockets", "Sync sockets open now."),
            rooms_asleep: r.gauge(
                "tandem_rooms_asleep",
                "Loaded lists whose document is out of memory until their next message.",
            ),
            rooms_loaded: r.gauge("tandem_rooms_loaded", "Lists loaded in memory for sync."),
            active_users: r.gauge(
                "tandem_active_users",
                "Distinct users with at least one sync socket open (past Hello).",
            ),
            outbound_queued_bytes: r.gauge(
                "tandem_outbound_queued_bytes",
                "Bytes of frames queued for sync sockets and not yet written.",
            ),
            outbound_queued_bytes_peak: r.gauge(
                "tandem_outbound_queued_bytes_peak",
                "The most bytes ever queued for sync sockets at once since the server started.",
            ),
            uptime: r.gauge("tandem_uptime_seconds", "Seconds since this server started."),
            resident_memory: r
                .gauge("process_resident_memory_bytes", "Resident memory of the process in bytes."),
            open_fds: r.gauge("process_open_fds", "Open file descriptors of the process."),
            cpu_seconds: r.counter(
                "process_cpu_seconds_total",
                "User and system CPU time of the process in seconds.",
            ),
        };

        Self {
            recorder,
            handle,
            started: Instant::now(),
            changes_merged,
            viewer_changes_refused,
            invalid_changes_refused,
            slow_readers_closed,
            foreign_actor_changes_refused,
            orphan_changes_dropped,
            oversized_messages_refused,
            full_syncs_throttled,
            handshake_timeouts,
            sockets_refused,
            rate_limited_closed,
            messages_in,
            messages_out,
            bytes_in,
            bytes_out,
            ack_seconds,
            open_sockets: AtomicU64::new(0),
            rooms_asleep: AtomicU64::new(0),
            outbound_queued_bytes: AtomicU64::new(0),
            outbound_queued_bytes_peak: AtomicU64::new(0),
            registrations,
            lists_created,
            lists_deleted,
            shares,
            unshares,
            invitations_applied,
            verifications,
            logins,
            scraped,
        }
    }

    /// Counts a `verify` call's outcome.
    pub fn verification(&self, outcome: VerifyOutcome) {
        let index = VerifyOutcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.verifications[index].increment(1);
    }

    /// Counts a `login` call's outcome.
    pub fn login(&self, outcome: LoginOutcome) {
        let index = LoginOutcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.logins[index].increment(1);
    }

    /// Counts one REST request on `route` (the matched path pattern, never the raw URI) and
    /// records its latency.
    pub fn http_request(&self, route: &str, status: u16, elapsed: Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let route = route.to_owned();
        let requests = Key::from_parts(
            "tandem_http_requests_total",
            vec![Label::new("route", route.clone()), Label::from_static_parts("status", class)],
        );
        self.recorder.register_counter(&requests, &METADATA).increment(1);
        let latency = Key::from_parts(
            "tandem_http_request_duration_seconds",
            vec![Label::new("route", route)],
        );
        self.recorder.register_histogram(&latency, &METADATA).record(elapsed.as_secs_f64());
    }

    /// The histogram of save times on one physical database (by its label). Rooms take it
    /// once, when they load: a list's database does not change while it is loaded.
    pub fn save_seconds(&self, database: &str) -> Histogram {
        let key = Key::from_parts(
            "tandem_save_duration_seconds",
            vec![Label::new("database", database.to_owned())],
        );
        self.recorder.register_histogram(&key, &METADATA)
    }

    /// Moves histogram samples into their buckets. `render` does it too; a server calls this
    /// every few seconds so that samples do not pile up between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of every series, with the scrape-time values of `live`
    /// and of the process.
    pub fn render(&self, live: &Live) -> String {
        let g = &self.scraped;
        let get = |level: &AtomicU64| level.load(Ordering::Relaxed) as f64;
        g.open_sockets.set(get(&self.open_sockets));
        g.rooms_asleep.set(get(&self.rooms_asleep));
        g.outbound_queued_bytes.set(get(&self.outbound_queued_bytes));
        g.outbound_queued_bytes_peak.set(get(&self.outbound_queued_bytes_peak));
        g.rooms_loaded.set(live.rooms_loaded as f64);
        g.active_users.set(live.active_users as f64);
        g.uptime.set(self.started.elapsed().as_secs_f64());
        for pool in &live.pools {
            let in_use = u64::from(pool.size).saturating_sub(pool.idle as u64);
            self.pool_gauge(&pool.database, "in_use").set(in_use as f64);
            self.pool_gauge(&pool.database, "idle").set(pool.idle as f64);
        }
        let process = process::sample();
        if let Some(bytes) = process.resident_bytes {
            g.resident_memory.set(bytes as f64);
        }
        if let Some(fds) = process.open_fds {
            g.open_fds.set(fds as f64);
        }
        if let Some(seconds) = process.cpu_seconds {
            // Whole seconds: a Prometheus counter here is an integer.
            g.cpu_seconds.absolute(seconds as u64);
        }
        self.handle.render()
    }

    fn pool_gauge(&self, database: &str, state: &'static str) -> Gauge {
        let key = Key::from_parts(
            "tandem_db_connections",
            vec![
                Label::new("database", database.to_owned()),
                Label::from_static_parts("state", state),
            ],
        );
        self.recorder.register_gauge(&key, &METADATA)
    }
}

/// Describes and registers series on one recorder.
struct Registrar<'a>(&'a PrometheusRecorder);

impl Registrar<'_> {
    fn describe(&self, name: &'static str, help: &'static str) {
        self.0.describe_counter(name.into(), None, help.into());
    }

    fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        self.describe(name, help);
        self.0.register_counter(&Key::from_static_name(name), &METADATA)
    }

    fn labelled(&self, name: &'static str, label: &'static str, value: &'static str) -> Counter {
        let key = Key::from_parts(name, vec![Label::from_static_parts(label, value)]);
        self.0.register_counter(&key, &METADATA)
    }

    fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.0.describe_gauge(name.into(), None, help.into());
        self.0.register_gauge(&Key::from_static_name(name), &METADATA)
    }

    fn histogram(&self, name: &'static str, help: &'static str) -> Histogram {
        self.0.describe_histogram(name.into(), None, help.into());
        self.0.register_histogram(&Key::from_static_name(name), &METADATA)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of an unlabelled or labelled series in an exposition.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn two_instances_count_apart() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.changes_merged.increment(3);
        a.login(LoginOutcome::Throttled);
        b.changes_merged.increment(1);
        let (a, b) = (a.render(&Live::default()), b.render(&Live::default()));
        assert_eq!(value(&a, "tandem_changes_merged_total"), Some(3.0));
        assert_eq!(value(&b, "tandem_changes_merged_total"), Some(1.0));
        assert_eq!(value(&a, "tandem_logins_total{outcome=\"throttled\"}"), Some(1.0));
        assert_eq!(value(&b, "tandem_logins_total{outcome=\"throttled\"}"), Some(0.0));
    }

    #[test]
    fn routes_are_labelled_by_pattern_and_status_class() {
        let m = Metrics::new();
        m.http_request("/api/todolist/read", 200, Duration::from_millis(3));
        m.http_request("/api/todolist/read", 404, Duration::from_millis(1));
        m.http_request("/api/todolist/read", 404, Duration::from_millis(1));
        let text = m.render(&Live::default());
        let series = "tandem_http_requests_total{route=\"/api/todolist/read\",status=\"4xx\"}";
        assert_eq!(value(&text, series), Some(2.0), "{text}");
        let count = "tandem_http_request_duration_seconds_count{route=\"/api/todolist/read\"}";
        assert_eq!(value(&text, count), Some(3.0), "{text}");
        let bucket = "tandem_http_request_duration_seconds_bucket{route=\"/api/todolist/read\",le=\"0.001\"}";
        assert_eq!(value(&text, bucket), Some(2.0), "histogram buckets, not a summary: {text}");
    }

    #[test]
    fn scrape_time_values_and_build_info_are_exposed() {
        let m = Metrics::new();
        m.open_sockets.store(2, Ordering::Relaxed);
        let live = Live {
            rooms_loaded: 5,
            active_users: 1,
            pools: vec![PoolStats { database: "sqlite:///x.db".into(), size: 3, idle: 1 }],
        };
        let text = m.render(&live);
        assert_eq!(value(&text, "tandem_open_sockets"), Some(2.0));
        assert_eq!(value(&text, "tandem_rooms_loaded"), Some(5.0));
        let in_use = "tandem_db_connections{database=\"sqlite:///x.db\",state=\"in_use\"}";
        assert_eq!(value(&text, in_use), Some(2.0), "{text}");
        let info = format!("tandem_build_info{{version=\"{VERSION}\",git_sha=\"{GIT_SHA}\"}}");
        assert_eq!(value(&text, &info), Some(1.0), "{text}");
        assert!(text.contains("# HELP tandem_changes_merged_total Sync batches merged and saved."));
    }

    /// Every family named in `ops/` (the dashboard and the alerts) is one the server exposes,
    /// so a rename here cannot leave them silently empty.
    #[test]
    fn the_ops_files_name_only_exposed_families() {
        let m = Metrics::new();
        m.http_request("/livez", 200, Duration::from_millis(1));
        m.save_seconds("sqlite:///x.db").record(0.001);
        m.ack_seconds.record(0.001);
        let live = Live {
            pools: vec![PoolStats { database: "sqlite:///x.db".into(), size: 1, idle: 1 }],
            ..Live::default()
        };
        let text = m.render(&live);
        let families: Vec<&str> =
            text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
        for (file, content) in [
            ("grafana-dashboard.json", include_str!("../../../ops/grafana-dashboard.json")),
            ("tandem-alerts.yml", include_str!("../../../ops/tandem-alerts.yml")),
        ] {
            let mut named = 0;
            for word in content.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !(word.starts_with("tandem_") || word.starts_with("process_")) {
                    continue;
                }
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                assert!(families.contains(&family), "{file} names {word}, not exposed");
                named += 1;
            }
            assert!(named > 0, "{file} names no metric");
        }
    }
}
