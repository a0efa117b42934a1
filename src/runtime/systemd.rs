//! The service manager's side: readiness, watchdog pings, reloads and
//! stopping, told to systemd over `NOTIFY_SOCKET` (`Type=notify`, see
//! `deploy/firelane.service`). Without systemd every call is a no-op.

use sd_notify::NotifyState;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::reload::LiveConfig;

fn tell(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify the service manager");
    }
}

/// Everything is up: broker, API, pipeline, ingest.
pub fn ready(status: &str) {
    tell(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    tell(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// Pings the watchdog at half its interval while the runtime runs. A
/// runtime that stalls (every worker blocked) stops pinging, and systemd
/// restarts the service.
pub async fn watchdog(stop: CancellationToken) {
    let Some(every) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(every / 2);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => tell(&[NotifyState::Watchdog]),
        }
    }
}

/// SIGHUP (`systemctl reload firelane`) re-reads the config file now. The
/// handler is registered before this returns (before READY is sent), so an
/// early reload cannot hit SIGHUP's default action and end the daemon.
pub fn reload_on_hangup(
    config: Arc<LiveConfig>,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let hup = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
    };
    async move {
        #[cfg(unix)]
        {
            let Ok(mut hup) = hup else {
                tracing::warn!("cannot listen for SIGHUP; the file is still polled every second");
                return;
            };
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    got = hup.recv() => if got.is_none() { return },
                }
                tell(&[NotifyState::Reloading]);
                // Applied and refused changes are logged where they happen.
                if config.reload_now().await.is_none() {
                    tracing::info!("SIGHUP: the configuration file is unchanged");
                }
                tell(&[NotifyState::Ready, NotifyState::Status("running")]);
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (config, stop);
            std::future::pending::<()>().await
        }
    }
}
