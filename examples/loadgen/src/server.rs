//! The server under load: started by the load generator (so its start time, CPU time and
//! memory can be measured, and it can be restarted on the same data) or reached at a URL.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Config for a server under load: account throttles and per-socket and per-user message
/// and socket limits raised (the workloads run many sockets of a few accounts), message and
/// document size limits and persistence unchanged (SQLite, WAL, `synchronous=FULL`).
const LOAD_CONFIG: &str = r#"
[throttle]
per_account_per_minute = 100000
per_address_per_minute = 1000000

[sync]
messages_per_second = 100000
user_messages_per_second = 1000000
max_sockets_per_user = 100000
full_syncs_per_minute = 100000
outbound_queue = 65536
"#;

/// Longest wait for a started server to listen and answer.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// A server under load.
pub struct Server {
    /// `http://host:port`; changes when a local server restarts.
    pub base: String,
    local: Option<Local>,
}

/// A server process the load generator started, and the folder its data lives in.
struct Local {
    bin: PathBuf,
    /// Holds the config file and the data folder; kept across restarts, removed on drop.
    dir: tempfile::TempDir,
    child: Child,
    start: StartTime,
}

/// How long a start took.
#[derive(Debug, Clone, Copy)]
pub struct StartTime {
    /// From spawning the process until it printed its listen line.
    pub listening: Duration,
    /// From spawning the process until `/healthz` answered 200.
    pub answering: Duration,
}

/// CPU and memory of the server process.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User + system CPU seconds.
    pub cpu_secs: f64,
    /// Peak resident memory, KiB.
    pub peak_rss_kib: u64,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
}

impl Server {
    /// A server already running.
    pub fn external(base: String) -> Self {
        Self { base, local: None }
    }

    /// Starts `bin` on a free port with a new temporary data folder.
    pub async fn spawn(bin: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::write(config_path(&dir), LOAD_CONFIG)?;
        let (child, base, start) = start(bin, &dir).await?;
        Ok(Self { base, local: Some(Local { bin: bin.to_owned(), dir, child, start }) })
    }

    /// Kills the local server and starts it again on the same data folder (a new port).
    pub async fn restart(&mut self) -> anyhow::Result<StartTime> {
        let local = self.local.as_mut().context("only a server we started can be restarted")?;
        local.child.kill()?;
        local.child.wait()?;
        let (child, base, start) = start(&local.bin, &local.dir).await?;
        (local.child, local.start) = (child, start);
        self.base = base;
        Ok(start)
    }

    /// A value from the server's `/metrics` (a gauge such as `tandem_rooms_asleep`).
    pub async fn gauge(&self, name: &str) -> Option<u64> {
        let text = reqwest::get(format!("{}/metrics", self.base)).await.ok()?.text().await.ok()?;
        let prefix = format!("{name} ");
        text.lines().find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse().ok())
    }

    /// Whether the load generator started this server (and so can read its usage).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// How long the latest start took, when we started the server.
    pub fn start_time(&self) -> Option<StartTime> {
        Some(self.local.as_ref()?.start)
    }

    /// The SQLite file holding every shard, when we started the server.
    pub fn database_file(&self) -> Option<PathBuf> {
        Some(data_dir(&self.local.as_ref()?.dir).join("tandem.db"))
    }

    /// The server's CPU time and memory, when it is our child.
    pub fn usage(&self) -> Option<Usage> {
        Usage::of(self.local.as_ref()?.child.id())
    }
}

impl Usage {
    /// The CPU time and memory of process `pid`, from `/proc`.
    pub fn of(pid: u32) -> Option<Self> {
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
        Some(Self {
            cpu_secs: ticks / 100.0,
            peak_rss_kib: field("VmHWM:")?,
            rss_kib: field("VmRSS:")?,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(local) = &mut self.local {
            let _ = local.child.kill();
            let _ = local.child.wait();
        }
    }
}

fn config_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("load.toml")
}

fn data_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

/// Spawns the server on `dir` and waits until it listens and answers `/healthz`.
async fn start(bin: &Path, dir: &tempfile::TempDir) -> anyhow::Result<(Child, String, StartTime)> {
    let spawned = Instant::now();
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir(dir))
        .arg("--config")
        .arg(config_path(dir))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with cargo build --release -p tandem-server)",
                bin.display()
            )
        })?;
    let stdout = child.stdout.take().context("server stdout")?;
    let listen = tokio::task::spawn_blocking(move || listen_line(stdout));
    let base = match tokio::time::timeout(START_PATIENCE, listen).await {
        Ok(base) => base??,
        Err(_) => bail!("the server did not print its listen line within {START_PATIENCE:?}"),
    };
    let listening = spawned.elapsed();
    let http = reqwest::Client::new();
    loop {
        let health = http.get(format!("{base}/healthz")).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if spawned.elapsed() > START_PATIENCE {
            bail!("the server at {base} did not answer /healthz within {START_PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((child, base, StartTime { listening, answering: spawned.elapsed() }))
}

/// Reads the server's listen line and returns its URL; then forwards the rest of its
/// standard output to ours for errors (so that the pipe never fills up or closes on it).
fn listen_line(stdout: ChildStdout) -> anyhow::Result<String> {
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    lines.read_line(&mut line)?;
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .with_context(|| format!("the server did not say where it listens: {line:?}"))?
        .to_owned();
    std::thread::spawn(move || {
        for line in lines.lines() {
            let Ok(line) = line else { break };
            eprintln!("tandem-server: {line}");
        }
    });
    Ok(base)
}
