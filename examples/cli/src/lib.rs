//! The `tandem` command-line client: a thin shell over [`tandem_client::Client`], so that
//! people and scripts can use the engine. Every command accepts `--json`; a failure exits
//! non-zero with a one-line reason on stderr.
//!
//! `main.rs` only calls [`main_with_args`]; [`Cli`] is the contract (see `tandem --help`).

mod command;
mod output;
mod sync;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tandem_client::{Client, ClientConfig, Role};

pub use command::{DEFAULT_SYNC_TIMEOUT_SECS, run};

/// Exit status of a command that failed (the reason is on stderr).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a command line that could not be parsed.
pub const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str = "\
The data directory is --data, else $TANDEM_DATA, else $HOME/.tandem. The server is --server,
else $TANDEM_SERVER, else the server last signed in to, else http://127.0.0.1:8080.
Everything except register, verify, login, share, unshare, history, sync and watch works
offline.";

/// `tandem [--data DIR] [--server URL] [--json] COMMAND`
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about = "Offline-first collaborative TODO lists.")]
#[command(after_help = AFTER_HELP)]
pub struct Cli {
    /// Data directory holding the local store [default: $HOME/.tandem].
    #[arg(long, env = "TANDEM_DATA", global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Server base URL [default: the last one signed in to, else http://127.0.0.1:8080].
    #[arg(long, env = "TANDEM_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account; the server sends a verification code.
    Register {
        /// Email address.
        email: String,
        /// Password.
        password: String,
    },
    /// Confirm an account with the emailed code.
    Verify {
        /// Email address.
        email: String,
        /// The verification code.
        code: String,
    },
    /// Sign in and keep the token in the data directory.
    Login {
        /// Email address.
        email: String,
        /// Password.
        password: String,
    },
    /// Forget the stored token (lists stay on this device).
    Logout,
    /// List every list you can see.
    Lists,
    /// Show one list with its items in order.
    Show {
        /// List id.
        list: u64,
    },
    /// Create a list (prints its id).
    Create {
        /// Title.
        title: String,
    },
    /// Rename a list.
    Rename {
        /// List id.
        list: u64,
        /// New title.
        title: String,
    },
    /// Delete a list (owner only).
    Delete {
        /// List id.
        list: u64,
    },
    /// Share a list with someone (owner only; needs the server).
    Share {
        /// List id.
        list: u64,
        /// Their email address.
        email: String,
        /// Their role.
        role: ShareRole,
    },
    /// Stop sharing a list with someone (owner only; needs the server).
    Unshare {
        /// List id.
        list: u64,
        /// Their email address.
        email: String,
    },
    /// Add an item at the end of a list (prints its id).
    Add {
        /// List id.
        list: u64,
        /// The item's text.
        text: String,
    },
    /// Replace an item's text.
    Edit {
        /// List id.
        list: u64,
        /// Item id.
        item: u64,
        /// New text.
        text: String,
    },
    /// Check an item off.
    Done {
        /// List id.
        list: u64,
        /// Item id.
        item: u64,
    },
    /// Uncheck an item.
    Undone {
        /// List id.
        list: u64,
        /// Item id.
        item: u64,
    },
    /// Move an item to the top or after another item.
    Move {
        /// List id.
        list: u64,
        /// Item id.
        item: u64,
        /// Move it to the top.
        #[arg(long, conflicts_with = "after", required_unless_present = "after")]
        first: bool,
        /// Move it just after this item.
        #[arg(long, value_name = "ITEM")]
        after: Option<u64>,
    },
    /// Remove an item.
    Remove {
        /// List id.
        list: u64,
        /// Item id.
        item: u64,
    },
    /// Who made each change of a list and when the server accepted it, newest first (needs
    /// the server). Prints one page; the last line says how to get the next one.
    History {
        /// List id.
        list: u64,
        /// Only the changes to this item ("who checked this off").
        #[arg(long, value_name = "ITEM")]
        item: Option<u64>,
        /// Older changes: the cursor the previous page ended with.
        #[arg(long, value_name = "CURSOR")]
        before: Option<i64>,
        /// Changes per page, 1 to 100 [default: 100].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Push and pull every list once; exits 0 when every list is in step with the server.
    Sync {
        /// Give up after this many seconds [default: 30].
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Stay connected, syncing as changes happen, and print each change as a line (one JSON
    /// object per line with --json) until killed. Connection news goes to stderr.
    Watch {
        /// Only print this list's changes.
        list: Option<u64>,
    },
}

/// The roles a list can be shared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShareRole {
    /// May edit.
    Editor,
    /// May only read.
    Viewer,
}

impl From<ShareRole> for Role {
    fn from(role: ShareRole) -> Self {
        match role {
            ShareRole::Editor => Role::Editor,
            ShareRole::Viewer => Role::Viewer,
        }
    }
}

impl Cli {
    /// Opens the client this command line names.
    pub fn open_client(&self) -> Result<Client, tandem_client::Error> {
        let data = match &self.data {
            Some(dir) => dir.clone(),
            None => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|home| PathBuf::from(home).join(".tandem"))
                .ok_or_else(|| {
                    tandem_client::Error::InvalidInput(
                        "no data directory: pass --data DIR or set TANDEM_DATA".into(),
                    )
                })?,
        };
        let mut config = ClientConfig::new(data);
        if let Some(server) = &self.server {
            config = config.with_server_url(server.clone());
        }
        Client::open(config)
    }
}

/// Parses `args`, runs the command, prints its output, and returns the exit status.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message spans several lines; keep the reason, on one line.
            let rendered = e.to_string();
            let reason: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.starts_with("Usage:"))
                .map(str::trim)
                .filter(|line| {
                    !line.is_empty() && !line.starts_with("tip:") && !line.starts_with("For more")
                })
                .collect();
            eprintln!("tandem: {}", reason.join(" ").trim_start_matches("error: "));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match run(&cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = e.to_string().replace('\n', " ");
            eprintln!("tandem: {line}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
