//! `dartwing-bench`: benchmark programs for the Dartwing Core runtime.
//!
//! `dartwing-bench http` starts the release `dartwing` binary on SQLite (and PostgreSQL when a
//! URL is given), with observability on and off, and measures authenticated document reads
//! over HTTP. See `dartwing-bench http --help`. `dartwing-bench jobs` measures background jobs,
//! `dartwing-bench realtime` the Socket.IO gateway next to Node.js socket.io.

mod driver;
mod http;
mod jobs;
mod jobs_http;
mod load;
mod realtime;
mod scrape;
mod server;
mod stats;
mod sync;
mod vault;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The tables of every capability the benchmarks use.
const MIGRATIONS: &[&dartwing_db::Migrations] = &[
    &dartwing_tenancy::MIGRATIONS,
    &dartwing_jobs::MIGRATIONS,
    &dartwing_sync::MIGRATIONS,
    &dartwing_integrations::MIGRATIONS,
];

/// Benchmark programs for the Dartwing Core runtime.
#[derive(Debug, Parser)]
#[command(name = "dartwing-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The database driver: the runtime's portable (Any) pool next to sqlx's native PostgreSQL pool.
    #[command(long_about = driver::LONG_ABOUT)]
    Driver(driver::DriverArgs),
    /// Authenticated document reads over HTTP, per backend, with observability on and off.
    #[command(long_about = http::LONG_ABOUT)]
    Http(http::HttpArgs),
    /// Background jobs: this engine next to RQ and BullMQ, throughput and noisy-neighbour waits.
    #[command(long_about = jobs::LONG_ABOUT)]
    Jobs(jobs::JobsArgs),
    /// `/metrics` rendering time with many organizations' series, bounded and unbounded.
    #[command(long_about = scrape::LONG_ABOUT)]
    Scrape(scrape::ScrapeArgs),
    /// Offline sync: upsert_batch and feed throughput next to the raw ceilings of the same rows.
    #[command(long_about = sync::LONG_ABOUT)]
    Sync(sync::SyncArgs),
    /// Token vault: access_token hot path next to a bare AEAD decrypt, and a thundering herd.
    #[command(long_about = vault::LONG_ABOUT)]
    Vault(vault::VaultArgs),
    /// Realtime gateway: 3 nodes on one Redis next to Node.js socket.io, fan-out and idle connections.
    #[command(long_about = realtime::LONG_ABOUT)]
    Realtime(realtime::RealtimeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Driver(args) => runtime.block_on(driver::run(args)),
        Command::Http(args) => runtime.block_on(http::run(args)),
        Command::Jobs(args) => runtime.block_on(jobs::run(args)),
        Command::Scrape(args) => runtime.block_on(scrape::run(args)),
        Command::Sync(args) => runtime.block_on(sync::run(args)),
        Command::Vault(args) => runtime.block_on(vault::run(args)),
        Command::Realtime(args) => runtime.block_on(realtime::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
