//! `dartwing`: parse the command line, load configuration, set up logging, run.

use clap::Parser;
use dartwing::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    owner_only_files();
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let logging = if cli.is_serve() {
        dartwing_observe::logging::init(&config.observability, &config.node_id()).map(Some)
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .try_init()
            .map(|()| None)
            .map_err(|e| e.to_string())
    };
    // Held to the end of `main`: dropping it writes out every queued log line.
    let _log_writer = match logging {
        Ok(guard) => guard,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if cli.is_serve() {
        raise_open_files_limit(config.http.max_connections);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error_type = "Startup", error = %format!("{error:#}"), "dartwing failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything the node creates — the data directory, `dartwing.db` and the `-wal`/`-shm` files
/// SQLite adds later, generated keys — is readable by its owner only (directories 0700, files
/// 0600). A process umask covers the files SQLite creates on its own.
fn owner_only_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Every open connection (HTTP or WebSocket) holds a file descriptor, and the default soft limit
/// on open files (often 1,024) would refuse connections long before `http.max_connections`. The
/// node raises its soft limit to the hard limit the operator allows, and warns when that is still
/// below the connection cap.
fn raise_open_files_limit(max_connections: usize) {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if let Err(error) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!(error = %error, "the open-files limit could not be raised");
            }
        }
        let open_files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        if u64::try_from(max_connections).unwrap_or(u64::MAX) >= open_files {
            tracing::warn!(
                open_files,
                max_connections,
                "the open-files limit is below `http.max_connections`: connections beyond it will fail; \
                 raise the hard limit (`ulimit -Hn`, systemd `LimitNOFILE`)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = max_connections;
}
