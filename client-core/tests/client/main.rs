//! Integration tests of the client engine against real SQLite files in temporary
//! directories. One test binary with a module per scenario, to save link time.

mod compaction;
mod crash;
mod edits;
mod events;
mod remote;

use tandem_client::{Client, ClientConfig};
use tempfile::TempDir;

/// A fresh data directory and a client on it.
pub fn fresh() -> (TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(ClientConfig::new(dir.path())).unwrap();
    (dir, client)
}

/// A new client on the same data directory, as a new process would open it.
pub fn reopen(dir: &TempDir) -> Client {
    Client::open(ClientConfig::new(dir.path())).unwrap()
}
