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
    cancel_on_signal(&shutdown)?;
    crate::runtime::daemon::run(cfg, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on SIGINT or SIGTERM. The handlers are registered
/// before this returns, so a signal sent right after (a test, a supervisor
/// reading the first lines printed) is not lost to the default action.
pub(super) fn cancel_on_signal(shutdown: &CancellationToken) -> std::io::Result<()> {
    let s = shutdown.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            s.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    Ok(())
}
