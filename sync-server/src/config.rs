//! Configuration: command-line flags and `TANDEM_*` environment variables over a TOML file
//! over the embedded defaults (SQLite under `./tandem-data`, 127.0.0.1:8080, demo mailer).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::auth::throttle::ThrottleConfig;
use crate::mailer::MailerConfig;
use crate::store::ShardSpec;
use crate::store::shard_map::{LIST_SHARDS, USER_SHARDS};
use crate::sync::SyncConfig;

/// Listen address when neither flag, environment nor file names one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Data folder when none is given.
pub const DEFAULT_DATA_DIR: &str = "tandem-data";
/// Default `shutdown_grace_secs`.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// Default `drain_delay_secs`.
pub const DEFAULT_DRAIN_DELAY_SECS: u64 = 5;

/// Tandem's sync server.
#[derive(Debug, Parser)]
#[command(name = "tandem-server", version, about)]
pub struct Cli {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TANDEM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Folder for the embedded SQLite database, the generated JWT secret and relative SQLite
    /// paths of the shard map.
    #[arg(long, env = "TANDEM_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// TOML file with the shard map, limits, token lifetime and mailer.
    #[arg(long, env = "TANDEM_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id (0-31), unique among servers sharing databases; part of every id made.
    #[arg(long, env = "TANDEM_NODE_ID")]
    pub node_id: Option<u16>,
    /// How log lines are written to stderr: `text` for people, `json` (one object per line,
    /// with the request's span fields) for log pipelines.
    #[arg(long, env = "TANDEM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The format of the log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Commands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Rebuild every user's list index from the list shards, print what changed, and exit.
    RepairIndex,
    /// Rewrite emails stored before the current normal form (Unicode normalisation, IDNA),
    /// print what changed and what was left, and exit.
    NormaliseEmails,
}

/// The TOML config file. Every section and key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Node id.
    pub node_id: Option<u16>,
    /// Most seconds from SIGTERM to exit (see [`Config::shutdown_grace_secs`]).
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds a draining node keeps answering HTTP (see [`Config::drain_delay_secs`]).
    pub drain_delay_secs: Option<u64>,
    /// Tokens and hashing.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Code delivery: `"demo"`, `"log"`, or a `[mailer]` table (see [`MailerConfig`]).
    #[serde(default)]
    pub mailer: MailerConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Rate limits on account calls.
    #[serde(default)]
    pub throttle: ThrottleConfig,
    /// Limits of the sync socket.
    #[serde(default)]
    pub sync: SyncConfig,
    /// The shard map; empty means one SQLite file in the data folder holds every shard.
    #[serde(default)]
    pub shards: Vec<ShardSpec>,
}

/// Tokens and password hashing.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// At most this many argon2 hashes run at once (each takes ~19 MiB).
    pub max_concurrent_hashes: usize,
    /// JWT signing secret (at least 32 bytes). Prefer the `TANDEM_JWT_SECRET` environment
    /// variable, or leave both unset to have one generated in the data folder.
    pub jwt_secret: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { token_ttl_secs: 3600, max_concurrent_hashes: 4, jwt_secret: None }
    }
}

/// Request limits.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most list ids one user may hold reserved (`reserve_ids`) and not yet used; a call that
    /// would go beyond is refused whole (422). Ids stop counting when their list is created.
    pub max_reserved_ids_per_user: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_body_bytes: 64 * 1024, max_reserved_ids_per_user: 1000 }
    }
}

/// Everything the server needs to start, after merging flags, environment, file and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The data folder.
    pub data_dir: PathBuf,
    /// This node's id.
    pub node_id: u16,
    /// Most seconds from SIGTERM (or [`crate::Server::drain`]) to the process's exit: past
    /// it the server stops without waiting for the rest.
    pub shutdown_grace_secs: u64,
    /// Seconds a draining node keeps answering HTTP, with `/readyz` at 503 and sync upgrades
    /// refused, before it stops accepting: time for load balancers to take it out of rotation.
    /// Capped by `shutdown_grace_secs`.
    pub drain_delay_secs: u64,
    /// Tokens and hashing.
    pub auth: AuthConfig,
    /// Code delivery.
    pub mailer: MailerConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Rate limits on account calls.
    pub throttle: ThrottleConfig,
    /// Limits of the sync socket.
    pub sync: SyncConfig,
    /// The shard map (never empty).
    pub shards: Vec<ShardSpec>,
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
}

