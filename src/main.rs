//! The `firelane` binary: parse flags, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    firelane::cli::init_tracing();
    let cli = firelane::cli::Cli::parse();
    match firelane::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
