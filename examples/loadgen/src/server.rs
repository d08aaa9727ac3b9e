//! The server under load: started by the load generator (so its CPU time and peak memory can
//! be read from `/proc`) or reached at a URL.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use std::io::{BufRead as _, BufReader};

/// Config for a server under load: account throttles and per-socket message limits raised,
/// persistence unchanged (SQLite, WAL, `synchronous=FULL`).
const LOAD_CONFIG: &str = r#"
[throttle]
per_account_per_minute = 100000
per_address_per_minute = 1000000

[sync]
messages_per_second = 100000
outbound_queue = 65536
"#;

/// A server under load.
pub struct Server {
    /// `http://host:port`.
    pub base: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

/// CPU and memory of the server process.
pub struct Usage {
    /// User + system CPU seconds.
    pub cpu_secs: f64,
    /// Peak resident memory, KiB.
    pub peak_rss_kib: u64,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cpu {:.2} s, peak RSS {:.1} MiB, RSS now {:.1} MiB",
            self.cpu_secs,
            self.peak_rss_kib as f64 / 1024.0,
            self.rss_kib as f64 / 1024.0
        )
    }
}

impl Server {
    /// A server already running.
    pub fn external(base: String) -> Self {
        Self { base, child: None, _dir: None }
    }

    /// Starts `bin` on a free port with a temporary data folder.
    pub async fn spawn(bin: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("load.toml");
        std::fs::write(&config, LOAD_CONFIG)?;
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it with cargo build --release -p tandem-server)",
                    bin.display()
                )
            })?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut line)?;
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("the server did not say where it listens: {line:?}"))?
            .to_owned();
        Ok(Self { base, child: Some(child), _dir: Some(dir) })
    }

    /// The server's CPU time and memory, when it is our child.
    pub fn usage(&self) -> Option<Usage> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
        Some(Usage {
            cpu_secs: ticks / 100.0,
            peak_rss_kib: field("VmHWM:")?,
            rss_kib: field("VmRSS:")?,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