impl Config {
    /// The embedded default: every shard in `tandem.db` in `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            data_dir: data_dir.into(),
            node_id: 0,
            shutdown_grace_secs: DEFAULT_SHUTDOWN_GRACE_SECS,
            drain_delay_secs: DEFAULT_DRAIN_DELAY_SECS,
            auth: AuthConfig::default(),
            mailer: MailerConfig::default(),
            limits: LimitsConfig::default(),
            throttle: ThrottleConfig::default(),
            sync: SyncConfig::default(),
            shards: vec![single_sqlite_shard()],
        }
    }

    /// Merges flags and environment (already in `cli`) over the file over the defaults. The
    /// JWT secret may also come from `TANDEM_JWT_SECRET`, the SMTP password from
    /// `TANDEM_SMTP_PASSWORD`.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut config = Self::embedded(&cli.data_dir);
        config.listen = cli.listen.or(file.listen).unwrap_or(config.listen);
        config.node_id = cli.node_id.or(file.node_id).unwrap_or(0);
        config.shutdown_grace_secs = file.shutdown_grace_secs.unwrap_or(config.shutdown_grace_secs);
        config.drain_delay_secs = file.drain_delay_secs.unwrap_or(config.drain_delay_secs);
        config.auth = file.auth;
        if let Ok(secret) = std::env::var("TANDEM_JWT_SECRET") {
            config.auth.jwt_secret = Some(secret);
        }
        config.mailer = file.mailer;
        if let (Ok(password), MailerConfig::Smtp(smtp)) =
            (std::env::var("TANDEM_SMTP_PASSWORD"), &mut config.mailer)
        {
            smtp.password = Some(password);
            smtp.password_file = None;
        }
        config.limits = file.limits;
        config.throttle = file.throttle;
        config.sync = file.sync;
        if !file.shards.is_empty() {
            config.shards = file.shards;
        }
        Ok(config)
    }

    /// Token lifetime.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.auth.token_ttl_secs)
    }

    /// `shutdown_grace_secs` as a `Duration`.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// `drain_delay_secs` as a `Duration`, never longer than the grace.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_secs(self.drain_delay_secs.min(self.shutdown_grace_secs))
    }
}

/// One SQLite file holding every logical shard.
pub fn single_sqlite_shard() -> ShardSpec {
    ShardSpec {
        url: "sqlite:tandem.db".into(),
        users: Some([0, USER_SHARDS]),
        lists: Some([0, LIST_SHARDS]),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_sets_shards_limits_and_mailer() {
        let file: FileConfig = toml::from_str(
            r#"
            node_id = 3
            mailer = "log"
            [auth]
            token_ttl_secs = 600
            [throttle]
            per_address_per_minute = 1000
            [[shards]]
            url = "postgres://postgres@127.0.0.1/a"
            users = [0, 512]
            lists = [0, 2048]
            [[shards]]
            url = "postgres://postgres@127.0.0.1/b"
            users = [512, 1024]
            lists = [2048, 4096]
            "#,
        )
        .unwrap();
        assert_eq!(file.node_id, Some(3));
        assert_eq!(file.mailer, MailerConfig::Log);
        assert_eq!(file.auth.token_ttl_secs, 600);
        assert_eq!(file.auth.max_concurrent_hashes, 4, "unset keys keep their defaults");
        assert_eq!(file.throttle.per_address_per_minute, 1000);
        assert_eq!(file.throttle.per_account_per_minute, 10);
        assert_eq!(file.shards.len(), 2);
        assert_eq!(file.shards[1].lists, Some([2048, 4096]));
    }

    #[test]
    fn the_readme_sample_config_is_valid() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```toml\nlisten").expect("the sample in README.md") + 8;
        let sample = &readme[start..start + readme[start..].find("```").unwrap()];
        let file: FileConfig = toml::from_str(sample).unwrap();
        let MailerConfig::Smtp(smtp) = file.mailer else { panic!("{:?}", file.mailer) };
        assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.com", 587));
        assert_eq!(file.limits.max_reserved_ids_per_user, 1000);
    }

    #[test]
    fn unknown_keys_are_errors_not_silence() {
        assert!(toml::from_str::<FileConfig>("listn = \"127.0.0.1:1\"").is_err());
        assert!(toml::from_str::<FileConfig>("[auth]\ntoken_ttl = 5").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nnode_id = 4\n").unwrap();
        let cli = Cli::parse_from([
            "tandem-server",
            "--config",
            path.to_str().unwrap(),
            "--node-id",
            "7",
        ]);
        let config = Config::from_cli(&cli).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.node_id, 7);
        assert_eq!(config.shards, vec![single_sqlite_shard()]);
    }

    #[test]
    fn the_drain_delay_fits_in_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.toml");
        std::fs::write(&path, "shutdown_grace_secs = 4\ndrain_delay_secs = 9\n").unwrap();
        let cli = Cli::parse_from(["tandem-server", "--config", path.to_str().unwrap()]);
        let config = Config::from_cli(&cli).unwrap();
        assert_eq!(config.shutdown_grace(), Duration::from_secs(4));
        assert_eq!(config.drain_delay(), Duration::from_secs(4), "capped by the grace");
        let defaults = Config::embedded("x");
        assert_eq!((defaults.shutdown_grace_secs, defaults.drain_delay_secs), (30, 5));
    }

    #[test]
    fn the_log_format_is_text_unless_asked() {
        assert_eq!(Cli::parse_from(["tandem-server"]).log_format, LogFormat::Text);
        let cli = Cli::parse_from(["tandem-server", "--log-format", "json"]);
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["tandem-server", "--log-format", "xml"]).is_err());
    }
}
