//! `tandem-server`: parses the config and runs the server (or a maintenance command).

use clap::Parser as _;
use tandem_server::config::{Cli, Command, Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's allocator: a server holding thousands of small documents and
/// sockets keeps a third less memory resident (see BENCHMARKS.md, connections).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_log(cli.log_format);
    let config = Config::from_cli(&cli)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::RepairIndex => {
            std::fs::create_dir_all(&config.data_dir)?;
            let store = tandem_server::store::Store::open(&config.shards, &config.data_dir).await?;
            let report = store.repair_list_index().await?;
            println!(
                "list index repaired: {} entries added or fixed, {} removed",
                report.upserted, report.removed
            );
            store.close().await;
            Ok(())
        }
        Command::NormaliseEmails => {
            std::fs::create_dir_all(&config.data_dir)?;
            let store = tandem_server::store::Store::open(&config.shards, &config.data_dir).await?;
            let report = store.normalise_emails().await?;
            println!(
                "emails normalised: {} accounts rewritten, {} invitations moved",
                report.accounts, report.invitations
            );
            for conflict in &report.conflicts {
                println!("left as is, another account holds its normal form: {conflict}");
            }
            for refused in &report.refused {
                println!("left as is, refused by the current rules: {refused}");
            }
            store.close().await;
            Ok(())
        }
    }
}

/// The log goes to stderr: stdout carries only the "listening on" line that scripts read.
fn init_log(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => log.init(),
        // The event's fields at the top level, and the fields of every span it is in (request
        // id, route, user, socket) in `spans`.
        LogFormat::Json => {
            log.json().flatten_event(true).with_current_span(false).with_span_list(true).init()
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let server = tandem_server::Server::start(config).await?;
    println!(
        "tandem-server listening on http://{} (data in {})",
        server.addr(),
        data_dir.display()
    );
    tracing::info!(addr = %server.addr(), "listening");
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.drain().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
