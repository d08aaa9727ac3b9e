//! `tandem-loadgen`: drives a real `tandem-server` over the real protocol and prints figures.
//!
//! Every simulated client does what a real client does: it keeps each list's Automerge
//! document and applies every message it receives; an edit counts as delivered when it is
//! visible in a reader's document, not when a frame arrives. By default the load generator
//! starts the server itself (`--server-bin`, a temporary data folder, throttles raised for
//! load) so that it can read the server's CPU time and peak memory from `/proc`.

mod client;
mod server;
mod stats;
mod workloads;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Load generator for tandem-server.
#[derive(Debug, Parser)]
#[command(name = "tandem-loadgen", about)]
struct Cli {
    /// The server binary to start (built with `cargo build --release -p tandem-server`).
    #[arg(long, default_value = "target/release/tandem-server")]
    server_bin: PathBuf,
    /// Use a server already running at this URL instead of starting one (no CPU or memory
    /// figures then). It must allow the load's rate of account calls and messages.
    #[arg(long)]
    server: Option<String>,
    /// The workload.
    #[command(subcommand)]
    workload: Workload,
}

/// The workloads.
#[derive(Debug, Subcommand)]
enum Workload {
    /// Lists with one writer and several readers each: edit-to-visible latency.
    Fanout {
        /// Lists.
        #[arg(long, default_value_t = 100)]
        lists: usize,
        /// Reader sockets per list.
        #[arg(long, default_value_t = 10)]
        readers: usize,
        /// Edits per second per list.
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Lists with two writers as fast as acknowledgements allow and one reader each.
    Throughput {
        /// Lists.
        #[arg(long, default_value_t = 50)]
        lists: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Idle authenticated sockets, each subscribed to its own list.
    Connections {
        /// Sockets.
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let server = match &cli.server {
        Some(url) => server::Server::external(url.clone()),
        None => server::Server::spawn(&cli.server_bin).await?,
    };
    let report = match cli.workload {
        Workload::Fanout { lists, readers, rate, seconds } => {
            workloads::fanout(&server, lists, readers, rate, seconds).await?
        }
        Workload::Throughput { lists, seconds } => {
            workloads::throughput(&server, lists, seconds).await?
        }
        Workload::Connections { count } => workloads::connections(&server, count).await?,
    };
    println!("{report}");
    if let Some(usage) = server.usage() {
        println!("server: {usage}");
    }
    Ok(())
}
