//! The command line. Each subcommand parses its flags here and calls the
//! library; exit codes: 0 ok, 1 a problem was found (invalid config, failed
//! check), 2 an error stopped the command.

mod admin;
mod bench;
mod broker;
mod check_config;
mod classify;
mod config;
mod demo;
mod record;
mod replay;
mod run;
mod whatif;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};
pub use admin::{AuditAction, CalibrationAction, EvidenceAction, TokenAction};

#[derive(Parser, Debug)]
#[command(
    name = "firelane",
    version,
    about = "Keeps fire lanes clear: cameras and presence sensors in, violations with evidence out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// See it work: the daemon on embedded defaults in a data folder of its
    /// own, fed the bundled sample (or --scenario DIR) through its broker
    /// on an accelerated clock; prints the page's address and a token.
    Demo(demo::DemoArgs),
    /// Run the daemon (logs: FIRELANE_LOG, e.g. `debug` or `info,rumqttd=info`).
    Run(run::RunArgs),
    /// Run a scenario folder (shared/scenarios/FORMAT.md) through the pipeline.
    Replay(replay::ReplayArgs),
    /// Validate a configuration and print a summary.
    CheckConfig(check_config::CheckConfigArgs),
    /// Score image files or folders with the obstruction classifier.
    Classify(classify::ClassifyArgs),
    /// Measure the pipeline under load (in-process and through mosquitto),
    /// optionally beside the Python peer; prints a Markdown table.
    Bench(bench::BenchArgs),
    /// Export the daemon's rolling recording ([recording]) as a scenario
    /// folder, with the zones and the config it ran under.
    Record(record::RecordArgs),
    /// Run a scenario under the current and a new config and show, per
    /// zone, the violations the change adds, removes and changes.
    Whatif(whatif::WhatifArgs),
    /// API tokens: create (printed once), list, revoke.
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// The audit log of evidence access and reviews.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Cameras' thresholds learned from their presence sensors.
    Calibration {
        #[command(subcommand)]
        action: CalibrationAction,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Signed evidence bundles: export, verify, and the site's public key.
    Evidence {
        #[command(subcommand)]
        action: EvidenceAction,
    },
    /// Cluster mode: record a configuration every instance applies.
    Config {
        #[command(subcommand)]
        action: config::ConfigAction,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// The embedded broker's users.
    Broker {
        #[command(subcommand)]
        action: broker::BrokerAction,
    },
}

/// Which site's data a command works on; the same flags as `run`.
#[derive(Args, Debug, Clone)]
pub struct SiteArgs {
    /// TOML configuration; default `config/firelane.toml` when it exists,
    /// else the one built into the binary (a copy of the shipped file).
    #[arg(long, short, env = "FIRELANE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Overrides [storage] data_dir (database, evidence, site key); a
    /// replay's folder works too.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

pub fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    // A what-if's per-violation lines would bury its table and progress bar.
    let default = match cli.command {
        Command::Whatif(_) => "warn,rumqttd=off",
        _ => "info,rumqttd=off",
    };
    let filter =
        EnvFilter::try_from_env("FIRELANE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal, never in a log file; one
    // JSON object per line for log shippers (FIRELANE_LOG_FORMAT=json).
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("FIRELANE_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().flatten_event(true).init(),
        _ => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// An error and its causes on one line, each cause once.
pub fn error_chain(e: &anyhow::Error) -> String {
    crate::base::errors::chain(e.as_ref())
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Replay(a) => replay::run(a).await,
        Command::CheckConfig(a) => check_config::run(a).await,
        Command::Classify(a) => classify::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Record(a) => record::run(a).await,
        Command::Whatif(a) => whatif::run(a).await,
        Command::Token { action, site } => admin::token(action, &site).await,
        Command::Audit { action, site } => admin::audit(action, &site).await,
        Command::Calibration { action, site } => admin::calibration(action, &site).await,
        Command::Evidence { action } => admin::evidence(action).await,
        Command::Config { action, site } => config::run(action, &site).await,
        Command::Broker { action } => broker::run(action),
    }
}

/// Where `run` and the data-folder commands look for their config.
pub const DEFAULT_CONFIG: &str = "config/firelane.toml";

impl SiteArgs {
    /// The config with `--data-dir` applied. Without `--config`, the
    /// working folder's `config/firelane.toml`, else the built-in one: a
    /// data-folder command (`token`, `audit verify`, `evidence export`)
    /// then needs only `--data-dir`, from any folder.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let local = PathBuf::from(DEFAULT_CONFIG);
        let cfg = match &self.config {
            Some(path) => Config::load(path)?,
            None if local.exists() => Config::load(&local)?,
            None => {
                tracing::info!(
                    "no {DEFAULT_CONFIG} here and no --config: using the built-in configuration"
                );
                Config::builtin()
            }
        };
        Ok(match &self.data_dir {
            Some(d) => cfg.with_data_dir(d),
            None => cfg,
        })
    }
}

pub(crate) fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(1)
}
