//! The `firelane` binary: parse flags, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = firelane::cli::Cli::parse();
    firelane::cli::init_tracing(&cli);
    match firelane::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", firelane::cli::error_chain(&e));
            ExitCode::from(2)
        }
    }
}
