//! `firelane run`: the daemon, until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{SiteArgs, config_failure};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub site: SiteArgs,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = match args.site.load() {
        Ok(c) => c,
        Err(e) => return Ok(config_failure(&e)),
    };
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        s.cancel();
    });
    crate::runtime::daemon::run(cfg, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
