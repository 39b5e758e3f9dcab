//! `infoharbor`: the NGSI-LD context broker binary — configuration, telemetry, wiring of the
//! store, engine and HTTP API, graceful shutdown.

mod config;
mod contexts;
mod dead_letters;
mod identity;
mod keys;
#[cfg_attr(not(feature = "otlp"), path = "otlp_off.rs")]
mod otlp;
mod preload;
mod serve;
mod sweep;
mod telemetry;
mod transport;
mod views;

use clap::{Parser, Subcommand};

/// The broker allocates many small, short-lived values per request (JSON trees, strings);
/// mimalloc serves them with far less time in the allocator than the system one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Infoharbor: a smart-city NGSI-LD context broker.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the NGSI-LD API on the embedded durable store.
    Serve(Box<config::ServeArgs>),
    /// Notifications that could not be delivered (dead letters) of a running broker: list
    /// them, send them again, or drop them.
    DeadLetters(dead_letters::Args),
    /// API keys: create, list and revoke them, through a running broker (--broker) or in the
    /// store of a stopped one (--data-dir), which is how the first operator key is made.
    Keys(keys::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let cfg = args.resolve()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let traces = telemetry::init(&cfg, runtime.handle())?;
            let served = runtime.block_on(serve::run(cfg, traces));
            // A query still running on a blocking thread must not hold the exit back.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            served
        }
        Command::DeadLetters(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(dead_letters::run(args)),
        Command::Keys(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(keys::run(args)),
    }
}
