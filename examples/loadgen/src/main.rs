//! `tandem-loadgen`: drives a real `tandem-server` over the real protocol and prints figures.
//!
//! Every simulated client does what a real client does: it signs up over REST (the server
//! must use the demo mailer), keeps each list's Automerge document and applies every message
//! it receives; an edit counts as delivered when it is visible in a reader's document, not
//! when a frame arrives. By default the load generator starts the server itself
//! (`--server-bin`, a temporary data folder, throttles raised for load) so that it can time
//! its start and read its CPU time and memory from `/proc`; `--server URL` uses a running one.
//!
//! Each run prints ONE JSON line on standard output: `workload`, the parameters, the figures,
//! and the server's (`server_start_ms`, `server_peak_rss_mib`, `server_cpu_s`: null when the
//! server was not started here), and `loadgen_cpu_s`, the load generator's own CPU time (it
//! shares the machine with the server). A failed run prints the same line with an `error` field and
//! exits with status 1. Progress goes to standard error.
//!
//! ```text
//! target/release/tandem-loadgen fanout --subscribers 100 --edits 300 --rate 50
//! ```

mod client;
mod server;
mod stats;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use server::Server;
use stats::{merge, mib, ms, round};
use workloads::{big_list, connections, fanout, reconnect, throughput};

/// Load generator for tandem-server: prints one JSON line of figures per run.
#[derive(Debug, Parser)]
#[command(name = "tandem-loadgen", about)]
struct Cli {
    /// The server binary to start (built with `cargo build --release -p tandem-server`).
    #[arg(long, default_value = "target/release/tandem-server")]
    server_bin: PathBuf,
    /// Use a server already running at this URL instead of starting one (no start time, CPU
    /// or memory figures then, and `big-list` cannot restart it). It must use the demo mailer
    /// and allow the load's rate of account calls and messages.
    #[arg(long)]
    server: Option<String>,
    /// The newest protocol version the simulated clients speak (1: Automerge sync messages
    /// only; 2: saved batches streamed as raw changes once in step).
    #[arg(long, default_value_t = tandem_protocol::wire::PROTOCOL_VERSION)]
    protocol: u16,
    /// The workload.
    #[command(subcommand)]
    workload: Workload,
}

/// The workloads.
#[derive(Debug, Subcommand)]
enum Workload {
    /// One list, S subscribers and one writer making E edits at R per second: latency from
    /// edit made to edit seen, over every (subscriber, edit) pair.
    Fanout(fanout::Params),
    /// D lists, two writers each as fast as acknowledgements allow, one reader each: edits per
    /// second seen and the server's CPU time.
    Throughput(throughput::Params),
    /// N idle authenticated sockets, each subscribed to its own list: server memory per
    /// connection and time to connect all.
    Connections(connections::Params),
    /// N clients with K offline edits each reconnect at once: time until every list is in
    /// step, and bytes sent against the size of the edits.
    Reconnect(reconnect::Params),
    /// One list of many items with history: time to load it cold and the server memory it
    /// takes, against its saved size.
    BigList(big_list::Params),
}

impl Workload {
    /// The name on the command line and in the report.
    fn name(&self) -> &'static str {
        match self {
            Self::Fanout(_) => "fanout",
            Self::Throughput(_) => "throughput",
            Self::Connections(_) => "connections",
            Self::Reconnect(_) => "reconnect",
            Self::BigList(_) => "big-list",
        }
    }

    /// The parameters as report fields.
    fn params(&self) -> Value {
        match self {
            Self::Fanout(p) => p.json(),
            Self::Throughput(p) => p.json(),
            Self::Connections(p) => p.json(),
            Self::Reconnect(p) => p.json(),
            Self::BigList(p) => p.json(),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    client::set_max_version(cli.protocol);
    let mut line = json!({
        "workload": cli.workload.name(),
        "protocol": cli.protocol,
        "server_started": cli.server.is_none(),
        "server_start_ms": null,
        "server_listen_ms": null,
        "server_peak_rss_mib": null,
        "server_cpu_s": null,
        "loadgen_cpu_s": null,
    });
    merge(&mut line, cli.workload.params());
    let result = run(cli, &mut line).await;
    if let Err(e) = &result {
        eprintln!("tandem-loadgen: {e:#}");
        merge(&mut line, json!({ "error": format!("{e:#}") }));
    }
    println!("{line}");
    if result.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Starts or reaches the server, runs the workload and adds the figures to `line`.
async fn run(cli: Cli, line: &mut Value) -> anyhow::Result<()> {
    let mut server = match cli.server {
        Some(url) => Server::external(url),
        None => Server::spawn(&cli.server_bin).await?,
    };
    if let Some(start) = server.start_time() {
        eprintln!("tandem-server started at {} in {:.1} ms", server.base, ms(start.answering));
        merge(
            line,
            json!({
                "server_start_ms": ms(start.answering),
                "server_listen_ms": ms(start.listening),
            }),
        );
    }
    let figures = match cli.workload {
        Workload::Fanout(p) => fanout::run(&server, p).await,
        Workload::Throughput(p) => throughput::run(&server, p).await,
        Workload::Connections(p) => connections::run(&mut server, p).await,
        Workload::Reconnect(p) => reconnect::run(&server, p).await,
        Workload::BigList(p) => big_list::run(&mut server, p).await,
    };
    if let Some(usage) = server.usage() {
        merge(
            line,
            json!({
                "server_peak_rss_mib": mib(usage.peak_rss_kib),
                "server_cpu_s": round(usage.cpu_secs, 2),
            }),
        );
    }
    // The load generator shares the machine: its own CPU time tells how much it took.
    let own_cpu = server::Usage::of(std::process::id()).map(|u| round(u.cpu_secs, 2));
    merge(line, json!({ "loadgen_cpu_s": own_cpu }));
    merge(line, figures?);
    Ok(())
}
